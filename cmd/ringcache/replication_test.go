package main

// End-to-end tests of replication, failover and handoff: real node
// processes, a go-redis cluster client writing from several goroutines, and
// a ledger of every write the cluster acknowledged. The rule checked
// everywhere: a key holds its last acknowledged value or a value written to
// it later (whose write failed or was cut off); never an older value, never
// nothing.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
)

const (
	// convergeTimeout bounds how long a cluster may take to agree on a
	// ring where every node is active (start, join, catch-up, leave).
	convergeTimeout = 45 * time.Second
	// recoverTimeout bounds how long writes may keep failing after a
	// membership change before the test gives up.
	recoverTimeout = 45 * time.Second
	// absurdWindow is where a failover is called broken rather than slow.
	absurdWindow = 15 * time.Second
	// bulkKeys are preloaded (about 130 bytes each) so that catch-up and
	// handoff streams carry more than the load's few thousand keys.
	bulkKeys = 100000
)

// quietLogger drops go-redis's log lines: every failed dial to a killed
// node would print one.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// ---------------------------------------------------------------------------
// Clusters of node processes

// testCluster is a set of node processes that joined each other.
type testCluster struct {
	t     *testing.T
	bin   string
	args  []string // flags given to every node
	nodes []*node  // in start order; dead ones stay, see live
}

// startCluster starts size nodes with args, each with its own data
// directory, all but the first joining the first, and waits until they
// agree on one ring where each is active and a master with slots.
func startCluster(t *testing.T, bin string, size int, args ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, bin: bin, args: args}
	for range size {
		c.addNode()
	}
	c.waitConverged(size)
	return c
}

// addNode starts one more node, joining through the first live node, and
// waits until it answers PING (not until it is active).
func (c *testCluster) addNode() *node {
	t := c.t
	t.Helper()
	args := append([]string{"--dir", t.TempDir(), "--log-level", "info"}, c.args...)
	n := newNode(t, c.bin, freePort(t), args...)
	n.name = fmt.Sprintf("node%d", len(c.nodes))
	if live := c.live(); len(live) > 0 {
		n.join = live[0].gossipAddr()
	}
	c.nodes = append(c.nodes, n)
	n.start(t)
	return n
}

// live returns the nodes whose process is running.
func (c *testCluster) live() []*node {
	var live []*node
	for _, n := range c.nodes {
		if n.running() {
			live = append(live, n)
		}
	}
	return live
}

func (c *testCluster) addrs() []string {
	var addrs []string
	for _, n := range c.live() {
		addrs = append(addrs, n.addr())
	}
	return addrs
}

// client returns a cluster client of the live nodes, tuned for failover:
// quick dials, short backoffs, enough redirects to follow a handoff.
func (c *testCluster) client() *redis.ClusterClient {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:              c.addrs(),
		MaxRedirects:       16,
		MaxRetries:         4,
		MinRetryBackoff:    8 * time.Millisecond,
		MaxRetryBackoff:    64 * time.Millisecond,
		DialTimeout:        500 * time.Millisecond,
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
		// Above --repl-timeout (1s): a write waiting for a dead replica
		// to drop out of the in-sync set still gets its answer.
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		PoolSize:     16,
	})
	c.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// readOnlyClient is a plain client to addr whose every connection has
// sent READONLY, so a replica serves the slots it holds.
func readOnlyClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr:        addr,
		MaxRetries:  -1,
		DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 2 * time.Second,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.ReadOnly(ctx).Err()
		},
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// slotNodes returns, for every slot, the addresses CLUSTER SLOTS gives on
// the first live node: the primary first, then the replicas.
func (c *testCluster) slotNodes() [][]string {
	t := c.t
	t.Helper()
	live := c.live()
	if len(live) == 0 {
		t.Fatal("no live node")
	}
	out, err := slotTable(live[0])
	if err != nil {
		t.Fatalf("%s: %v", live[0].name, err)
	}
	return out
}

// slotTable is CLUSTER SLOTS on n as slot -> [primary, replica...]; an
// error if the reply leaves a slot without a node.
func slotTable(n *node) ([][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second})
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	out := make([][]string, cluster.SlotCount)
	for _, r := range slots {
		var addrs []string
		for _, n := range r.Nodes {
			addrs = append(addrs, n.Addr)
		}
		for s := max(r.Start, 0); s <= r.End && s < cluster.SlotCount; s++ {
			out[s] = addrs
		}
	}
	for s, addrs := range out {
		if len(addrs) == 0 {
			return out, fmt.Errorf("CLUSTER SLOTS leaves slot %d without a node", s)
		}
	}
	return out, nil
}

// primaries returns the primary address of every slot.
func (c *testCluster) primaries() []string {
	out := make([]string, cluster.SlotCount)
	for s, addrs := range c.slotNodes() {
		out[s] = addrs[0]
	}
	return out
}

// waitConverged waits until the live nodes number want and agree: each is
// active, each lists exactly want nodes in CLUSTER NODES, all connected
// masters with slots, and all give the same CLUSTER SLOTS, whose primaries
// are the live nodes.
func (c *testCluster) waitConverged(want int) {
	c.t.Helper()
	c.waitAgree(want, false)
}

// waitConvergedAfterLeave is waitConverged, except that CLUSTER NODES may
// still list departed nodes, flagged fail and without slots (as Redis
// Cluster lists a node until it is forgotten).
func (c *testCluster) waitConvergedAfterLeave(want int) {
	c.t.Helper()
	c.waitAgree(want, true)
}

func (c *testCluster) waitAgree(want int, departedListed bool) {
	t := c.t
	t.Helper()
	start := time.Now()
	var last string
	var history []string // what kept the nodes apart, as it changed
	ok := waitFor(convergeTimeout, func() bool {
		reason := c.divergence(want, departedListed)
		if short := reason[:min(len(reason), 120)]; short != "" && (len(history) == 0 || !strings.HasSuffix(history[len(history)-1], short)) {
			history = append(history, fmt.Sprintf("%v: %s", time.Since(start).Round(time.Millisecond), short))
		}
		last = reason
		return reason == ""
	})
	if !ok {
		t.Fatalf("no convergence on %d active nodes within %v: %s\nearlier:\n  %s", want, convergeTimeout, last, strings.Join(history, "\n  "))
	}
	took := time.Since(start)
	t.Logf("converged on %d active nodes in %v", want, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Logf("convergence was held up by:\n  %s", strings.Join(history, "\n  "))
	}
}

// divergence says why the live nodes do not yet agree ("" if they do).
func (c *testCluster) divergence(want int, departedListed bool) string {
	live := c.live()
	if len(live) != want {
		return fmt.Sprintf("%d live nodes", len(live))
	}
	liveAddrs := map[string]bool{}
	for _, n := range live {
		liveAddrs[n.addr()] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var first []redis.ClusterSlot
	for i, n := range live {
		rdb := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second})
		defer rdb.Close()
		state, err := infoField(ctx, rdb, "replication", "ringcache_state")
		if err != nil || state != "active" {
			return fmt.Sprintf("%s: ringcache_state %q (%v)", n.name, state, err)
		}
		text, err := rdb.ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER NODES: %v", n.name, err)
		}
		listed := 0
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				return fmt.Sprintf("%s: CLUSTER NODES line %q", n.name, line)
			}
			if !liveAddrs[strings.Split(f[1], "@")[0]] {
				if departedListed && strings.Contains(f[2], "fail") && len(f) == 8 {
					continue
				}
				return fmt.Sprintf("%s: CLUSTER NODES lists %s, not a live node: %q", n.name, f[1], line)
			}
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") || f[7] != "connected" {
				return fmt.Sprintf("%s: CLUSTER NODES line without slots or not a connected master: %q", n.name, line)
			}
			listed++
		}
		if listed != want {
			return fmt.Sprintf("%s: CLUSTER NODES lists %d live nodes:\n%s", n.name, listed, text)
		}
		slots, err := rdb.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER SLOTS: %v", n.name, err)
		}
		if i == 0 {
			if _, err := slotTable(n); err != nil {
				return fmt.Sprintf("%s: %v", n.name, err)
			}
			first = slots
			owners := map[string]bool{}
			for _, r := range slots {
				if len(r.Nodes) == 0 || !liveAddrs[r.Nodes[0].Addr] {
					return fmt.Sprintf("%s: CLUSTER SLOTS range %d-%d has primary %v", n.name, r.Start, r.End, r.Nodes)
				}
				owners[r.Nodes[0].Addr] = true
			}
			if len(owners) != want {
				return fmt.Sprintf("%s: CLUSTER SLOTS has %d primaries", n.name, len(owners))
			}
		} else if !reflect.DeepEqual(slots, first) {
			return fmt.Sprintf("%s: CLUSTER SLOTS differs from %s's", n.name, live[0].name)
		}
	}
	return ""
}

// waitActive waits until n says it is active (caught up, serving).
func waitActive(t *testing.T, n *node) {
	t.Helper()
	start := time.Now()
	var state string
	var err error
	rdb := n.client(t)
	ok := waitFor(convergeTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		state, err = infoField(ctx, rdb, "replication", "ringcache_state")
		return err == nil && state == "active"
	})
	if !ok {
		t.Fatalf("%s not active within %v: ringcache_state %q (%v)", n.name, convergeTimeout, state, err)
	}
	t.Logf("%s active %v after the wait began", n.name, time.Since(start).Round(time.Millisecond))
}

// infoField returns field from INFO section.
func infoField(ctx context.Context, rdb *redis.Client, section, field string) (string, error) {
	info, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{40}$`)

// checkSlotsLayout checks the raw CLUSTER SLOTS reply of every live node:
// ascending ranges covering every slot, each [start, end, primary,
// replica...] with rf distinct nodes, each node [ip, port, id, {}].
func (c *testCluster) checkSlotsLayout(rf int) {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.live() {
		// RESP2, as redis-cli and most clients read it.
		rdb := redis.NewClient(&redis.Options{Addr: n.addr(), Protocol: 2, MaxRetries: -1})
		defer rdb.Close()
		raw, err := rdb.Do(ctx, "CLUSTER", "SLOTS").Slice()
		if err != nil {
			t.Fatalf("%s: CLUSTER SLOTS: %v", n.name, err)
		}
		next := int64(0)
		for _, r := range raw {
			e, ok := r.([]any)
			if !ok || len(e) < 3 {
				t.Fatalf("%s: CLUSTER SLOTS entry %#v", n.name, r)
			}
			lo, ok1 := e[0].(int64)
			hi, ok2 := e[1].(int64)
			if !ok1 || !ok2 || lo != next || hi < lo {
				t.Fatalf("%s: CLUSTER SLOTS range %v-%v after slot %d", n.name, e[0], e[1], next-1)
			}
			next = hi + 1
			if len(e)-2 != rf {
				t.Fatalf("%s: CLUSTER SLOTS range %d-%d has %d nodes, want %d (primary + %d replicas): %#v", n.name, lo, hi, len(e)-2, rf, rf-1, e[2:])
			}
			seen := map[string]bool{}
			for _, ne := range e[2:] {
				entry, ok := ne.([]any)
				if !ok || len(entry) != 4 {
					t.Fatalf("%s: CLUSTER SLOTS node entry %#v, want [ip, port, id, {}]", n.name, ne)
				}
				ip, _ := entry[0].(string)
				port, okPort := entry[1].(int64)
				id, _ := entry[2].(string)
				meta, okMeta := entry[3].([]any)
				if m, ok := entry[3].(map[any]any); ok {
					okMeta, meta = len(m) == 0, nil
				}
				if net.ParseIP(ip) == nil || !okPort || port <= 0 || !hexID.MatchString(id) || !okMeta || len(meta) != 0 {
					t.Fatalf("%s: CLUSTER SLOTS node entry %#v, want [ip, port, id, {}]", n.name, entry)
				}
				if addr := net.JoinHostPort(ip, strconv.FormatInt(port, 10)); seen[addr] {
					t.Fatalf("%s: CLUSTER SLOTS range %d-%d lists %s twice", n.name, lo, hi, addr)
				} else {
					seen[addr] = true
				}
			}
		}
		if next != cluster.SlotCount {
			t.Fatalf("%s: CLUSTER SLOTS covers slots up to %d", n.name, next-1)
		}
	}
}

// ---------------------------------------------------------------------------
// The ledger

// keyLog is the history of one key: every value written to it, in order,
// and which of them the cluster acknowledged. One writer owns the key.
type keyLog struct {
	key    string
	slot   int
	writer int

	mu        sync.Mutex
	seqs      []int     // writer sequence numbers attempted, ascending
	acked     int       // index in seqs of the last acknowledged write; -1: none
	ackedSent time.Time // when that write was sent
	// The first acknowledgement of a write sent after the load's mark
	// markSeen.
	firstAck time.Time
	markSeen int64
}

func value(writer, seq int) string { return fmt.Sprintf("w%d-%d", writer, seq) }

func parseValue(v string) (writer, seq int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(v, "w"), "-")
	if !found || !strings.HasPrefix(v, "w") {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(a)
	s, err2 := strconv.Atoi(b)
	return w, s, err1 == nil && err2 == nil
}

// attempt records a write about to be sent and returns its index.
func (k *keyLog) attempt(seq int) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seqs = append(k.seqs, seq)
	return len(k.seqs) - 1
}

// ack records that the write at index i was acknowledged at end; sent is
// when it was sent, mark the load's current mark.
func (k *keyLog) ack(i int, sent, end time.Time, mark int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i > k.acked {
		k.acked, k.ackedSent = i, sent
	}
	if mark != 0 && sent.UnixNano() >= mark && k.markSeen != mark {
		k.markSeen, k.firstAck = mark, end
	}
}

// lastAcked returns the index of the last acknowledged write (-1: none)
// and when it was sent.
func (k *keyLog) lastAcked() (int, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.acked, k.ackedSent
}

// verdict checks a value read for the key (isNil: the key was missing)
// against the ledger: it must be a value written to the key, no older than
// the write at index minAcked (-1: anything written, or nil).
func (k *keyLog) verdict(val string, isNil bool, minAcked int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if isNil {
		if minAcked >= 0 {
			return fmt.Errorf("%s (slot %d): nil, but %s was acknowledged", k.key, k.slot, value(k.writer, k.seqs[minAcked]))
		}
		return nil
	}
	w, seq, ok := parseValue(val)
	i := sort.SearchInts(k.seqs, seq)
	if !ok || w != k.writer || i == len(k.seqs) || k.seqs[i] != seq {
		return fmt.Errorf("%s (slot %d) = %q: never written to this key", k.key, k.slot, val)
	}
	if i < minAcked {
		return fmt.Errorf("%s (slot %d) = %q: older than the acknowledged %s (%d writes back)", k.key, k.slot, val, value(k.writer, k.seqs[minAcked]), minAcked-i)
	}
	return nil
}

// check is verdict against the last acknowledged write.
func (k *keyLog) check(val string, isNil bool) error {
	acked, _ := k.lastAcked()
	return k.verdict(val, isNil, acked)
}

// ledger holds the keys of a load, split among its writers.
type ledger struct {
	keys []*keyLog
}

func newLedger(writers, keysPerWriter int) *ledger {
	l := &ledger{}
	for w := range writers {
		for i := range keysPerWriter {
			key := fmt.Sprintf("w%d:key%d", w, i)
			l.keys = append(l.keys, &keyLog{key: key, slot: int(cluster.KeySlot([]byte(key))), writer: w, acked: -1})
		}
	}
	return l
}

// check reads every key with get and checks it against the ledger.
// Transient errors (connections, redirects during a takeover) are retried
// for a while; a wrong value fails at once.
func (l *ledger) check(t *testing.T, what string, get func(ctx context.Context, key string) (string, error)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	var wrong []string
	var retried int
	for _, k := range l.keys {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			val, err := get(ctx, k.key)
			cancel()
			isNil := errors.Is(err, redis.Nil)
			if err != nil && !isNil {
				if time.Now().After(deadline) {
					t.Fatalf("%s: reading %s: %v (still failing after %v)", what, k.key, err, time.Since(start).Round(time.Millisecond))
				}
				retried++
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err := k.check(val, isNil); err != nil {
				wrong = append(wrong, err.Error())
			}
			break
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%s: %d of %d keys wrong, e.g.:\n  %s", what, len(wrong), len(l.keys), strings.Join(wrong[:min(len(wrong), 20)], "\n  "))
		return
	}
	t.Logf("%s: all %d keys hold an allowed value (%v, %d reads retried)", what, len(l.keys), time.Since(start).Round(time.Millisecond), retried)
}

// checkCopies checks that every key has rf copies: on the primary and on
// each replica CLUSTER SLOTS lists for its slot, a READONLY GET returns an
// allowed value. A replica that fell out of the in-sync set may still be
// catching up, so each node gets a while to come right. Without READONLY,
// a replica answers MOVED to the primary.
func (l *ledger) checkCopies(c *testCluster, rf int) {
	t := c.t
	t.Helper()
	slots := c.slotNodes()
	byAddr := map[string][]*keyLog{}
	for _, k := range l.keys {
		holders := slots[k.slot]
		if len(holders) != rf {
			t.Fatalf("slot %d of %s has %d nodes in CLUSTER SLOTS (%v), want %d", k.slot, k.key, len(holders), holders, rf)
		}
		for _, addr := range holders {
			byAddr[addr] = append(byAddr[addr], k)
		}
	}
	ctx := context.Background()
	for addr, keys := range byAddr {
		// The redirect without READONLY, on a key this node replicates, to
		// a connection that asked for the topology (as cluster clients do;
		// the others are served by forwarding).
		for _, k := range keys {
			primary := slots[k.slot][0]
			if primary == addr {
				continue
			}
			plain := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond,
				OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.ClusterSlots(ctx).Err() }})
			err := plain.Get(ctx, k.key).Err()
			plain.Close()
			if want := fmt.Sprintf("MOVED %d %s", k.slot, primary); err == nil || err.Error() != want {
				t.Errorf("replica %s, GET %s without READONLY: %v, want %s", addr, k.key, err, want)
			}
			break
		}
		ro := readOnlyClient(t, addr)
		pending := keys
		start := time.Now()
		deadline := start.Add(15 * time.Second)
		for {
			var still []*keyLog
			var problems []string
			for _, k := range pending {
				val, err := ro.Get(ctx, k.key).Result()
				isNil := errors.Is(err, redis.Nil)
				if err != nil && !isNil {
					still, problems = append(still, k), append(problems, fmt.Sprintf("%s: %v", k.key, err))
					continue
				}
				if err := k.check(val, isNil); err != nil {
					still, problems = append(still, k), append(problems, err.Error())
				}
			}
			if len(still) == 0 {
				t.Logf("copies on %s: %d keys right (%v)", addr, len(keys), time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("copies on %s (READONLY GET): %d of %d keys still wrong after %v, e.g.:\n  %s",
					addr, len(still), len(keys), time.Since(start).Round(time.Millisecond), strings.Join(problems[:min(len(problems), 20)], "\n  "))
				break
			}
			pending = still
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// ---------------------------------------------------------------------------
// Bulk data: enough keys that catch-up and handoff streams take a while

const bulkBatch = 500

func bulkValue(key string) string { return key + "|" + strings.Repeat("x", 100) }

// preload writes n keys prefix:<i> (each with bulkValue) through the
// cluster client, in pipelines, retrying a batch that fails (the cluster
// may be settling after a failover); every key it returns was acknowledged.
func preload(t *testing.T, rdb *redis.ClusterClient, prefix string, n int) []string {
	t.Helper()
	start := time.Now()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + ":" + strconv.Itoa(i)
	}
	ctx := context.Background()
	for lo := 0; lo < n; lo += bulkBatch {
		batch := keys[lo:min(lo+bulkBatch, n)]
		deadline := time.Now().Add(recoverTimeout)
		for {
			pipe := rdb.Pipeline()
			for _, key := range batch {
				pipe.Set(ctx, key, bulkValue(key), 0)
			}
			_, err := pipe.Exec(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("preload %s: batch at %d still failing: %v", prefix, lo, err)
			}
			rdb.ReloadState(ctx)
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("preloaded %d keys %s:* in %v", n, prefix, time.Since(start).Round(time.Millisecond))
	return keys
}

// bulkWrong reads keys in pipelines through rdb and returns the ones
// without their bulkValue (with what was found), and the first transient
// error if a batch could not be read.
func bulkWrong(rdb redis.Cmdable, keys []string) (wrong []string, transient error) {
	ctx := context.Background()
	for lo := 0; lo < len(keys); lo += bulkBatch {
		batch := keys[lo:min(lo+bulkBatch, len(keys))]
		pipe := rdb.Pipeline()
		gets := make([]*redis.StringCmd, len(batch))
		for i, key := range batch {
			gets[i] = pipe.Get(ctx, key)
		}
		pipe.Exec(ctx)
		for i, g := range gets {
			val, err := g.Result()
			switch {
			case errors.Is(err, redis.Nil):
				wrong = append(wrong, batch[i]+" = nil")
			case err != nil:
				if transient == nil {
					transient = fmt.Errorf("%s: %w", batch[i], err)
				}
				wrong = append(wrong, batch[i]+": "+err.Error())
			case val != bulkValue(batch[i]):
				wrong = append(wrong, fmt.Sprintf("%s = %.40q", batch[i], val))
			}
		}
	}
	return wrong, transient
}

// checkBulk checks that every preloaded key reads back through a fresh
// cluster client (transient errors are retried for a while).
func (c *testCluster) checkBulk(what string, keys []string) {
	t := c.t
	t.Helper()
	rdb := c.client()
	start := time.Now()
	var wrong []string
	var transient error
	waitFor(30*time.Second, func() bool {
		wrong, transient = bulkWrong(rdb, keys)
		if transient != nil {
			rdb.ReloadState(context.Background())
		}
		return transient == nil
	})
	if len(wrong) > 0 {
		t.Errorf("%s: %d of %d preloaded keys wrong (last transient error: %v), e.g.:\n  %s",
			what, len(wrong), len(keys), transient, strings.Join(wrong[:min(len(wrong), 20)], "\n  "))
		return
	}
	t.Logf("%s: all %d preloaded keys right (%v)", what, len(keys), time.Since(start).Round(time.Millisecond))
}

// checkBulkCopies checks that every preloaded key has rf copies, read
// with READONLY on the primary and each replica of its slot (each node
// gets a while to catch up).
func (c *testCluster) checkBulkCopies(keys []string, rf int) {
	t := c.t
	t.Helper()
	slots := c.slotNodes()
	byAddr := map[string][]string{}
	for _, key := range keys {
		holders := slots[cluster.KeySlot([]byte(key))]
		if len(holders) != rf {
			t.Fatalf("slot of %s has %d nodes in CLUSTER SLOTS (%v), want %d", key, len(holders), holders, rf)
		}
		for _, addr := range holders {
			byAddr[addr] = append(byAddr[addr], key)
		}
	}
	for addr, keys := range byAddr {
		ro := readOnlyClient(t, addr)
		start := time.Now()
		var wrong []string
		waitFor(15*time.Second, func() bool {
			wrong, _ = bulkWrong(ro, keys)
			return len(wrong) == 0
		})
		if len(wrong) > 0 {
			t.Errorf("copies of preloaded keys on %s (READONLY GET): %d of %d wrong after %v, e.g.:\n  %s",
				addr, len(wrong), len(keys), time.Since(start).Round(time.Millisecond), strings.Join(wrong[:min(len(wrong), 20)], "\n  "))
			continue
		}
		t.Logf("copies on %s: %d preloaded keys right (%v)", addr, len(keys), time.Since(start).Round(time.Millisecond))
	}
}

// ---------------------------------------------------------------------------
// The load: writers and readers through a cluster client

// load runs writers, each owning a disjoint set of keys and writing
// "w<writer>-<seq>" to them in turn, and optional readers, all through one
// cluster client, and keeps the ledger.
type load struct {
	t      *testing.T
	c      *testCluster
	rdb    *redis.ClusterClient
	ledger *ledger

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	mark     atomic.Int64 // UnixNano of the last event marked (kill, join...)
	ackMark  atomic.Int64 // UnixNano from which writes count as sent after it

	mu           sync.Mutex
	firstErr     time.Time // first failed write after the mark
	lastErr      time.Time // last failed write
	errTexts     map[string]int
	readFailures []string // nil or stale reads
	readFailed   int

	writes, writeErrs  []atomic.Int64 // per writer
	slowest            atomic.Int64   // longest write (ns) that ended after the mark
	reads, readErrs    atomic.Int64
	readNils, readsOld atomic.Int64
}

const (
	loadWriters       = 8
	loadKeysPerWriter = 250
	// loadPause between a goroutine's requests keeps the test process
	// from starving the nodes of the 2 CPUs.
	loadPause = time.Millisecond
)

// startLoad starts the writers; halt (also run at cleanup) stops them.
func startLoad(c *testCluster) *load {
	l := &load{
		t:         c.t,
		c:         c,
		rdb:       c.client(),
		ledger:    newLedger(loadWriters, loadKeysPerWriter),
		stop:      make(chan struct{}),
		errTexts:  map[string]int{},
		writes:    make([]atomic.Int64, loadWriters),
		writeErrs: make([]atomic.Int64, loadWriters),
	}
	c.t.Cleanup(l.halt)
	for w := range loadWriters {
		keys := l.ledger.keys[w*loadKeysPerWriter : (w+1)*loadKeysPerWriter]
		l.wg.Add(1)
		go l.writer(w, keys)
	}
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) writer(w int, keys []*keyLog) {
	defer l.wg.Done()
	ctx := context.Background()
	seq := 0
	for {
		for _, k := range keys {
			if l.stopped() {
				return
			}
			seq++
			i := k.attempt(seq)
			sent := time.Now()
			err := l.rdb.Set(ctx, k.key, value(w, seq), 0).Err()
			end := time.Now()
			if m := l.mark.Load(); m != 0 && end.UnixNano() >= m {
				if d := int64(end.Sub(sent)); d > l.slowest.Load() {
					l.slowest.Store(d) // one writer may lose a race: a log figure
				}
			}
			if err == nil {
				k.ack(i, sent, end, l.ackMark.Load())
				l.writes[w].Add(1)
			} else {
				l.writeErrs[w].Add(1)
				l.failed(err, end)
				l.rdb.ReloadState(ctx)
			}
			time.Sleep(loadPause)
		}
	}
}

// failed records a failed write.
func (l *load) failed(err error, at time.Time) {
	text := err.Error()
	if len(text) > 60 {
		text = text[:60]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errTexts[text]++
	if m := l.mark.Load(); m != 0 && at.UnixNano() >= m && l.firstErr.IsZero() {
		l.firstErr = at
	}
	if at.After(l.lastErr) {
		l.lastErr = at
	}
}

// startReaders starts n goroutines that GET random keys with at least one
// acknowledged write: a read may see that value or a later one, never nil
// and never an older one.
func (l *load) startReaders(n int) {
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx := context.Background()
			for !l.stopped() {
				k := l.ledger.keys[rand.IntN(len(l.ledger.keys))]
				acked, _ := k.lastAcked()
				if acked < 0 {
					time.Sleep(loadPause)
					continue
				}
				val, err := l.rdb.Get(ctx, k.key).Result()
				isNil := errors.Is(err, redis.Nil)
				switch {
				case err != nil && !isNil:
					l.readErrs.Add(1)
					l.mu.Lock()
					text := err.Error()
					l.errTexts["read: "+text[:min(len(text), 54)]]++
					l.mu.Unlock()
					l.rdb.ReloadState(ctx)
				default:
					l.reads.Add(1)
					if err := k.verdict(val, isNil, acked); err != nil {
						if isNil {
							l.readNils.Add(1)
						} else {
							l.readsOld.Add(1)
						}
						l.mu.Lock()
						l.readFailed++
						if len(l.readFailures) < 20 {
							l.readFailures = append(l.readFailures, time.Now().Format("15:04:05.000 ")+err.Error())
						}
						l.mu.Unlock()
					}
				}
				time.Sleep(loadPause)
			}
		}()
	}
}

// markEvent notes the time of a membership event (kill, restart, join,
// leave): error windows and first acknowledgements are measured from it.
func (l *load) markEvent(what string) {
	l.mu.Lock()
	l.firstErr = time.Time{}
	l.mu.Unlock()
	l.slowest.Store(0)
	now := time.Now().UnixNano()
	l.mark.Store(now)
	l.ackMark.Store(now)
	l.t.Logf("%s", what)
}

// markDone notes that the event marked has taken effect (the killed
// process is gone): writes sent from now on are the ones that
// acksSinceMark looks at.
func (l *load) markDone() { l.ackMark.Store(time.Now().UnixNano()) }

// waitClean waits until, from the later of now and the last failed write,
// no write has failed for quiet and every key has had a write sent and
// acknowledged.
func (l *load) waitClean(quiet time.Duration) {
	t := l.t
	t.Helper()
	start := time.Now()
	var behind []*keyLog
	ok := waitFor(recoverTimeout, func() bool {
		l.mu.Lock()
		from := l.lastErr
		l.mu.Unlock()
		if from.Before(start) {
			from = start
		}
		behind = behind[:0]
		for _, k := range l.ledger.keys {
			if _, sent := k.lastAcked(); !sent.After(from) {
				behind = append(behind, k)
			}
		}
		return len(behind) == 0 && time.Since(from) >= quiet
	})
	if !ok {
		t.Fatalf("writes did not succeed on every key for %v within %v; %s\n%d keys without an acknowledged write since; %s",
			quiet, recoverTimeout, l.summary(), len(behind), l.c.probe(behind))
	}
	t.Logf("writes clean for %v on every key (waited %v)", quiet, time.Since(start).Round(time.Millisecond))
}

// errorWindow returns the first failed write after the mark and the last
// failed write; zero if none failed after the mark.
func (l *load) errorWindow() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr.IsZero() {
		return time.Time{}, time.Time{}
	}
	return l.firstErr, l.lastErr
}

// acksSinceMark looks, on the keys pick selects, at the first
// acknowledgement of a write sent after the mark (or markDone): how long
// after it the earliest and the latest of them came, and how many keys had
// none.
func (l *load) acksSinceMark(pick func(*keyLog) bool) (earliest, latest time.Duration, missing int) {
	m := l.ackMark.Load()
	var first, last time.Time
	for _, k := range l.ledger.keys {
		if !pick(k) {
			continue
		}
		k.mu.Lock()
		switch {
		case k.markSeen != m:
			missing++
		case first.IsZero() || k.firstAck.Before(first):
			first = k.firstAck
		}
		if k.markSeen == m && k.firstAck.After(last) {
			last = k.firstAck
		}
		k.mu.Unlock()
	}
	if first.IsZero() {
		return 0, 0, missing
	}
	return first.Sub(time.Unix(0, m)), last.Sub(time.Unix(0, m)), missing
}

// halt stops writers and readers and waits for them.
func (l *load) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *load) summary() string {
	var b strings.Builder
	var ok, failed int64
	for w := range l.writes {
		ok += l.writes[w].Load()
		failed += l.writeErrs[w].Load()
	}
	fmt.Fprintf(&b, "writes: %d ok, %d failed (per writer ok/failed:", ok, failed)
	for w := range l.writes {
		fmt.Fprintf(&b, " %d/%d", l.writes[w].Load(), l.writeErrs[w].Load())
	}
	fmt.Fprintf(&b, "); reads: %d ok (%d nil, %d stale), %d failed", l.reads.Load(), l.readNils.Load(), l.readsOld.Load(), l.readErrs.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	type count struct {
		text string
		n    int
	}
	var errs []count
	for text, n := range l.errTexts {
		errs = append(errs, count{text, n})
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].n > errs[j].n })
	for i, e := range errs {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... %d more kinds", len(errs)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %6d x %s", e.n, e.text)
	}
	return b.String()
}

// report logs the counts, and fails on any nil or stale read.
func (l *load) report() {
	t := l.t
	t.Helper()
	t.Logf("load: %s", l.summary())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readFailed > 0 {
		t.Errorf("%d reads of acknowledged keys returned nil or an older value, e.g.:\n  %s", l.readFailed, strings.Join(l.readFailures, "\n  "))
	}
}

// probe describes, for a few keys, their slot's nodes in CLUSTER SLOTS and
// what each live node answers to a plain GET: a diagnosis for failures.
func (c *testCluster) probe(keys []*keyLog) string {
	if len(keys) == 0 {
		return ""
	}
	var b strings.Builder
	slots, err := slotTable(c.live()[0])
	if err != nil {
		fmt.Fprintf(&b, "(%s: %v)", c.live()[0].name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, k := range keys {
		if i == 5 {
			fmt.Fprintf(&b, "\n  ... %d more", len(keys)-i)
			break
		}
		var holders []string
		if slots != nil {
			holders = slots[k.slot]
		}
		fmt.Fprintf(&b, "\n  %s slot %d, CLUSTER SLOTS %v:", k.key, k.slot, holders)
		for _, n := range c.live() {
			rdb := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, ReadTimeout: 2 * time.Second})
			val, err := rdb.Get(ctx, k.key).Result()
			rdb.Close()
			fmt.Fprintf(&b, " [%s %s: %q %v]", n.name, n.addr(), val, err)
		}
	}
	return b.String()
}

// getter returns a GET through a fresh cluster client of the live nodes.
func (c *testCluster) getter() func(ctx context.Context, key string) (string, error) {
	rdb := c.client()
	return func(ctx context.Context, key string) (string, error) {
		v, err := rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			rdb.ReloadState(ctx)
		}
		return v, err
	}
}

// ---------------------------------------------------------------------------
// The scenarios

// TestKillPrimaryUnderLoad kills one of 3 nodes (RF=2) with SIGKILL under
// a write load: the next node of each of its slots takes over within
// seconds, and no acknowledged write is lost.
func TestKillPrimaryUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--replication-factor", "2")
	bulk := preload(t, c.client(), "bulk", bulkKeys)
	l := startLoad(c)
	l.startReaders(2)
	l.waitClean(500 * time.Millisecond)
	time.Sleep(time.Second) // writes flowing on every node

	victim := c.nodes[0]
	primaries := c.primaries()
	victimKey := func(k *keyLog) bool { return primaries[k.slot] == victim.addr() }
	// The cluster's failover time, as a client that asks a live node sees
	// it: a write to a slot of the victim, sent to every live node until
	// one accepts it (not MOVED, not TRYAGAIN).
	var probeSlot int
	for s, p := range primaries {
		if p == victim.addr() {
			probeSlot = s
			break
		}
	}
	probeKey := keyInSlot(probeSlot)
	failover := make(chan time.Duration, 1)
	l.markEvent("kill -9 " + victim.name)
	killed := time.Now()
	go func() { failover <- probeWrite(c.nodes[1:], probeKey, killed) }()
	victim.kill(t)
	l.markDone()
	t.Logf("%s gone %v after SIGKILL", victim.name, time.Since(killed).Round(time.Millisecond))
	took := <-failover
	t.Logf("failover: the cluster accepted a write on a slot of the killed primary %v after the kill (target 2s)", took.Round(time.Millisecond))
	if took > absurdWindow {
		t.Errorf("failover took %v", took)
	}
	l.waitClean(2 * time.Second)
	l.halt()

	first, last := l.errorWindow()
	window := last.Sub(first)
	if first.IsZero() {
		t.Logf("no write failed after the kill")
	} else {
		t.Logf("write error window: %v (first failure %v after the kill, last %v after)",
			window.Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond))
	}
	// Measured from the moment the process was gone.
	takeover, _, missing := l.acksSinceMark(victimKey)
	if missing > 0 {
		t.Errorf("%d keys of the killed primary's slots had no write acknowledged after the kill", missing)
	} else {
		t.Logf("first write accepted on a slot of the killed primary %v after the kill", takeover.Round(time.Millisecond))
	}
	// Writes may also stall (a primary waiting on its dead replica)
	// rather than fail: how long until every key took a write again.
	_, allBack, _ := l.acksSinceMark(func(*keyLog) bool { return true })
	t.Logf("every key accepted a write again %v after the kill; slowest write %v",
		allBack.Round(time.Millisecond), time.Duration(l.slowest.Load()).Round(time.Millisecond))
	if window > absurdWindow || takeover > absurdWindow || allBack > absurdWindow {
		t.Errorf("failover took too long: error window %v, takeover %v, every key back %v (limit %v)", window, takeover, allBack, absurdWindow)
	}
	l.report()
	l.ledger.check(t, "after failover, cluster client", c.getter())
	c.checkBulk("after failover", bulk)
}

// TestRestartCatchUp kills a node under load, lets the others take over,
// and restarts it on its directory within the grace period: it catches up
// on what it missed, becomes active, takes back its primary slots, and
// every copy (primary and replica) of every key is right.
func TestRestartCatchUp(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--replication-factor", "2")
	before := c.primaries()
	l := startLoad(c)
	l.startReaders(2)
	l.waitClean(500 * time.Millisecond)

	victim := c.nodes[0]
	l.markEvent("kill -9 " + victim.name)
	victim.kill(t)
	l.waitClean(time.Second)
	// What the dead node misses: the load's writes, and new keys.
	missed := preload(t, c.client(), "missed", bulkKeys)
	time.Sleep(time.Second)

	l.markEvent("restart " + victim.name)
	restarted := time.Now()
	victim.restart(t, c.nodes[1])
	waitActive(t, victim)
	c.waitConverged(3)
	t.Logf("%s restarted, caught up and converged in %v", victim.name, time.Since(restarted).Round(time.Millisecond))
	if after := c.primaries(); !reflect.DeepEqual(after, before) {
		moved := 0
		for s := range after {
			if after[s] != before[s] {
				moved++
			}
		}
		t.Errorf("after the restart %d slots have another primary than before the kill", moved)
	}
	l.waitClean(time.Second)
	time.Sleep(time.Second)
	l.halt()
	l.report()

	c.checkSlotsLayout(2)
	l.ledger.check(t, "after restart, cluster client", c.getter())
	l.ledger.checkCopies(c, 2)
	c.checkBulk("after restart", missed)
	c.checkBulkCopies(missed, 2)
}

// TestJoinUnderLoad adds a fourth node under a read and write load: it
// streams its future slots while pending, then becomes primary of about a
// quarter of them; no read of an acknowledged key sees nil or an older
// value, and every key ends with 2 copies.
func TestJoinUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--replication-factor", "2")
	before := c.primaries()
	bulk := preload(t, c.client(), "bulk", bulkKeys)
	l := startLoad(c)
	l.startReaders(2)
	l.waitClean(500 * time.Millisecond)
	time.Sleep(500 * time.Millisecond)

	l.markEvent("join a 4th node")
	joined := time.Now()
	n4 := c.addNode()
	waitActive(t, n4)
	c.waitConverged(4)
	t.Logf("%s joined and converged in %v", n4.name, time.Since(joined).Round(time.Millisecond))

	after := c.primaries()
	mine, elsewhere := 0, 0
	for s := range after {
		switch {
		case after[s] == n4.addr():
			mine++
		case after[s] != before[s]:
			elsewhere++
		}
	}
	share := float64(mine) / cluster.SlotCount
	t.Logf("%s is primary of %d slots (%.3f)", n4.name, mine, share)
	if share < 0.15 || share > 0.35 {
		t.Errorf("the new node is primary of %.3f of the slots, want about 1/4", share)
	}
	if elsewhere > 0 {
		t.Errorf("%d slots moved between the old nodes on a join", elsewhere)
	}

	time.Sleep(2 * time.Second)
	l.halt()
	l.report()

	c.checkSlotsLayout(2)
	l.ledger.check(t, "after join, cluster client", c.getter())
	l.ledger.checkCopies(c, 2)
	c.checkBulk("after join", bulk)
	c.checkBulkCopies(bulk, 2)
}

// TestLeaveUnderLoad stops one of 3 nodes with SIGTERM under load: it
// hands its slots over and exits 0, and nothing is lost, even with a
// single copy of each key.
func TestLeaveUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	for _, rf := range []string{"1", "2"} {
		t.Run("RF="+rf, func(t *testing.T) {
			c := startCluster(t, bin, 3, "--replication-factor", rf)
			bulk := preload(t, c.client(), "bulk", bulkKeys)
			l := startLoad(c)
			l.startReaders(2)
			l.waitClean(500 * time.Millisecond)
			time.Sleep(500 * time.Millisecond)

			leaver := c.nodes[1]
			l.markEvent("SIGTERM " + leaver.name)
			signalled := time.Now()
			leaver.signal(syscall.SIGTERM)
			if err := leaver.waitExit(t, 60*time.Second); err != nil {
				t.Fatalf("%s exited with %v after SIGTERM, want 0", leaver.name, err)
			}
			t.Logf("%s handed over and exited in %v", leaver.name, time.Since(signalled).Round(time.Millisecond))
			c.waitConvergedAfterLeave(2)
			l.waitClean(time.Second)
			l.halt()
			l.report()
			if first, last := l.errorWindow(); !first.IsZero() {
				t.Logf("write error window: %v", last.Sub(first).Round(time.Millisecond))
			}
			l.ledger.check(t, "after leave, cluster client", c.getter())
			c.checkBulk("after leave", bulk)
		})
	}
}

// TestMinReplicas: with --min-replicas 1, a primary whose replicas are all
// gone refuses writes with NOREPLICAS (and does not apply them), and still
// serves reads.
func TestMinReplicas(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--replication-factor", "3", "--min-replicas", "1")
	a := c.nodes[0]
	primaries := c.primaries()
	var key string
	for i := 0; ; i++ {
		key = "minrep:" + strconv.Itoa(i)
		if primaries[cluster.KeySlot([]byte(key))] == a.addr() {
			break
		}
	}
	ra := a.client(t)
	ctx := context.Background()
	inSync := func() (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		v, err := infoField(ctx, ra, "replication", "ringcache_in_sync_replicas")
		if err != nil {
			return -1, err
		}
		return strconv.Atoi(v)
	}
	var n int
	var err error
	if !waitFor(convergeTimeout, func() bool { n, err = inSync(); return err == nil && n >= 1 }) {
		t.Fatalf("%s: ringcache_in_sync_replicas %d (%v), want >= 1", a.name, n, err)
	}
	if err := ra.Set(ctx, key, "v1", 0).Err(); err != nil {
		t.Fatalf("SET %s on its primary with replicas in sync: %v", key, err)
	}

	c.nodes[1].kill(t)
	c.nodes[2].kill(t)
	// No write may be acknowledged from here: no replica is alive to have
	// it. Until the primary notices, a write may also time out.
	var refused error
	if !waitFor(30*time.Second, func() bool {
		err := ra.Set(ctx, key, "lost", 0).Err()
		if err == nil {
			t.Fatalf("SET %s acknowledged with both replicas dead", key)
		}
		refused = err
		return strings.HasPrefix(err.Error(), "NOREPLICAS")
	}) {
		t.Fatalf("SET with both replicas dead: %v, want NOREPLICAS Not enough good replicas to write.", refused)
	}
	if !waitFor(10*time.Second, func() bool { n, err = inSync(); return err == nil && n == 0 }) {
		t.Errorf("%s refuses writes but says ringcache_in_sync_replicas %d (%v)", a.name, n, err)
	}
	err = ra.Set(ctx, key, "refused", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "NOREPLICAS") {
		t.Fatalf("SET with no replica in sync: %v, want NOREPLICAS", err)
	}
	t.Logf("refused: %v", err)

	// Reads still work, on the slot A still owns, and see no refused write.
	got, err := ra.Get(ctx, key).Result()
	if err != nil || (got != "v1" && got != "lost") {
		t.Fatalf("GET %s on %s = %q, %v; want v1 (or a write that failed without NOREPLICAS)", key, a.name, got, err)
	}
	if p := c.primaries()[cluster.KeySlot([]byte(key))]; p != a.addr() {
		t.Errorf("slot of %s moved to %s", key, p)
	}
}

// TestDeletesAndExpiryReplicate deletes and expires keys on a primary,
// kills it, and finds them gone on the replica that takes over, beside
// the untouched keys.
func TestDeletesAndExpiryReplicate(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--replication-factor", "2")
	victim := c.nodes[1]
	primaries := c.primaries()
	const per = 50
	var keys []string
	for i := 0; len(keys) < 4*per; i++ {
		key := "dx:" + strconv.Itoa(i)
		if primaries[cluster.KeySlot([]byte(key))] == victim.addr() {
			keys = append(keys, key)
		}
	}
	deleted, setPX, pexpired, kept := keys[:per], keys[per:2*per], keys[2*per:3*per], keys[3*per:]
	ctx := context.Background()
	rv := victim.client(t)
	for _, key := range keys {
		if err := rv.Set(ctx, key, "val-"+key, 0).Err(); err != nil {
			t.Fatalf("SET %s on its primary: %v", key, err)
		}
	}
	for _, key := range deleted {
		if n, err := rv.Del(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("DEL %s = %d, %v", key, n, err)
		}
	}
	for _, key := range setPX {
		if err := rv.Set(ctx, key, "short", 300*time.Millisecond).Err(); err != nil {
			t.Fatalf("SET %s PX 300: %v", key, err)
		}
	}
	for _, key := range pexpired {
		if ok, err := rv.PExpire(ctx, key, 300*time.Millisecond).Result(); err != nil || !ok {
			t.Fatalf("PEXPIRE %s 300 = %v, %v", key, ok, err)
		}
	}
	gone := append(append(append([]string{}, deleted...), setPX...), pexpired...)
	if !waitFor(10*time.Second, func() bool {
		for _, key := range gone {
			if rv.Exists(ctx, key).Val() != 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("deleted and expired keys still exist on the primary after 10s")
	}

	victim.kill(t)
	rdb := c.getter()
	start := time.Now()
	if !waitFor(recoverTimeout, func() bool {
		for _, key := range kept {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			v, err := rdb(ctx, key)
			cancel()
			if errors.Is(err, redis.Nil) {
				t.Fatalf("after failover %s = nil, want %q", key, "val-"+key)
			}
			if err != nil {
				return false
			}
			if v != "val-"+key {
				t.Fatalf("after failover %s = %q, want %q", key, v, "val-"+key)
			}
		}
		return true
	}) {
		t.Fatalf("the kept keys are not readable %v after the kill", recoverTimeout)
	}
	t.Logf("kept keys readable %v after the kill", time.Since(start).Round(time.Millisecond))
	for _, key := range gone {
		var v string
		var err error
		waitFor(10*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			v, err = rdb(ctx, key)
			return err == nil || errors.Is(err, redis.Nil)
		})
		if !errors.Is(err, redis.Nil) {
			t.Errorf("after failover, deleted or expired %s = %q, %v; want nil", key, v, err)
		}
	}
}

// keyInSlot returns a key of the given slot.
func keyInSlot(slot int) string {
	for i := 0; ; i++ {
		k := "probe:" + strconv.Itoa(i)
		if int(cluster.KeySlot([]byte(k))) == slot {
			return k
		}
	}
}

// probeWrite sends SET key to each of nodes in turn, every 10 ms, until one
// accepts it, and returns how long after since that was (or absurdWindow
// plus a second if none did within it).
func probeWrite(nodes []*node, key string, since time.Time) time.Duration {
	ctx := context.Background()
	var clients []*redis.Client
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second})
		defer c.Close()
		clients = append(clients, c)
	}
	for time.Since(since) < absurdWindow {
		for _, c := range clients {
			if c.Set(ctx, key, "probe", 0).Err() == nil {
				return time.Since(since)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return absurdWindow + time.Second
}
