package server_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/server/servertest"
	"github.com/ringcache/ringcache/storage"
)

// convStep is one step of a multi-connection conversation: a command on
// conn, then how many replies to read on each connection.
type convStep struct {
	conn  string
	args  []string
	reads map[string]int // default: one on conn
}

// conversation holds one server's connections for a conversation; "$RID"
// in a step's arguments is the CLIENT ID of connection "r".
type conversation struct {
	t     *testing.T
	conns map[string]*resp.Conn
	rid   int64
}

func openConversation(t *testing.T, addr string, protos map[string]string) *conversation {
	cv := &conversation{t: t, conns: map[string]*resp.Conn{}}
	for name, proto := range protos {
		c := rawConn(t, addr)
		roundTrip(t, c, 1, "HELLO", proto)
		cv.conns[name] = c
	}
	if r := cv.conns["r"]; r != nil {
		cv.rid = roundTrip(t, r, 1, "CLIENT", "ID")[0].Int
	}
	return cv
}

// run runs a step and returns what every connection read, in a fixed
// order, with r's id replaced so that two servers compare.
func (cv *conversation) run(st convStep) map[string][]resp.Value {
	args := make([]string, len(st.args))
	for i, a := range st.args {
		args[i] = strings.ReplaceAll(a, "$RID", strconv.FormatInt(cv.rid, 10))
	}
	reads := st.reads
	if reads == nil {
		reads = map[string]int{st.conn: 1}
	}
	out := map[string][]resp.Value{}
	out[st.conn] = roundTrip(cv.t, cv.conns[st.conn], reads[st.conn], args...)
	for name, n := range reads {
		if name != st.conn && n > 0 {
			out[name] = readN(cv.t, cv.conns[name], n)
		}
	}
	for _, vs := range out {
		for i := range vs {
			vs[i] = cv.hideID(vs[i])
		}
	}
	return out
}

func (cv *conversation) hideID(v resp.Value) resp.Value {
	if v.Kind == resp.KindInt && cv.rid != 0 && v.Int == cv.rid {
		v.Int = -12345
	}
	for i := range v.Elems {
		v.Elems[i] = cv.hideID(v.Elems[i])
	}
	return v
}

// compareConversations runs steps against redis-server and a node.
func compareConversations(t *testing.T, redisAddr, nodeAddr string, protos map[string]string, steps []convStep) {
	t.Helper()
	want := openConversation(t, redisAddr, protos)
	got := openConversation(t, nodeAddr, protos)
	for _, st := range steps {
		w, g := want.run(st), got.run(st)
		if !reflect.DeepEqual(w, g) {
			var b strings.Builder
			for name := range w {
				fmt.Fprintf(&b, "\n %s: redis %s\n %s:  node %s", name, show(w[name]), name, show(g[name]))
			}
			t.Fatalf("%s %v:%s", st.conn, st.args, b.String())
		}
	}
}

func on(conn string, args ...string) convStep { return convStep{conn: conn, args: args} }

func onReads(conn string, reads map[string]int, args ...string) convStep {
	return convStep{conn: conn, args: args, reads: reads}
}

// TestTrackingMatchesRedis compares client-side caching, mode by mode,
// with redis-server: the replies, the errors, and every invalidation.
func TestTrackingMatchesRedis(t *testing.T) {
	rdb := servertest.StartRedis(t)
	node := servertest.Start(t)
	cases := map[string]struct {
		protos map[string]string
		steps  []convStep
	}{
		"default mode, RESP3": {map[string]string{"a": "3", "b": "3"}, []convStep{
			on("a", "CLIENT", "GETREDIR"),
			on("a", "CLIENT", "TRACKINGINFO"),
			on("a", "CLIENT", "TRACKING", "ON"),
			on("a", "CLIENT", "GETREDIR"),
			on("a", "CLIENT", "TRACKINGINFO"),
			on("b", "SET", "k1", "v1"),
			on("a", "GET", "k1"),
			on("a", "MGET", "k1", "k2"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "k1", "v2"), // invalidates k1
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "k2", "x"),
			on("b", "SET", "k1", "v3"), // not read again: no invalidation
			on("a", "GET", "k1"),
			onReads("a", map[string]int{"a": 2}, "SET", "k1", "self"), // its own write: the reply, then the invalidation
			on("a", "GET", "k1"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "DEL", "k1"),
			on("a", "GET", "k1"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "FLUSHALL"), // a null invalidation
			on("a", "CLIENT", "TRACKING", "ON", "PREFIX", "p"),
			on("a", "CLIENT", "TRACKING", "ON", "BCAST"),
			on("a", "CLIENT", "TRACKING", "ON", "OPTIN"),
			on("a", "CLIENT", "TRACKING", "ON", "REDIRECT", "999999"),
			on("a", "CLIENT", "TRACKING", "ON", "BOGUS"),
			on("a", "CLIENT", "CACHING", "YES"),
			on("a", "CLIENT", "TRACKING", "OFF"),
			on("a", "CLIENT", "TRACKINGINFO"),
			on("a", "GET", "k2"),
			on("b", "SET", "k2", "y"),
			on("a", "CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"),
			on("a", "CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"),
			on("a", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "abc"),
			on("a", "PING"),
		}},
		"optin, through MULTI as rueidis sends it": {map[string]string{"a": "3", "b": "3"}, []convStep{
			on("a", "CLIENT", "TRACKING", "ON", "OPTIN"),
			on("a", "CLIENT", "CACHING", "NO"),
			on("a", "CLIENT", "CACHING", "MAYBE"),
			on("b", "SET", "k", "v"),
			on("a", "GET", "k"), // not opted in: not tracked
			on("b", "SET", "k", "v2"),
			on("a", "CLIENT", "CACHING", "YES"),
			on("a", "CLIENT", "TRACKINGINFO"),
			on("a", "MULTI"),
			on("a", "PTTL", "k"),
			on("a", "GET", "k"),
			on("a", "EXEC"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "k", "v3"),
			on("a", "GET", "k"), // the choice was used up by the transaction
			on("b", "SET", "k", "v4"),
			on("a", "PING"),
		}},
		"optout": {map[string]string{"a": "3", "b": "3"}, []convStep{
			on("a", "CLIENT", "TRACKING", "ON", "OPTOUT"),
			on("a", "CLIENT", "CACHING", "YES"),
			on("a", "CLIENT", "CACHING", "NO"),
			on("a", "GET", "k"), // opted out: not tracked
			on("b", "SET", "k", "1"),
			on("a", "GET", "k"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "k", "2"),
		}},
		"bcast with prefixes and noloop": {map[string]string{"a": "3", "b": "3"}, []convStep{
			on("a", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "cart:", "NOLOOP"),
			on("a", "CLIENT", "TRACKINGINFO"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "user:1", "x"),
			on("b", "SET", "other", "x"),
			onReads("b", map[string]int{"b": 1, "a": 1}, "SET", "cart:9", "x"),
			on("a", "SET", "user:2", "mine"), // NOLOOP: not told of its own write
			onReads("b", map[string]int{"b": 1, "a": 1}, "DEL", "user:2"),
			on("a", "CLIENT", "TRACKING", "ON"),
		}},
		"RESP2 through a redirect": {map[string]string{"a": "2", "b": "2", "r": "2"}, []convStep{
			on("r", "SUBSCRIBE", "__redis__:invalidate"),
			on("a", "CLIENT", "TRACKING", "ON", "REDIRECT", "$RID"),
			on("a", "CLIENT", "GETREDIR"),
			on("a", "GET", "k"),
			onReads("b", map[string]int{"b": 1, "r": 1}, "SET", "k", "v"),
			on("a", "GET", "k"),
			onReads("b", map[string]int{"b": 1, "r": 1}, "FLUSHALL"),
			on("a", "CLIENT", "TRACKINGINFO"),
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rdb.FlushAll(context.Background())
			node.Client().FlushAll(context.Background())
			compareConversations(t, rdb.Options().Addr, node.Addr, tc.protos, tc.steps)
		})
	}
}

// tracker is a RESP3 connection with tracking on that keeps the
// invalidations it gets apart from its replies.
type tracker struct {
	t    *testing.T
	c    *resp.Conn
	keys []string // invalidated so far, "" for a null invalidation
}

func newTracker(t *testing.T, addr string, tracking ...string) *tracker {
	tr := &tracker{t: t, c: rawConn(t, addr)}
	tr.do("HELLO", "3")
	tr.do(append([]string{"CLIENT", "TRACKING", "ON"}, tracking...)...)
	return tr
}

// do sends a command and returns its reply, collecting the pushes that
// come before it.
func (tr *tracker) do(args ...string) resp.Value {
	tr.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	tr.c.WriteCommand(bs...)
	if err := tr.c.Flush(); err != nil {
		tr.t.Fatal(err)
	}
	for {
		_ = tr.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		v, err := tr.c.ReadReply()
		if err != nil {
			tr.t.Fatal(err)
		}
		if v.Kind != resp.KindPush {
			return v
		}
		if len(v.Elems) != 2 || string(v.Elems[0].Bytes) != "invalidate" {
			tr.t.Fatalf("not an invalidation: %s", show([]resp.Value{v}))
		}
		if v.Elems[1].Kind == resp.KindNull {
			tr.keys = append(tr.keys, "")
		}
		for _, k := range v.Elems[1].Elems {
			tr.keys = append(tr.keys, string(k.Bytes))
		}
	}
}

// sync collects the invalidations queued before it: the second PING's
// reply follows whatever was queued before the first was answered.
func (tr *tracker) sync() {
	tr.do("PING")
	tr.do("PING")
}

// waitFor syncs until cond holds of the invalidations.
func (tr *tracker) waitFor(what string, cond func(keys []string) bool) {
	tr.t.Helper()
	servertest.Eventually(tr.t, 10*time.Second, what, func() bool {
		tr.sync()
		return cond(tr.keys)
	})
}

func (tr *tracker) told(key string) bool { return slices.Contains(tr.keys, key) }

// TestTrackingInvalidatesOnExpiryAndEviction checks the changes no client
// makes: a key's expiry, and evictions when maxmemory is lowered, and the
// bound of tracking-table-max-keys.
func TestTrackingInvalidatesOnExpiryAndEviction(t *testing.T) {
	node := servertest.Start(t, servertest.WithConfig(func(_ *server.Config, o *storage.Options) { o.InMemory = true }))
	ctx := context.Background()
	rdb := node.Client()
	a := newTracker(t, node.Addr)

	if err := rdb.Set(ctx, "soon", "v", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	a.do("GET", "soon")
	a.waitFor("the invalidation of an expired key", func([]string) bool { return a.told("soon") })

	const n = 3000
	val := strings.Repeat("v", 200)
	for i := range n {
		if err := rdb.Set(ctx, fmt.Sprintf("e:%d", i), val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		a.do("GET", fmt.Sprintf("e:%d", i))
	}
	used, err := rdb.MemoryUsage(ctx, "e:0").Result()
	if err != nil {
		t.Fatal(err)
	}
	info, _ := rdb.Info(ctx, "memory").Result()
	total := infoInt(t, info, "used_memory")
	rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-random")
	if err := rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(total-used*n/2, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	limit := total - used*n/2
	servertest.Eventually(t, 10*time.Second, "eviction down to maxmemory", func() bool {
		info, _ := rdb.Info(ctx, "memory").Result()
		return infoInt(t, info, "used_memory") <= limit
	})
	var gone []string
	for i := range n {
		if k := fmt.Sprintf("e:%d", i); rdb.Exists(ctx, k).Val() == 0 {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		t.Fatal("nothing was evicted")
	}
	// A read can see a key gone a moment before the batch that evicted
	// it has told the trackers (they are told before it completes): sync
	// after looking.
	a.sync()
	for _, k := range gone {
		if !a.told(k) {
			t.Fatalf("%s was evicted without an invalidation", k)
		}
	}
	t.Logf("%d keys evicted, each invalidated", len(gone))
	rdb.ConfigSet(ctx, "maxmemory", "0")

	// Bounded: over tracking-table-max-keys, keys are forgotten (and
	// invalidated) as new ones are read.
	if err := rdb.ConfigSet(ctx, "tracking-table-max-keys", "100").Err(); err != nil {
		t.Fatal(err)
	}
	before := len(a.keys)
	for i := range 1000 {
		a.do("GET", fmt.Sprintf("bound:%d", i))
	}
	a.sync()
	info, _ = rdb.Info(ctx, "stats").Result()
	if tracked := infoInt(t, info, "tracking_total_keys"); tracked > 100 {
		t.Fatalf("tracking_total_keys %d over tracking-table-max-keys 100", tracked)
	}
	if forgotten := len(a.keys) - before; forgotten < 800 {
		t.Fatalf("%d invalidations for keys forgotten over the bound; want about 900", forgotten)
	}
}

func infoInt(t *testing.T, info, field string) int64 {
	t.Helper()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO has no %s", field)
	return 0
}

// TestTrackingInCluster checks the invalidations a cluster adds: a write
// applied on a replica invalidates what a READONLY connection read there,
// and a slot that moves to a joining node invalidates the keys read on its
// old primary.
func TestTrackingInCluster(t *testing.T) {
	c := servertest.StartClusterRF(t, 3, 2)
	ctx := context.Background()
	cc := c.Client()
	const key = "cached:{42}"
	slot := cluster.KeySlot([]byte(key))
	var primary, replica *servertest.Node
	for _, n := range c.Alive() {
		if _, ok, _, _ := n.Replicator.Route(slot); ok {
			primary = n
		} else if n.Replicator.HoldsSlot(slot) {
			replica = n
		}
	}
	if primary == nil || replica == nil {
		t.Fatal("no primary and replica for the slot")
	}
	if err := cc.Set(ctx, key, "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	onReplica := newTracker(t, replica.Addr)
	onReplica.do("READONLY")
	if v := onReplica.do("GET", key); string(v.Bytes) != "v1" {
		t.Fatalf("replica read: %s", show([]resp.Value{v}))
	}
	onPrimary := newTracker(t, primary.Addr)
	onPrimary.do("CLUSTER", "SLOTS") // a cluster client
	onPrimary.do("GET", key)
	if err := cc.Set(ctx, key, "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The primary told before acknowledging; the replica before it
	// acknowledged its copy, so before the SET returned.
	onPrimary.sync()
	onReplica.sync()
	if !onPrimary.told(key) || !onReplica.told(key) {
		t.Fatalf("after a write: primary told %v, replica (READONLY) told %v", onPrimary.keys, onReplica.keys)
	}

	// Read keys of every slot on every node, then a node joins: each
	// key whose slot it takes must be invalidated by the node that
	// served it.
	trackers := map[*servertest.Node]*tracker{}
	read := map[*servertest.Node][]string{}
	for _, n := range c.Alive() {
		tr := newTracker(t, n.Addr)
		tr.do("CLUSTER", "SLOTS")
		trackers[n] = tr
	}
	for i := range 2000 {
		k := fmt.Sprintf("spread:%d", i)
		for _, n := range c.Alive() {
			if _, ok, _, _ := n.Replicator.Route(cluster.KeySlot([]byte(k))); ok {
				if err := cc.Set(ctx, k, "x", 0).Err(); err != nil {
					t.Fatal(err)
				}
				trackers[n].do("GET", k)
				read[n] = append(read[n], k)
			}
		}
	}
	joined := c.AddNode()
	c.WaitConverged(30 * time.Second)
	moved := 0
	for n, keys := range read {
		tr := trackers[n]
		tr.sync()
		for _, k := range keys {
			if _, ok, _, _ := joined.Replicator.Route(cluster.KeySlot([]byte(k))); ok {
				moved++
				if !tr.told(k) {
					t.Fatalf("%s moved to the new node; its old primary did not invalidate it (told %d keys)", k, len(tr.keys))
				}
			}
		}
	}
	if moved == 0 {
		t.Fatal("no key moved to the joining node")
	}
	t.Logf("%d tracked keys moved with their slots, each invalidated", moved)
}
