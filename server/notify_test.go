package server_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/server/servertest"
	"github.com/ringcache/ringcache/storage"
)

// sentinel is the channel a notification conversation publishes on after
// each step: it matches the subscriber's pattern, and arrives after every
// event of the step, so the pushes before it are all the step's.
const sentinel = "__keyevent@0__:sentinel"

// notifySide is one server's connections for a notification
// conversation: a writer and a subscriber to every event.
type notifySide struct {
	t        *testing.T
	w, sub   *resp.Conn
	sentinel int
	inMulti  bool // the writer queues commands: no sentinel until EXEC
}

func openNotifySide(t *testing.T, addr, proto, flags string) *notifySide {
	t.Helper()
	s := &notifySide{t: t, w: rawConn(t, addr), sub: rawConn(t, addr)}
	roundTrip(t, s.w, 1, "HELLO", proto)
	roundTrip(t, s.sub, 1, "HELLO", proto)
	for _, cmd := range [][]string{{"FLUSHALL"}, {"CONFIG", "SET", "notify-keyspace-events", flags}} {
		if v := roundTrip(t, s.w, 1, cmd...)[0]; v.Kind == resp.KindError {
			t.Fatalf("%v: %s", cmd, v.Str)
		}
	}
	roundTrip(t, s.sub, 1, "PSUBSCRIBE", "__key*__:*")
	return s
}

// run sends a command on the writer and returns its reply and every push
// the subscriber got for it, encoded in the connection's protocol.
func (s *notifySide) run(args ...string) (reply string, pushes []string) {
	s.t.Helper()
	r := roundTrip(s.t, s.w, 1, args...)
	reply = show(r)
	switch strings.ToUpper(args[0]) {
	case "MULTI":
		s.inMulti = true
	case "EXEC", "DISCARD":
		s.inMulti = false
	}
	if s.inMulti {
		return reply, nil
	}
	return reply, s.drain()
}

// drain publishes the sentinel and returns what the subscriber read
// before it.
func (s *notifySide) drain() []string {
	s.t.Helper()
	s.sentinel++
	mark := "step " + strconv.Itoa(s.sentinel)
	roundTrip(s.t, s.w, 1, "PUBLISH", sentinel, mark)
	var out []string
	for {
		v := readN(s.t, s.sub, 1)[0]
		if len(v.Elems) == 4 && string(v.Elems[2].Bytes) == sentinel {
			if got := string(v.Elems[3].Bytes); got != mark {
				s.t.Fatalf("sentinel %q, want %q", got, mark)
			}
			return out
		}
		out = append(out, show([]resp.Value{v}))
	}
}

// untilStep is a step that waits for the clock to pass a time (unix ms).
const untilStep = "#until"

// compareNotifications runs steps on the writers of redis-server and a
// node, with notify-keyspace-events set to flags, and compares the
// replies and the subscriber's pushes of every step.
func compareNotifications(t *testing.T, redisAddr, nodeAddr, proto, flags string, steps [][]string) {
	t.Helper()
	want := openNotifySide(t, redisAddr, proto, flags)
	got := openNotifySide(t, nodeAddr, proto, flags)
	for _, st := range steps {
		if st[0] == untilStep {
			at, _ := strconv.ParseInt(st[1], 10, 64)
			servertest.Eventually(t, 10*time.Second, "the clock to pass "+st[1], func() bool { return time.Now().UnixMilli() > at })
			continue
		}
		wr, wp := want.run(st...)
		gr, gp := got.run(st...)
		if wr != gr || strings.Join(wp, "") != strings.Join(gp, "") {
			t.Fatalf("%v:\n redis: %s %v\n  node: %s %v", st, wr, wp, gr, gp)
		}
	}
}

func cmds(lines ...string) [][]string {
	out := make([][]string, len(lines))
	for i, l := range lines {
		out[i] = strings.Fields(l)
		for j, f := range out[i] {
			if f == `""` {
				out[i][j] = ""
			}
		}
	}
	return out
}

// notifyCommands exercise every event of the commands the node has, and
// the cases where Redis sends none.
var notifyCommands = cmds(
	"SET k v", "SET k v2", "SET k v NX", "SET k v3 XX", "SET n v XX",
	"SET k v GET", "SET g v GET", "SET n v XX GET", "SET e v PX 100000", "SET e v EX 100 GET", "SET k v KEEPTTL",
	"SETNX k v", "SETNX k2 v", "SETEX k3 100 v", "PSETEX k4 100000 v",
	"GETSET k v", "GETSET k5 v", "GETDEL k5", "GETDEL k5",
	"GETEX k", "GETEX k EX 100", "GETEX k PERSIST", "GETEX k PERSIST", "GETEX k EXAT 1", "GETEX nokey EX 10",
	"MSET a 1 b 2 a 3", "MSETNX a 1 c 2", "MSETNX c 1 d 2 c 3",
	"APPEND a x", "APPEND z y", "SETRANGE a 1 yy", "SETRANGE w 2 yy", `SETRANGE w 1 ""`, `SETRANGE w2 1 ""`,
	"INCR i", "DECR i", "INCRBY i 5", "DECRBY i 5", "INCRBYFLOAT f 1.5", "INCR a", "INCRBYFLOAT a 1",
	"GET nokey", "GET a", "STRLEN nokey", "GETRANGE nokey 0 1", "SUBSTR nokey 0 1", "MGET a nokey b nokey2",
	"EXISTS nokey a", "TOUCH nokey a", "TTL nokey", "PTTL a", "TYPE nokey", "EXPIRETIME nokey", "PEXPIRETIME nokey",
	"DEL a b nokey", "UNLINK c d",
	"EXPIRE i 100", "EXPIRE i 100 NX", "EXPIRE i 200 GT", "EXPIRE i 50 LT", "PEXPIRE i 100000",
	"EXPIREAT i 99999999999", "PEXPIREAT i 99999999999999", "EXPIRE nokey 10",
	"PERSIST i", "PERSIST i", "EXPIRE i -1", "SET i 1", "PEXPIREAT i 1",
	"SET {r}1 1", "RENAME {r}1 {r}2", "RENAME {r}2 {r}2", "RENAME {r}none {r}x", "SET {r}3 1", "RENAME {r}2 {r}3",
	"RENAMENX {r}3 {r}4", "RENAMENX {r}4 {r}4", "SET {r}5 x", "RENAMENX {r}4 {r}5",
	"COPY {r}4 {r}c1", "COPY {r}4 {r}c1", "COPY {r}4 {r}c1 REPLACE", "COPY {r}none {r}c2",
	"MULTI", "SET t 1", "INCR t", "DEL t", "EXEC",
	"PUBLISH plain x", "FLUSHALL", "SET last 1",
)

// TestNotifyMatchesRedis compares the events of every command with
// redis-server's, pattern-subscribed in RESP2 and RESP3, for the whole
// set of classes and for filters of one class or one channel family.
func TestNotifyMatchesRedis(t *testing.T) {
	rdb := servertest.StartRedis(t)
	node := servertest.Start(t)
	short := cmds("SET {k}1 v", "SET {k}1 v2 EX 100", "GET nokey", "APPEND {k}1 x", "INCR n", "PERSIST {k}1",
		"EXPIRE {k}1 100", "RENAME {k}1 {k}2", "COPY {k}2 {k}3", "GETDEL {k}2", "DEL {k}3 n nokey", "SET k v", "GETEX k PXAT 1")
	cases := []struct {
		flags string
		steps [][]string
	}{
		{"AKEmn", notifyCommands},
		{"KEA", notifyCommands},
		{"Kg", short},
		{"E$", short},
		{"Exn", short},
		{"Km", short},
		{"KEgm", short},
		{"g$xe", short}, // neither K nor E: nothing
		{"", short},
	}
	for _, c := range cases {
		for _, proto := range []string{"2", "3"} {
			t.Run(fmt.Sprintf("%s/RESP%s", c.flags, proto), func(t *testing.T) {
				compareNotifications(t, rdb.Options().Addr, node.Addr, proto, c.flags, c.steps)
			})
		}
	}
}

// TestNotifyLazyExpiryMatchesRedis compares the events of commands that
// find a key whose time has passed and that no active expiry removed
// yet: the expired event first, then the command's own (or a keymiss),
// as Redis's lookupKey sends them. Both servers' active expiry is off.
func TestNotifyLazyExpiryMatchesRedis(t *testing.T) {
	rdb := servertest.StartRedis(t, "--enable-debug-command", "yes")
	if err := rdb.Do(context.Background(), "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		t.Fatal(err)
	}
	node := servertest.Start(t, servertest.WithConfig(func(_ *server.Config, o *storage.Options) {
		o.ExpiryInterval = time.Hour
	}))
	uses := cmds(
		"GET {x}1", "SET {x}2 w", "APPEND {x}3 w", "INCR {x}4", "DEL {x}5", "EXPIRE {x}6 100",
		"RENAME {x}7 {x}y", "RENAME {x}live {x}8", "COPY {x}8 {x}9", "EXISTS {x}10", "SET {x}11 v NX",
		"GETDEL {x}12", "MSET {x}13 1", "GETSET {x}14 1", "TTL {x}15", `SETRANGE {x}16 0 ""`, "MGET {x}17 {x}17",
		"PERSIST {x}18", "GETEX {x}19 PERSIST", "RENAMENX {x}8 {x}20", "MSETNX {x}21 1", "SET {x}22 v GET",
		"STRLEN {x}23", "SET {x}24 v XX", "SETNX {x}25 v", "INCRBYFLOAT {x}26 1", "SETRANGE {x}27 1 a",
		"TYPE {x}28", "TOUCH {x}29", "SET {x}30 v KEEPTTL", "SET {x}31 v EX 100", "GETEX {x}32 EX 100",
		"COPY {x}9 {x}33", "PEXPIRE {x}34 100", "GETRANGE {x}35 0 -1",
		"MSET {x}36 1 {x}37 2", "DEL {x}20 {x}38 nokey", "GET {x}1", "DEL {x}5",
	)
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			at := time.Now().UnixMilli() + 2000
			steps := cmds("SET {x}live v")
			for i := 1; i <= 38; i++ {
				steps = append(steps, []string{"SET", "{x}" + strconv.Itoa(i), "v", "PXAT", strconv.FormatInt(at, 10)})
			}
			steps = append(steps, []string{untilStep, strconv.FormatInt(at, 10)})
			steps = append(steps, uses...)
			compareNotifications(t, rdb.Options().Addr, node.Addr, proto, "AKEmn", steps)
		})
	}
}

// eventConn subscribes to channels (patterns with glob characters) on
// addr and returns a function that reads the next message as
// "channel message".
func eventConn(t *testing.T, addr string, channels ...string) func() string {
	t.Helper()
	c := rawConn(t, addr)
	roundTrip(t, c, 1, "HELLO", "3")
	for _, ch := range channels {
		cmd := "SUBSCRIBE"
		if strings.ContainsAny(ch, "*?[") {
			cmd = "PSUBSCRIBE"
		}
		roundTrip(t, c, 1, cmd, ch)
	}
	return func() string {
		t.Helper()
		v := readN(t, c, 1)[0]
		if n := len(v.Elems); n >= 3 {
			return string(v.Elems[n-2].Bytes) + " " + string(v.Elems[n-1].Bytes)
		}
		t.Fatalf("not a message: %s", show([]resp.Value{v}))
		return ""
	}
}

func withNotify(flags string) servertest.Option {
	return servertest.WithConfig(func(c *server.Config, _ *storage.Options) { c.NotifyKeyspaceEvents = flags })
}

// TestNotifyExpired checks the expired event of a key nobody touches
// again (the active expiry removes it) and of one a read finds expired
// before the active expiry does.
func TestNotifyExpired(t *testing.T) {
	t.Run("active", func(t *testing.T) {
		n := servertest.Start(t, withNotify("KEx"))
		next := eventConn(t, n.Addr, "__keyevent@0__:expired", "__keyspace@0__:gone")
		rc := n.Client()
		ctx := servertest.Ctx(t)
		rc.Set(ctx, "gone", "v", 0)
		rc.Set(ctx, "stays", "v", 0)
		if !rc.PExpire(ctx, "gone", 50*time.Millisecond).Val() {
			t.Fatal("PEXPIRE failed")
		}
		// The keyspace event first: it is published first.
		for _, want := range []string{"__keyspace@0__:gone expired", "__keyevent@0__:expired gone"} {
			if got := next(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		if rc.Exists(ctx, "gone").Val() != 0 || rc.Exists(ctx, "stays").Val() != 1 {
			t.Error("the wrong key expired")
		}
	})
	t.Run("lazily, on a read", func(t *testing.T) {
		n := servertest.Start(t, withNotify("Exm"), servertest.WithConfig(func(_ *server.Config, o *storage.Options) {
			o.ExpiryInterval = time.Hour // no active expiry
		}))
		next := eventConn(t, n.Addr, "__keyevent@0__:*")
		rc := n.Client()
		ctx := servertest.Ctx(t)
		rc.Set(ctx, "k", "v", 20*time.Millisecond)
		at := time.Now().Add(25 * time.Millisecond)
		servertest.Eventually(t, 5*time.Second, "k's time to pass", func() bool { return time.Now().After(at) })
		if n.Store.Len() != 1 {
			t.Fatalf("%d keys held before the read, want the expired one", n.Store.Len())
		}
		if err := rc.Get(ctx, "k").Err(); err != redis.Nil {
			t.Fatalf("GET of an expired key: %v", err)
		}
		for _, want := range []string{"__keyevent@0__:expired k", "__keyevent@0__:keymiss k"} {
			if got := next(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		if n.Store.Len() != 0 {
			t.Errorf("%d keys held after the read expired the key", n.Store.Len())
		}
		// Found again: a plain miss.
		rc.Get(ctx, "k")
		if got := next(); got != "__keyevent@0__:keymiss k" {
			t.Fatalf("got %q after a second read", got)
		}
	})
}

// TestNotifyEvicted floods a node with a small maxmemory under
// allkeys-lru and checks that evicted events arrive, for keys that are
// indeed gone.
func TestNotifyEvicted(t *testing.T) {
	n := servertest.Start(t, withNotify("Ee"), withMemory(2<<20, storage.AllKeysLRU))
	next := eventConn(t, n.Addr, "__keyevent@0__:evicted")
	rc := n.Client()
	ctx := servertest.Ctx(t)
	val := strings.Repeat("v", 200)
	done := make(chan error, 1)
	go func() {
		p := rc.Pipeline()
		for i := range 40000 {
			p.Set(ctx, "key:"+strconv.Itoa(i), val, 0)
			if i%1000 == 999 {
				if _, err := p.Exec(ctx); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	var evicted []string
	for len(evicted) < 100 {
		msg := next()
		key, ok := strings.CutPrefix(msg, "__keyevent@0__:evicted ")
		if !ok || !strings.HasPrefix(key, "key:") {
			t.Fatalf("unexpected message %q", msg)
		}
		evicted = append(evicted, key)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := n.Store.Evicted(); got < int64(len(evicted)) {
		t.Errorf("%d evictions counted, %d events", got, len(evicted))
	}
	for _, k := range evicted[:10] {
		if rc.Exists(ctx, k).Val() != 0 {
			// Written again after its eviction? Not by this test.
			t.Errorf("%s is still there after its evicted event", k)
		}
	}
}

// TestNotifyConfig checks notify-keyspace-events against redis-server:
// CONFIG GET's canonical form, the validation, and that CONFIG SET turns
// the events on and off at run time.
func TestNotifyConfig(t *testing.T) {
	rdb := servertest.StartRedis(t)
	node := servertest.Start(t)
	var steps []convStep
	for _, v := range []string{"", "K", "E", "g", "KEA", "AKEmn", "A", "An", "g$lshzxetd", "g$lshzxetdK", "Am",
		"xKE", "KEnm", "ngKE", "KKgg", "AA", "EK", "ab", "KE?", "Ag$lshzxeKEtmdn", "$", "d", "Ad", "t", "lshz"} {
		steps = append(steps, on("a", "CONFIG", "SET", "notify-keyspace-events", v), on("a", "CONFIG", "GET", "notify-keyspace-events"))
	}
	steps = append(steps, on("a", "CONFIG", "SET", "notify-keyspace-events"), on("a", "CONFIG", "GET", "notify-*"))
	compareConversations(t, rdb.Options().Addr, node.Addr, map[string]string{"a": "2"}, steps)

	// Off by default; on and off at run time.
	rc := node.Client()
	ctx := servertest.Ctx(t)
	side := openNotifySide(t, node.Addr, "3", "")
	pmessage := func(channel, msg string) string {
		return show([]resp.Value{resp.Push(resp.BulkString("pmessage"), resp.BulkString("__key*__:*"), resp.BulkString(channel), resp.BulkString(msg))})
	}
	check := func(flags string, want ...string) {
		t.Helper()
		if err := rc.ConfigSet(ctx, "notify-keyspace-events", flags).Err(); err != nil {
			t.Fatal(err)
		}
		_, got := side.run("SET", "k", "v")
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("with %q: %q, want %q", flags, got, want)
		}
	}
	check("")
	check("KE$", pmessage("__keyspace@0__:k", "set"), pmessage("__keyevent@0__:set", "k"))
	check("E$", pmessage("__keyevent@0__:set", "k"))
	check("Eg") // no string events
	check("")
	// The command line's flag (the config file's line) sets the default.
	n2 := servertest.Start(t, withNotify("KEA"))
	if got := n2.Client().ConfigGet(ctx, "notify-keyspace-events").Val(); got["notify-keyspace-events"] != "AKE" {
		t.Errorf("CONFIG GET with --notify-keyspace-events KEA: %v", got)
	}
	cfg := server.DefaultConfig()
	cfg.NotifyKeyspaceEvents = "KEQ"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Invalid event class character") {
		t.Errorf("Validate of KEQ: %v", err)
	}
}

// TestNotifyClusterNodeLocal checks that in a cluster a key's events are
// published by the node that holds it as primary and ran the change, and
// by no other node (its replicas apply the write and expire the key too,
// but stay silent), wherever the client sent the command.
func TestNotifyClusterNodeLocal(t *testing.T) {
	c := servertest.StartClusterRF(t, 3, 3, withNotify("KEA"))
	nodes := c.Alive()
	nexts := make([]func() string, len(nodes))
	for i, n := range nodes {
		nexts[i] = eventConn(t, n.Addr, "__key*__:*", "end")
	}
	ctx := servertest.Ctx(t)
	cc := c.Client()
	key := "user:1"
	slot := cluster.KeySlot([]byte(key))
	primary := -1
	for i, n := range nodes {
		if _, ok, _, _ := n.Replicator.Route(slot); ok {
			primary = i
		}
	}
	if primary < 0 {
		t.Fatal("no primary for the key's slot")
	}
	// end is published on one node and reaches every node's subscribers
	// after what each got before it.
	end := func(i int) {
		t.Helper()
		if err := nodes[0].Client().Publish(ctx, "end", strconv.Itoa(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	step := 0
	expect := func(i int, want ...string) {
		t.Helper()
		for _, w := range append(want, "end "+strconv.Itoa(step)) {
			if got := nexts[i](); got != w {
				t.Fatalf("node %d (primary %d): got %q, want %q", i, primary, got, w)
			}
		}
	}
	check := func(want ...string) {
		t.Helper()
		end(step)
		for i := range nodes {
			if i == primary {
				expect(i, want...)
			} else {
				expect(i)
			}
		}
		step++
	}

	// A cluster client goes to the primary.
	if err := cc.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	check("__keyspace@0__:user:1 set", "__keyevent@0__:set user:1")
	// A plain client of another node has it forwarded to the primary.
	other := nodes[(primary+1)%len(nodes)]
	if err := other.Client().Append(ctx, key, "w").Err(); err != nil {
		t.Fatal(err)
	}
	check("__keyspace@0__:user:1 append", "__keyevent@0__:append user:1")
	// Expiry: every copy expires the key; only the primary tells.
	if err := cc.PExpire(ctx, key, 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	check("__keyspace@0__:user:1 expire", "__keyevent@0__:expire user:1")
	for _, w := range []string{"__keyspace@0__:user:1 expired", "__keyevent@0__:expired user:1"} {
		if got := nexts[primary](); got != w {
			t.Fatalf("primary: got %q, want %q", got, w)
		}
	}
	servertest.Eventually(t, 10*time.Second, "every copy to expire the key", func() bool {
		for _, n := range nodes {
			if n.Store.Len() > 0 {
				return false
			}
		}
		return true
	})
	check()
	if err := cc.Get(ctx, key).Err(); err != redis.Nil {
		t.Errorf("GET after expiry: %v", err)
	}
	// One more change: a replica's late event would show here.
	if err := cc.Set(ctx, key, "again", 0).Err(); err != nil {
		t.Fatal(err)
	}
	check("__keyspace@0__:user:1 set", "__keyevent@0__:set user:1")
}

// TestNotifyEdges checks what the comparison with Redis cannot: a SET
// whose expiry has passed (Redis 7.0 keeps the key until an expiry finds
// it and sends expired then; the node removes it at once and sends the
// same events together), and a write that fails in the store, whose
// events go with its writes.
func TestNotifyEdges(t *testing.T) {
	n := servertest.Start(t)
	side := openNotifySide(t, n.Addr, "3", "KEA")
	pm := func(channel, msg string) string {
		return show([]resp.Value{resp.Push(resp.BulkString("pmessage"), resp.BulkString("__key*__:*"), resp.BulkString(channel), resp.BulkString(msg))})
	}
	events := func(key string, names ...string) []string {
		var out []string
		for _, e := range names {
			out = append(out, pm("__keyspace@0__:"+key, e), pm("__keyevent@0__:"+e, key))
		}
		return out
	}
	for _, tc := range []struct {
		args  []string
		reply string
		want  []string
	}{
		{[]string{"SET", "old", "v", "PXAT", "1"}, show([]resp.Value{resp.OK}), events("old", "set", "expire", "expired")},
		{[]string{"SET", "k", "v"}, show([]resp.Value{resp.OK}), events("k", "set")},
		{[]string{"SET", "k", "v", "EXAT", "1"}, show([]resp.Value{resp.OK}), events("k", "set", "expire", "expired")},
		{[]string{"EXISTS", "k"}, show([]resp.Value{resp.Int(0)}), nil},
		// The second key is too long for the store: the function fails,
		// and the first key's set is undone with its event.
		{[]string{"MSET", "{h}small", "1", "{h}" + strings.Repeat("x", storage.MaxKeyLen), "2"}, "", nil},
		{[]string{"EXISTS", "{h}small"}, show([]resp.Value{resp.Int(0)}), nil},
	} {
		reply, got := side.run(tc.args...)
		if tc.reply != "" && reply != tc.reply {
			t.Errorf("%.40q: reply %s, want %s", tc.args, reply, tc.reply)
		}
		if g, w := strings.Join(got, " "), strings.Join(tc.want, " "); g != w {
			t.Errorf("%.40q: events %.300s, want %.300s", tc.args, g, w)
		}
	}
}
