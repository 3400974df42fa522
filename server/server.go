package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("server closed")

// Server is one node's RESP front end.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  *storage.Store
	table  Table
	topo   Topology
	repl   *cluster.Replicator // nil for a node without a cluster
	selfID string

	// Settings that CONFIG SET may change while clients run.
	requirePass     atomic.Pointer[string]
	maxClients      atomic.Int64
	protoMaxBulkLen atomic.Int64

	rc *redcon.Server
	ln net.Listener

	mu       sync.RWMutex // guards closing and the in-flight count's start
	closing  bool
	inflight sync.WaitGroup

	clientsMu sync.Mutex
	clients   map[int64]*client
	nextID    atomic.Int64

	stats   stats
	memPeak atomic.Int64
	started time.Time
	runID   string
	cursors cursorStore
	// followers holds the identities of clients that follow redirects
	// (route.go); followersGen counts the identities added.
	followers    sync.Map
	followersGen atomic.Uint64

	pubsub       pubsubHub
	tracking     trackingTable
	notify       notifier
	pubsubLimits atomic.Pointer[outputLimit]
	stopWatch    chan struct{} // closed by Close: the placement watcher stops
}

// stats are the counters INFO reports. The per-command ones are kept per
// connection (see counters), so that clients on different cores do not
// contend on one cache line; retired holds those of closed connections.
type stats struct {
	connections atomic.Int64 // total_connections_received
	rejected    atomic.Int64 // rejected_connections
	// outputLimitDrops counts clients disconnected for their pushes
	// (client_output_buffer_limit_disconnections).
	outputLimitDrops atomic.Int64
	retired          counters
}

// counters are per-connection command counters: written only by the
// connection's goroutine, read by INFO.
type counters struct {
	commands  atomic.Int64 // total_commands_processed
	hits      atomic.Int64 // keyspace_hits
	misses    atomic.Int64 // keyspace_misses
	errors    atomic.Int64 // total_error_replies
	forwarded atomic.Int64 // forwarded_commands: served by another node
	nudged    atomic.Int64 // topology_nudges: MOVED after a placement change
}

// numCounters is how many counters there are.
const numCounters = 6

func (c *counters) fields() [numCounters]*atomic.Int64 {
	return [numCounters]*atomic.Int64{&c.commands, &c.hits, &c.misses, &c.errors, &c.forwarded, &c.nudged}
}

// addTo adds c's counts to sum.
func (c *counters) addTo(sum *[numCounters]int64) {
	for i, f := range c.fields() {
		sum[i] += f.Load()
	}
}

func (c *counters) reset() {
	for _, f := range c.fields() {
		f.Store(0)
	}
}

// totals sums the command counters of closed and open connections:
// commands, hits, misses, errors.
func (s *Server) totals() (sum [numCounters]int64) {
	s.stats.retired.addTo(&sum)
	s.clientsMu.Lock()
	for _, c := range s.clients {
		c.counters.addTo(&sum)
	}
	s.clientsMu.Unlock()
	return sum
}

func (s *Server) resetStats() {
	s.stats.connections.Store(0)
	s.stats.rejected.Store(0)
	s.stats.retired.reset()
	s.clientsMu.Lock()
	for _, c := range s.clients {
		c.counters.reset()
	}
	s.clientsMu.Unlock()
}

// New returns a server for store; Listen then Serve (or Start) run it.
func New(cfg Config, store *storage.Store) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     store,
		clients:   map[int64]*client{},
		started:   time.Now(),
		runID:     randomHex(20),
		topo:      cfg.Topology,
		stopWatch: make(chan struct{}),
	}
	lim := defaultPubsubLimit
	s.pubsubLimits.Store(&lim)
	s.tracking.maxKeys.Store(defaultTrackingMaxKeys)
	nf, _ := parseNotifyFlags(cfg.NotifyKeyspaceEvents) // Validate checked it
	s.notify.set(nf)
	store.SetChangeHandler(s.keysChanged)
	s.requirePass.Store(&cfg.RequirePass)
	s.maxClients.Store(int64(cfg.MaxClients))
	s.protoMaxBulkLen.Store(cfg.ProtoMaxBulkLen)
	s.table = newTable(stringCommands(), keyCommands(), connectionCommands(), serverCommands(), memoryCommands(), clusterCommands(), peerCommands(), pubsubCommands(), multiCommands())
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Listen binds the RESP port. With Port 0 the system picks one; Addr says which.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Bind, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return err
	}
	s.ln = resp.NewGuardListener(pushListener{ln}, s.limits)
	s.rc = redcon.NewServer("", s.handle, s.accept, s.closed)
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// SetTopology sets the cluster the node serves in. Call it between Listen
// (which fixes the port the cluster announces) and Serve.
func (s *Server) SetTopology(t Topology) { s.topo = t }

// SetReplicator makes the node replicate its writes and route by the
// replicator's placement. Call it before Serve.
func (s *Server) SetReplicator(r *cluster.Replicator) { s.repl = r }

// ensureTopology makes a node without a cluster a cluster of one that owns
// every slot.
func (s *Server) ensureTopology() {
	if s.topo == nil {
		addr := s.Addr()
		s.topo = cluster.NewStatic(cluster.NewNodeID(), addr.String(), addr.Port+10000)
	}
	s.selfID = s.topo.Self().ID
}

// Serve answers clients until Close.
func (s *Server) Serve() error {
	if s.ln == nil {
		return errors.New("server: Serve before Listen")
	}
	s.ensureTopology()
	if sub, ok := s.topo.(interface{ Subscribe() <-chan struct{} }); ok {
		go s.watchPlacement(sub.Subscribe())
	}
	err := s.rc.Serve(s.ln)
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	if closing {
		return ErrClosed
	}
	return err
}

// Start listens (unless Listen already did) and serves in the background.
func (s *Server) Start() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.ensureTopology()
	go func() {
		if err := s.Serve(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	return nil
}

// Close stops accepting clients, closes their connections, and waits for
// the commands already executing to finish (their writes commit), so the
// storage can be closed after it without losing an acknowledged write.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	close(s.stopWatch)
	var err error
	if s.rc != nil {
		err = s.rc.Close()
	}
	s.inflight.Wait()
	return err
}

func (s *Server) limits() resp.Limits {
	lim := resp.DefaultLimits()
	lim.MaxBulkLen = s.protoMaxBulkLen.Load()
	return lim
}

// accept registers a connection, or refuses it past maxclients.
func (s *Server) accept(conn redcon.Conn) bool {
	s.clientsMu.Lock()
	n := len(s.clients)
	if int64(n) >= s.maxClients.Load() {
		s.clientsMu.Unlock()
		s.stats.rejected.Add(1)
		conn.WriteError(string(resp.ErrMaxClients))
		conn.Close()
		return false
	}
	c := newClient(s, conn)
	s.clients[c.id] = c
	s.clientsMu.Unlock()
	s.stats.connections.Add(1)
	conn.SetContext(c)
	return true
}

func (s *Server) closed(conn redcon.Conn, err error) {
	c, ok := conn.Context().(*client)
	if !ok {
		return
	}
	c.leaveAll()
	s.stopTracking(c)
	s.clientsMu.Lock()
	delete(s.clients, c.id)
	var sum [numCounters]int64
	c.counters.addTo(&sum)
	for i, f := range s.stats.retired.fields() {
		f.Add(sum[i])
	}
	s.clientsMu.Unlock()
}

// handle runs one pipeline: the command redcon hands over and every other
// complete command already read from the same connection, so that the
// writes among them commit (and later replicate) as one batch.
func (s *Server) handle(conn redcon.Conn, cmd redcon.Command) {
	s.mu.RLock()
	if s.closing {
		s.mu.RUnlock()
		return
	}
	s.inflight.Add(1)
	s.mu.RUnlock()
	defer s.inflight.Done()

	c := conn.Context().(*client)
	if c.push != nil {
		c.push.beginPipeline()
	}
	c.lastActive.Store(time.Now().UnixNano())
	c.exec(cmd.Args)
	for _, next := range conn.ReadPipeline() {
		if c.quit {
			break
		}
		c.exec(next.Args)
	}
	c.flushWrites()
	if c.quit {
		conn.Close()
	}
}

// exec runs a command for c: lookup, arity, authentication, routing,
// then the handler. Errors become replies.
func (c *client) exec(args [][]byte) {
	s := c.srv
	c.counters.commands.Add(1)
	cmd := s.table.lookup(args[0])
	if cmd == nil {
		c.failMulti()
		c.reply(resp.Value{}, resp.ErrUnknownCommand(string(args[0]), args[1:]))
		return
	}
	c.lastCmd.Store(cmd)
	c.beginCommand(cmd)
	// Authentication first, as Redis checks it before anything else: the
	// internal commands too answer NOAUTH to a stranger.
	if !c.authed && cmd.Flags&FlagNoAuth == 0 && *s.requirePass.Load() != "" {
		c.reply(resp.Value{}, resp.ErrNoAuth)
		return
	}
	if c.proto == 2 && c.subs.any() && !subscribedCommands[cmd.Name] {
		c.reply(resp.Value{}, errSubscribedContext(cmd.Name))
		return
	}
	if cmd.Flags&FlagInternal != 0 && !c.peer && cmd.Name != cluster.PeerCommand {
		c.reply(resp.Value{}, errNotPeer)
		return
	}
	if !arityOK(cmd.Arity, len(args)) {
		c.failMulti()
		c.reply(resp.Value{}, resp.ErrArity(cmd.Name))
		return
	}
	if c.multi != nil && !controlsTransaction(cmd) {
		c.queueInMulti(cmd, args)
		return
	}
	p, err := s.route(c, cmd, args)
	if err == nil && cmd.Flags&FlagDenyOOM != 0 && p.kind == planLocal && s.overMemoryLimit(p.slot) {
		err = resp.ErrOOM
	}
	if err != nil {
		c.reply(resp.Value{}, err)
		return
	}
	tracked := c.tracking.Load() != nil && cmd.Flags&FlagReadonly != 0 && c.tracksRead()
	switch p.kind {
	case planForward, planSplit:
		if p.kind == planForward {
			c.forward(p.node, args)
		} else {
			c.split(cmd, args)
		}
		if tracked {
			// Served elsewhere, so not tracked there: invalidated right
			// after the reply (tracking.go).
			cmd.keyPositions(args, func(i int) { s.invalidate(c, args[i], 0) })
		}
		return
	}
	if tracked {
		s.trackKeys(c, cmd, args)
	}
	slot := p.slot
	ctx := &c.ctx
	*ctx = Ctx{srv: s, c: c, cmd: cmd, Args: args, Slot: slot}
	if cmd.Write != nil {
		if s.repl != nil && cmd.Flags&FlagKeyless == 0 {
			if err := s.checkWrite(cmd, args); err != nil {
				c.reply(resp.Value{}, err)
				return
			}
		}
		fn, err := cmd.Write(ctx)
		if err != nil {
			c.reply(resp.Value{}, err)
			return
		}
		c.queueWrite(fn)
		return
	}
	// A read must see the writes queued before it on this connection.
	c.commitQueued()
	v, err := cmd.Read(ctx)
	if err != errReplied {
		c.reply(v, err)
	}
}

// checkWrite checks that every slot a write touches takes writes here
// (min-replicas, a node leaving).
func (s *Server) checkWrite(cmd *Command, args [][]byte) error {
	var err error
	last := -1
	cmd.keyPositions(args, func(i int) {
		if slot := int(cluster.KeySlot(args[i])); err == nil && slot != last {
			last = slot
			err = s.repl.CheckWrite(uint16(slot))
		}
	})
	return err
}

// overMemoryLimit reports whether a command that may grow memory in slot
// must be refused: this node is over its limit and cannot evict, or (with
// noeviction) a replica of the slot is over its own.
func (s *Server) overMemoryLimit(slot uint16) bool {
	if s.store.OverMemoryLimit() {
		return true
	}
	return s.repl != nil && s.store.MemoryConfig().Policy == storage.NoEviction && s.repl.ReplicaOverLimit(slot)
}

// Ctx is what a handler sees of the command it runs. It is reused per
// connection, so handlers must not keep it past their return (write
// closures copy what they need).
type Ctx struct {
	srv  *Server
	c    *client
	cmd  *Command
	Args [][]byte
	Slot uint16 // the slot of the command's keys, when it has any
}

// Store is the node's storage.
func (ctx *Ctx) Store() *storage.Store { return ctx.srv.store }

func (s *Server) String() string { return fmt.Sprintf("ringcache %s", s.ln.Addr()) }
