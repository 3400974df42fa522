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
)

func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateActive:
		return "active"
	case StateLeaving:
		return "leaving"
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
		Replicas:    1,
		// Slack enough that a busy node is not declared dead (a flapping
		// member reshuffles slots); a dead node is still out in ~2-3 s.
		ProbeInterval:  time.Second,
		ProbeTimeout:   500 * time.Millisecond,
		GossipInterval: 100 * time.Millisecond,
		SuspicionMult:  4,
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

	ring  atomic.Pointer[Ring]
	epoch atomic.Uint64 // bumped whenever the ring changes

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
	}
	c.self = Meta{ID: cfg.NodeID, Addr: net.JoinHostPort(announce, strconv.Itoa(cfg.RESPPort)), Bus: cfg.GossipPort, State: StateActive, Version: uint64(time.Now().UnixNano())}
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

// Ring is the current ring. It never returns nil.
func (c *Cluster) Ring() *Ring { return c.ring.Load() }

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
	return c.ml.UpdateNode(5 * time.Second)
}

// Leave announces that this node is going away and waits up to timeout for
// the message to spread, so the others recompute the ring at once instead
// of waiting for failure detection.
func (c *Cluster) Leave(timeout time.Duration) error { return c.ml.Leave(timeout) }

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

// loop owns ring changes: every membership event ends up here, one at a
// time, and the ring is recomputed from the member set as it is now.
func (c *Cluster) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.changed:
			c.rebuild()
		}
	}
}

// rebuild computes the ring from the alive members and publishes it if it
// changed.
func (c *Cluster) rebuild() {
	var members []Member
	for _, m := range c.Members() {
		if m.State == StateActive {
			members = append(members, Member{ID: m.ID, Addr: m.Addr})
		}
	}
	if c.ml == nil || len(members) == 0 {
		self := c.Self()
		members = []Member{{ID: self.ID, Addr: self.Addr}}
	}
	next := NewRing(members, c.cfg.VNodes, c.cfg.Replicas)
	if old := c.ring.Load(); old != nil && slices.Equal(old.Members(), next.Members()) {
		return
	}
	c.ring.Store(next)
	epoch := c.epoch.Add(1)
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID[:8] + "@" + m.Addr
	}
	c.log.Info("ring changed", "epoch", epoch, "members", ids)
	c.subMu.Lock()
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	c.subMu.Unlock()
}

// delegate serves this node's metadata to memberlist. It only forwards.
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
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate turns membership events into a wake-up of the loop. It
// never blocks memberlist.
type eventDelegate struct{ c *Cluster }

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func (e *eventDelegate) NotifyJoin(*memberlist.Node)   { e.c.notify() }
func (e *eventDelegate) NotifyLeave(*memberlist.Node)  { e.c.notify() }
func (e *eventDelegate) NotifyUpdate(*memberlist.Node) { e.c.notify() }

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
