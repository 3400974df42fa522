package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is where a node is in its life in the cluster.
type State uint8

// Node states, carried in gossip metadata.
const (
	StateJoining State = iota // receiving its slots; not yet a primary
	StateActive               // serving its slots
	StateLeaving              // handing its slots over before it exits
	StateLeft                 // handed its slots over; about to exit
)

func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateActive:
		return "active"
	case StateLeaving:
		return "leaving"
	case StateLeft:
		return "left"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Meta is the metadata a node gossips about itself.
type Meta struct {
	ID      string `json:"id"`   // 40 hex characters, stable across restarts
	Addr    string `json:"addr"` // announced RESP address, ip:port
	Bus     int    `json:"bus"`  // gossip port, shown as Redis's cluster bus port
	State   State  `json:"state"`
	Version uint64 `json:"v"` // bumped on every change, so the newest wins
}

// ErrJoin is returned by Start when no seed answered within JoinTimeout.
var ErrJoin = errors.New("cluster: could not join")

// Config configures a node's membership.
type Config struct {
	NodeID      string // 40 hex; LoadNodeID keeps one per data directory
	BindIP      string // address gossip listens on
	GossipPort  int    // memberlist port (TCP and UDP); 0 picks a free one
	AnnounceIP  string // IP other nodes and clients use; default: BindIP unless unspecified, else the first private interface address
	RESPPort    int    // the node's client port, announced in metadata
	Join        []string
	JoinTimeout time.Duration // how long Start retries Join before failing
	SecretKey   string        // shared secret: gossip is encrypted and authenticated with a key derived from it
	VNodes      int           // ring tokens per node
	Replicas    int           // replication factor (preference list length)
	// GracePeriod is how long a dead node keeps its place on the ring, so
	// that a restart is a catch-up rather than a reshuffle.
	GracePeriod time.Duration

	// Failure detection, as memberlist's: loopback-friendly defaults.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	SuspicionMult  int

	Logger *slog.Logger
}

// DefaultConfig returns membership defaults for nodes on one host or a LAN.
func DefaultConfig() Config {
	return Config{
		BindIP:      "127.0.0.1",
		JoinTimeout: 60 * time.Second,
		VNodes:      DefaultVNodes,
		Replicas:    2,
		GracePeriod: 60 * time.Second,
		// A dead node is suspected within about two probe rounds and
		// declared dead SuspicionMult probe intervals later: about 1.5 s in
		// all, so its slots fail over within the 2 s target. A node wrongly
		// declared dead (a long stall) refutes it when it wakes, and comes
		// back through a catch-up, so the cost of a false alarm is a
		// failover, never lost data.
		ProbeInterval:  400 * time.Millisecond,
		ProbeTimeout:   200 * time.Millisecond,
		GossipInterval: 100 * time.Millisecond,
		SuspicionMult:  2,
	}
}

var nodeIDPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// NewNodeID returns a fresh random 40-hex node ID.
func NewNodeID() string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// LoadNodeID returns the node ID kept in dir, creating and saving one the
// first time, so a node keeps its identity (and its place on the ring)
// across restarts.
func LoadNodeID(dir string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !nodeIDPattern.MatchString(id) {
			return "", fmt.Errorf("cluster: %s holds %q, not a 40-hex node ID", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	id := NewNodeID()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, os.Rename(tmp, path)
}

// Cluster is one node's view of the cluster: its gossip membership and the
// ring computed from it.
type Cluster struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	self Meta

	metaMu sync.Mutex
	meta   []byte // encoded self metadata, served to memberlist

	placement atomic.Pointer[Placement]
	epoch     atomic.Uint64 // bumped whenever the placement changes
	// failed is the nodes dead within their grace period, encoded for
	// memberlist's state exchange (see delegate.LocalState).
	failed atomic.Pointer[[]byte]

	evMu   sync.Mutex
	events []memberEvent // posted by the delegates, consumed by the loop

	// Owned by the loop goroutine.
	nodes      map[string]*nodeRecord
	fp         string
	graceTimer *time.Timer

	left    atomic.Bool   // Leave was called: no more announcements
	changed chan struct{} // membership changed; coalesced
	stop    chan struct{}
	done    chan struct{}

	subMu sync.Mutex
	subs  []chan struct{}
}

// Start joins (or founds) the cluster and computes the first ring.
func Start(cfg Config) (*Cluster, error) {
	if !nodeIDPattern.MatchString(cfg.NodeID) {
		return nil, fmt.Errorf("cluster: node ID %q is not 40 hex characters", cfg.NodeID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.VNodes <= 0 {
		cfg.VNodes = DefaultVNodes
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	announce, err := announceIP(cfg.AnnounceIP, cfg.BindIP)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "cluster"),
		changed: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		nodes:   map[string]*nodeRecord{},

		graceTimer: time.NewTimer(time.Hour),
	}
	// A node that joins others starts pending: it becomes active (a
	// primary) once it holds its slots. A node on its own is the cluster.
	state := StateActive
	if len(cfg.Join) > 0 {
		state = StateJoining
	}
	c.self = Meta{ID: cfg.NodeID, Addr: net.JoinHostPort(announce, strconv.Itoa(cfg.RESPPort)), Bus: cfg.GossipPort, State: state, Version: uint64(time.Now().UnixNano())}
	c.encodeMeta()

	mc := memberlist.DefaultLocalConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindIP
	mc.BindPort = cfg.GossipPort
	mc.AdvertiseAddr = announce
	mc.AdvertisePort = cfg.GossipPort
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.GossipInterval = cfg.GossipInterval
	mc.SuspicionMult = cfg.SuspicionMult
	// Full state exchanges repair whatever gossip missed; a few nodes'
	// state is small, so they can be frequent.
	mc.PushPullInterval = 5 * time.Second
	mc.Delegate = &delegate{c}
	mc.Events = &eventDelegate{c}
	mc.Logger = log.New(&slogWriter{log: c.log}, "", 0)
	if cfg.SecretKey != "" {
		key := sha256.Sum256([]byte(cfg.SecretKey))
		mc.SecretKey = key[:]
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip: %w", err)
	}
	c.ml = ml
	// memberlist may have picked the port: announce the one it uses.
	c.cfg.GossipPort = int(ml.LocalNode().Port)
	c.metaMu.Lock()
	c.self.Bus = c.cfg.GossipPort
	c.metaMu.Unlock()
	c.encodeMeta()
	if cfg.GossipPort == 0 {
		if err := ml.UpdateNode(time.Second); err != nil {
			ml.Shutdown()
			return nil, fmt.Errorf("cluster: announce gossip port: %w", err)
		}
	}
	c.rebuild()
	go c.loop()

	if len(cfg.Join) > 0 {
		if err := c.join(cfg.Join, cfg.JoinTimeout); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	return c, nil
}

// join retries until a seed answers, or timeout.
func (c *Cluster) join(seeds []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	backoff := 50 * time.Millisecond
	for {
		n, err := c.ml.Join(seeds)
		if err == nil && n > 0 {
			c.log.Info("joined cluster", "via", seeds, "members", c.ml.NumMembers())
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("%w via %v within %v: %v (is --cluster-key the same on every node?)", ErrJoin, seeds, timeout, err)
		}
		c.log.Warn("join failed; retrying", "seeds", seeds, "err", err, "in", backoff)
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
}

// announceIP picks the IP a node tells others to use: the configured one,
// else the bind IP, else (bound to all interfaces) the first non-loopback
// address, so metadata never carries an empty or unspecified address.
func announceIP(announce, bind string) (string, error) {
	if announce != "" {
		return announce, nil
	}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "127.0.0.1", nil
}

// Ring is the current slot map: each range's primary, then its replicas.
// It never returns nil.
func (c *Cluster) Ring() *Ring { return c.placement.Load().Ring() }

// Placement is the current placement. It never returns nil.
func (c *Cluster) Placement() *Placement { return c.placement.Load() }

// Self is this node's metadata.
func (c *Cluster) Self() Meta {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.self
}

// Epoch counts ring changes; it is the configuration epoch CLUSTER INFO and
// NODES report.
func (c *Cluster) Epoch() uint64 { return c.epoch.Load() }

// GossipPort is the port memberlist listens on.
func (c *Cluster) GossipPort() int { return c.cfg.GossipPort }

// NumMembers is the number of nodes gossip currently sees alive.
func (c *Cluster) NumMembers() int { return c.ml.NumMembers() }

// Members returns the metadata of every alive node, sorted by ID.
func (c *Cluster) Members() []Meta {
	var out []Meta
	for _, n := range c.ml.Members() {
		var m Meta
		if err := json.Unmarshal(n.Meta, &m); err != nil || !nodeIDPattern.MatchString(m.ID) {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Meta) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Subscribe returns a channel that receives a value (coalesced) after each
// ring change.
func (c *Cluster) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.subMu.Lock()
	c.subs = append(c.subs, ch)
	c.subMu.Unlock()
	return ch
}

// SetState changes this node's state and gossips it.
func (c *Cluster) SetState(s State) error {
	c.metaMu.Lock()
	c.self.State = s
	c.self.Version++
	c.metaMu.Unlock()
	c.encodeMeta()
	c.notify()
	err := c.ml.UpdateNode(2 * time.Second)
	// One gossip broadcast of the change is not always enough: seen in
	// tests, two nodes turning active together could each miss the
	// other's update until the next full state exchange. Announcing again
	// (with a fresh incarnation) a few times makes it arrive.
	go c.reannounce()
	if err != nil {
		c.log.Warn("state change not yet confirmed by gossip; announcing again", "state", s, "err", err)
	}
	return nil
}

// reannounce repeats this node's metadata broadcast a few times after a
// change.
func (c *Cluster) reannounce() {
	for _, d := range []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second} {
		select {
		case <-c.stop:
			return
		case <-time.After(d):
		}
		if c.left.Load() {
			return // An alive message now would undo the goodbye.
		}
		if err := c.ml.UpdateNode(time.Second); err != nil {
			c.log.Debug("re-announce", "err", err)
		}
	}
}

// Leave announces that this node is going away and waits up to timeout for
// the message to spread, so the others recompute the ring at once instead
// of waiting for failure detection.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.left.Store(true)
	return c.ml.Leave(timeout)
}

// Shutdown stops gossip without a goodbye (as a crash would look to others).
func (c *Cluster) Shutdown() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	err := c.ml.Shutdown()
	<-c.done
	return err
}

func (c *Cluster) encodeMeta() {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	b, err := json.Marshal(c.self)
	if err != nil {
		panic(err) // a struct of strings and integers always encodes
	}
	c.meta = b
}

// notify tells the loop that membership changed, without blocking: it is
// called from memberlist's delegates.
func (c *Cluster) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// loop owns placement changes: every membership event ends up here, one
// at a time, and the placement is recomputed from the node table.
func (c *Cluster) loop() {
	defer close(c.done)
	defer c.graceTimer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.changed:
		case <-c.graceTimer.C:
		}
		c.rebuild()
	}
}

// memberEvent is a membership change posted by a delegate.
type memberEvent struct {
	name  string
	meta  []byte
	alive bool
	// failedFor, when set, says a peer has held the node dead this long
	// (a failedNode from its state): news only for a node unknown here.
	failedFor time.Duration
}

// failedNode is a node dead within its grace period, as one node tells
// another in memberlist's full state exchange. memberlist does not tell a
// node that joins about members that are already dead, yet a dead node
// keeps its place on the ring for the grace period: without this, a node
// joining while another is dead computes a ring without it, and its slot
// table differs from everyone else's until the grace period ends.
type failedNode struct {
	Meta      Meta          `json:"meta"`
	FailedFor time.Duration `json:"failed_for"`
}

// failedNewsSlack is how much of its grace period a failed node must have
// left for a peer's word of it to add it here: one whose grace period
// ended here may still be in a peer's table for a moment, and must not
// come back.
const failedNewsSlack = 2 * time.Second

func (c *Cluster) post(e memberEvent) {
	c.evMu.Lock()
	c.events = append(c.events, e)
	c.evMu.Unlock()
	c.notify()
}

// rebuild applies the posted events and expired grace periods to the node
// table, and publishes a new placement if anything changed.
func (c *Cluster) rebuild() {
	c.evMu.Lock()
	evs := c.events
	c.events = nil
	c.evMu.Unlock()
	now := time.Now()
	self := c.Self()
	for _, e := range evs {
		if e.name == self.ID {
			continue
		}
		n := c.nodes[e.name]
		switch {
		case e.failedFor > 0:
			var m Meta
			if n != nil || c.cfg.GracePeriod-e.failedFor < failedNewsSlack ||
				json.Unmarshal(e.meta, &m) != nil || m.ID != e.name || m.State == StateLeft {
				continue
			}
			c.nodes[e.name] = &nodeRecord{meta: m, deadSince: now.Add(-e.failedFor), wasActive: true}
			c.log.Warn("a peer reports a failed node; it keeps its place on the ring for the rest of its grace period", "node", e.name[:8], "addr", m.Addr, "failed_for", e.failedFor.Round(time.Millisecond))
		case e.alive:
			var m Meta
			if err := json.Unmarshal(e.meta, &m); err != nil || m.ID != e.name || !nodeIDPattern.MatchString(m.ID) {
				continue
			}
			if n == nil {
				n = &nodeRecord{}
				c.nodes[e.name] = n
			}
			n.meta, n.alive = m, true
		case n == nil:
		case n.meta.State == StateLeft || !n.wasActive:
			// A node that left on purpose handed its slots over; one that
			// never served holds nothing the others lack. (memberlist's
			// own left/dead distinction does not reach the delegate, so
			// the node says it in its metadata before it goes.)
			delete(c.nodes, e.name)
			c.log.Info("node left", "node", e.name[:8], "addr", n.meta.Addr)
		default:
			n.alive, n.deadSince = false, now
			c.log.Warn("node failed; its replicas take over its slots", "node", e.name[:8], "addr", n.meta.Addr, "grace", c.cfg.GracePeriod)
		}
	}
	c.nodes[self.ID] = &nodeRecord{meta: self, alive: true, wasActive: c.nodes[self.ID] != nil && c.nodes[self.ID].wasActive}

	var next time.Duration
	list := make([]*nodeRecord, 0, len(c.nodes))
	for id, n := range c.nodes {
		if n.alive && (n.meta.State == StateActive || n.meta.State == StateLeaving) {
			n.wasActive = true
		}
		if !n.alive {
			left := c.cfg.GracePeriod - now.Sub(n.deadSince)
			if left <= 0 {
				delete(c.nodes, id)
				c.log.Warn("grace period over: node dropped from the ring; its copies are rebuilt elsewhere", "node", id[:8], "addr", n.meta.Addr)
				continue
			}
			if next == 0 || left < next {
				next = left
			}
		}
		list = append(list, n)
	}
	if next > 0 {
		c.graceTimer.Reset(next + 10*time.Millisecond)
	}
	c.shareFailed(list, now)
	slices.SortFunc(list, func(a, b *nodeRecord) int { return strings.Compare(a.meta.ID, b.meta.ID) })
	fp := fingerprint(list)
	if fp == c.fp && c.placement.Load() != nil {
		return
	}
	c.fp = fp
	epoch := c.epoch.Add(1)
	p := newPlacement(list, c.cfg.VNodes, c.cfg.Replicas, epoch)
	c.placement.Store(p)
	ids := make([]string, 0, len(list))
	for _, n := range list {
		desc := n.meta.ID[:8] + "@" + n.meta.Addr + ":" + n.meta.State.String()
		if !n.alive {
			desc += ":dead"
		}
		ids = append(ids, desc)
	}
	c.log.Info("placement changed", "epoch", epoch, "nodes", ids)
	c.subMu.Lock()
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	c.subMu.Unlock()
}

// shareFailed encodes the failed nodes of list for LocalState.
func (c *Cluster) shareFailed(list []*nodeRecord, now time.Time) {
	var failed []failedNode
	for _, n := range list {
		if !n.alive {
			failed = append(failed, failedNode{Meta: n.meta, FailedFor: max(now.Sub(n.deadSince), time.Millisecond)})
		}
	}
	var b []byte
	if len(failed) > 0 {
		var err error
		if b, err = json.Marshal(failed); err != nil {
			panic(err) // strings and integers always encode
		}
	}
	c.failed.Store(&b)
}

// delegate serves this node's metadata and failed nodes to memberlist.
type delegate struct{ c *Cluster }

var _ memberlist.Delegate = (*delegate)(nil)

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.metaMu.Lock()
	defer d.c.metaMu.Unlock()
	if len(d.c.meta) > limit {
		return nil
	}
	return bytes.Clone(d.c.meta)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is this node's part of a full state exchange: the failed
// nodes still on its ring, with how long they have been dead (a duration,
// so the two clocks need not agree).
func (d *delegate) LocalState(join bool) []byte {
	if b := d.c.failed.Load(); b != nil {
		return bytes.Clone(*b)
	}
	return nil
}

// MergeRemoteState learns of the failed nodes a peer still has on its ring.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	var failed []failedNode
	if len(buf) == 0 || json.Unmarshal(buf, &failed) != nil {
		return
	}
	for _, f := range failed {
		meta, err := json.Marshal(f.Meta)
		if err != nil || !nodeIDPattern.MatchString(f.Meta.ID) || f.FailedFor <= 0 {
			continue
		}
		// The delegate runs on memberlist's goroutine: the mark is
		// applied by the loop, after any event memberlist posted first.
		d.c.post(memberEvent{name: f.Meta.ID, meta: meta, failedFor: f.FailedFor})
	}
}

// eventDelegate turns membership events into a wake-up of the loop. It
// never blocks memberlist.
type eventDelegate struct{ c *Cluster }

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func (e *eventDelegate) NotifyJoin(n *memberlist.Node) {
	e.c.post(memberEvent{name: n.Name, meta: bytes.Clone(n.Meta), alive: true})
}

func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	e.c.post(memberEvent{name: n.Name, meta: bytes.Clone(n.Meta), alive: true})
}

func (e *eventDelegate) NotifyLeave(n *memberlist.Node) {
	e.c.post(memberEvent{name: n.Name})
}

// slogWriter forwards memberlist's log lines ("[LEVEL] memberlist: ...")
// to slog at the matching level.
type slogWriter struct{ log *slog.Logger }

var _ io.Writer = (*slogWriter)(nil)

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[DEBUG]"):
		level = slog.LevelDebug
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	}
	if i := strings.Index(line, "] "); i >= 0 {
		line = line[i+2:]
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
