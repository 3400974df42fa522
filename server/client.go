package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// client is the state of one connection. Only the connection's own
// goroutine touches it, except the fields CLIENT LIST reads (under mu, or
// atomic).
type client struct {
	srv     *Server
	conn    redcon.Conn
	id      int64
	addr    string
	laddr   string
	created time.Time

	proto  int // 2 or 3
	authed bool
	quit   bool
	ctx    Ctx

	// readonly is set by READONLY: reads of slots this node replicates are
	// served here instead of redirected.
	readonly bool
	// aware marks a connection that follows redirects: it asked for the
	// topology, or sent READONLY or ASKING (route.go).
	aware bool
	// seenEpoch is the placement epoch the connection was last told of.
	seenEpoch uint64
	// identityFollows caches whether the connection's client follows
	// redirects on another connection (route.go), as of followersGen
	// (noFollowersGen: not looked up yet).
	identityFollows bool
	followersGen    uint64
	// forwarded marks a peer's connection that carries commands it
	// forwards for its clients (cluster.ForwardCommand).
	forwarded bool
	// peer marks a connection from another node (after the handshake);
	// nonce is the handshake's challenge.
	peer  bool
	nonce string
	// push is the connection's socket, for pushed messages; subs its
	// subscriptions.
	push *pushConn
	subs subscriptions
	// subscribed says whether subs has any, for other goroutines (an
	// invalidation redirected here).
	subscribed atomic.Bool
	// tracking is the connection's CLIENT TRACKING mode, nil when off;
	// cachingNext is CLIENT CACHING's choice for the next command,
	// cachingNow the running command's (tracking.go); redirBroken is set
	// once the redirect target was found gone.
	tracking    atomic.Pointer[trackOpts]
	cachingNow  int8
	cachingNext int8
	redirBroken atomic.Bool
	// multi holds the commands queued since MULTI, nil outside one;
	// inExec is set while EXEC runs them (multi.go).
	multi  *multiState
	inExec bool
	// notes are the keyspace events the connection's queued writes noted,
	// not yet published; notesQueued says it is in the notifier's queue.
	// The committer touches them while the connection waits for its
	// batch, the connection after (notify.go). notifyBuf is a scratch
	// buffer for the events it publishes itself.
	notes       []note
	notesQueued bool
	notifyBuf   []byte
	// replicaAcks is how many replicas acknowledged this connection's last
	// write, for WAIT.
	replicaAcks int

	mu      sync.Mutex // guards name, libName, libVer
	name    string
	libName string
	libVer  string

	shownProto atomic.Int32
	lastActive atomic.Int64 // unix ns of the last pipeline
	counters   counters
	lastCmd    atomic.Pointer[Command]

	// Writes queued on this connection and not yet committed, and the
	// replies waiting behind them, in order.
	writes  []func(*storage.Tx)
	replies []queuedReply

	out []byte // reply encoding buffer, reused
	// scratch receives the values reads copy out of the store, reused.
	scratch []byte
}

// noFollowersGen makes a client look its identity up again.
const noFollowersGen = ^uint64(0)

type queuedReply struct {
	v   resp.Value
	err error
	// write marks the reply of a queued write, pending until its batch
	// commits: a failed commit replaces it.
	write, pending bool
	// fwd is a command forwarded to another node, waiting for its reply.
	fwd *forwarded
	// gather computes the reply from earlier (hidden) ones: a command
	// split by node.
	gather func() (resp.Value, error)
	// hidden marks a part of a split command, not written itself.
	hidden bool
}

func newClient(s *Server, conn redcon.Conn) *client {
	c := &client{
		srv:     s,
		conn:    conn,
		id:      s.nextID.Add(1),
		addr:    conn.RemoteAddr(),
		created: time.Now(),
		proto:   2,
		authed:  *s.requirePass.Load() == "",
	}
	if s.topo != nil {
		c.seenEpoch = s.topo.Epoch()
	}
	c.followersGen = noFollowersGen
	if nc := conn.NetConn(); nc != nil {
		c.laddr = nc.LocalAddr().String()
		c.push = findPushConn(nc)
	}
	c.shownProto.Store(2)
	c.lastActive.Store(c.created.UnixNano())
	return c
}

// reply sends v (or err) in order: behind queued replies if there are
// any (a copy then, as v may alias the read buffer the next command
// reuses).
func (c *client) reply(v resp.Value, err error) {
	if len(c.replies) > 0 || c.inExec {
		c.replies = append(c.replies, queuedReply{v: cloneValue(v), err: err})
		return
	}
	c.write(v, err)
}

func (c *client) write(v resp.Value, err error) {
	if err != nil {
		c.counters.errors.Add(1)
		v = resp.ErrorValue(err)
	}
	if v.Kind == resp.KindBulk && v.Bytes != nil {
		// GET's reply, the same on both protocols: copy the value once,
		// straight into the connection's buffer.
		c.conn.WriteBulk(v.Bytes)
		return
	}
	c.out = resp.Append(c.out[:0], v, c.proto)
	c.conn.WriteRaw(c.out)
}

func (c *client) countLookup(found bool) {
	if found {
		c.counters.hits.Add(1)
	} else {
		c.counters.misses.Add(1)
	}
}

// queueWrite adds a write to the connection's batch; its reply is sent when
// the batch commits.
func (c *client) queueWrite(fn func(*storage.Tx) (resp.Value, error)) {
	i := len(c.replies)
	c.replies = append(c.replies, queuedReply{write: true, pending: true})
	c.writes = append(c.writes, func(tx *storage.Tx) {
		// Runs in the committer while this connection waits in
		// commitQueued, so writing into c.replies (and c.notes) does not
		// race.
		mark := len(c.notes)
		v, err := fn(tx)
		r := &c.replies[i]
		r.v, r.err = v, err
		if len(c.notes) > mark {
			c.afterWrite(tx, mark)
		}
	})
}

// commitWrites commits the queued writes as one batch and, with repl, ships
// them to the replicas and waits for them.
func (c *client) commitWrites(repl *cluster.Replicator) error {
	if repl != nil {
		if err := repl.BeginWrite(); err != nil {
			return err // Leaving: nothing was applied.
		}
		defer repl.EndWrite()
	}
	p := c.srv.store.SubmitFrom(c.id, c.writes...)
	var ship *cluster.Shipment
	if repl != nil && !repl.Alone() {
		// Ship to the replicas while the local commit proceeds. (Alone, a
		// node skips this wait: it would wake this goroutine only to park
		// it again on the commit.)
		<-p.Ran()
		if muts := p.Mutations(); len(muts) > 0 {
			ship = repl.Send(muts)
		}
	}
	err := p.Wait()
	if len(c.notes) > 0 || c.notesQueued {
		c.publishNotes()
	}
	if ship != nil {
		acks, rerr := ship.Wait()
		if err == nil {
			c.replicaAcks, err = acks, rerr
		}
	}
	return err
}

// commitQueued commits the queued writes as one batch, so that the reads
// after them see them; their replies stay queued.
func (c *client) commitQueued() {
	if len(c.writes) == 0 {
		return
	}
	repl := c.srv.repl
	if c.peer && !c.forwarded {
		repl = nil // A replica applies; it does not replicate further.
	}
	err := c.commitWrites(repl)
	clear(c.writes)
	c.writes = c.writes[:0]
	for i := range c.replies {
		if r := &c.replies[i]; r.pending {
			r.pending = false
			if err != nil {
				r.v, r.err = resp.Value{}, err
			}
		}
	}
}

// flushWrites commits the queued writes, waits for the forwarded commands,
// and sends every queued reply, in order.
func (c *client) flushWrites() {
	if len(c.replies) == 0 {
		return
	}
	c.commitQueued()
	for i := range c.replies {
		r := &c.replies[i]
		switch {
		case r.fwd != nil:
			r.v, r.err = r.fwd.wait(c.srv)
			r.fwd = nil
		case r.gather != nil:
			r.v, r.err = r.gather()
			r.gather = nil
		}
		if !r.hidden {
			if r.err == nil && r.v.Kind == resp.KindError {
				// Another node's error reply, counted as this node's own.
				r.err = resp.Error(r.v.Str)
			}
			c.write(r.v, r.err)
		}
	}
	clear(c.replies)
	c.replies = c.replies[:0]
}
