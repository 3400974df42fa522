package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// Internal commands: node-to-node traffic on the RESP port. A connection
// may send them only after PeerCommand's handshake, which proves knowledge
// of the cluster key.
const (
	PeerCommand   = "ringcache.peer"   // handshake: no argument gives a nonce; <id> <proof> answers it
	ApplyCommand  = "ringcache.apply"  // <batch>: apply states newer than the stored ones; replies [applied, memory excess]
	DigestCommand = "ringcache.digest" // <slots>: replies the slots' digests
	StreamCommand = "ringcache.stream" // <slot>: replies every stored state of the slot as a batch
	InSyncCommand = "ringcache.insync" // <id>: 1 if this node, as primary, has node id in sync for all its slots
	StateCommand  = "ringcache.state"  // <id>: the state this node sees node id in
)

// errLinkDown is returned for calls on a connection that broke.
var errLinkDown = errors.New("cluster: link to peer down")

// PeerProof is the answer to a handshake nonce: an HMAC of the nonce and
// the node ID under the cluster key.
func PeerProof(key, nonce, id string) string {
	mac := hmac.New(sha256.New, []byte("ringcache-peer:"+key))
	mac.Write([]byte(nonce))
	mac.Write([]byte{0})
	mac.Write([]byte(id))
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyPeerProof checks a handshake answer.
func VerifyPeerProof(key, nonce, id, proof string) bool {
	return hmac.Equal([]byte(PeerProof(key, nonce, id)), []byte(proof))
}

// call is one request on a link. Calls with a batch (apply) that are queued
// together travel as one ApplyCommand and complete together.
type call struct {
	args  [][]byte // the command, or nil for a batch
	batch []byte
	done  chan struct{}
	reply resp.Value
	err   error
	gen   uint64 // the connection it went out on
	// outOfSync, when set, is the link whose peer falls out of sync if the
	// call fails: a replicated batch it did not apply, even one nobody
	// waits for, means it lacks writes.
	outOfSync *link
}

func (c *call) finish(v resp.Value, err error) {
	c.reply, c.err = v, err
	if err == nil && v.Kind == resp.KindError {
		c.err = resp.Error(v.Str)
	}
	if c.err != nil && c.outOfSync != nil {
		c.outOfSync.dropSync(fmt.Sprintf("a replicated batch failed: %v", c.err))
	}
	close(c.done)
}

// wait waits for the reply up to timeout; with none left (timeout <= 0)
// it only looks whether the reply is there.
func (c *call) wait(timeout time.Duration) (resp.Value, error) {
	if timeout <= 0 {
		select {
		case <-c.done:
			return c.reply, c.err
		default:
			return resp.Value{}, errors.New("cluster: no reply in time")
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return c.reply, c.err
	case <-t.C:
		return resp.Value{}, fmt.Errorf("cluster: no reply within %v", timeout)
	}
}

// maxCoalesce bounds the bytes of batches merged into one ApplyCommand.
const maxCoalesce = 8 << 20

// maxQueued bounds the bytes of batches waiting for a slow peer; beyond it
// calls fail (the peer leaves the in-sync set and is repaired later).
const maxQueued = 256 << 20

// link is this node's persistent, pipelined connection to one peer. Calls
// queue up; one goroutine writes everything queued (merging batches), one
// reads the replies in order. When the connection breaks every call in
// flight fails and the next call dials again.
type link struct {
	r    *Replicator
	id   string
	addr string

	mu     sync.Mutex
	queue  []*call
	queued int    // bytes of batches in queue
	gen    uint64 // bumped on every new connection (and every break)
	closed bool
	// down is set while the peer cannot be reached: calls fail at once
	// instead of piling up until the next attempt.
	down bool
	// synced marks the slots whose data this peer is known to hold, as a
	// replica of this node, on connection gen syncedGen.
	synced    [SlotCount]bool
	syncedGen uint64
	// drops counts dropSync calls: a repair whose proof started before a
	// drop (a batch the peer failed, on a connection still up) proves
	// nothing.
	drops   uint64
	lastErr string
	lastAck time.Time
	// excess is the peer's memory excess as its last apply reply said.
	excess atomic.Int64
	// forward marks a link that carries forwarded client commands
	// (ForwardCommand) rather than replication.
	forward bool

	wake chan struct{}
	stop chan struct{}
}

func newLink(r *Replicator, id, addr string) *link {
	l := &link{r: r, id: id, addr: addr, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go l.run()
	return l
}

// send queues a call and returns it.
func (l *link) send(c *call) *call {
	c.done = make(chan struct{})
	l.mu.Lock()
	if l.closed || l.down || l.queued+len(c.batch) > maxQueued {
		down := l.down
		l.mu.Unlock()
		c.finish(resp.Value{}, errLinkDown)
		if down {
			l.poke() // Let the writer try again when its backoff allows.
		}
		return c
	}
	l.queue = append(l.queue, c)
	l.queued += len(c.batch)
	l.mu.Unlock()
	l.poke()
	return c
}

func (l *link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// do sends a command and waits for its reply.
func (l *link) do(timeout time.Duration, args ...[]byte) (resp.Value, error) {
	return l.send(&call{args: args}).wait(timeout)
}

func (l *link) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	l.mu.Unlock()
}

// inSync reports whether the peer holds slot's data as of now.
func (l *link) inSync(slot uint16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.synced[slot] && l.syncedGen == l.gen
}

// markSynced records that the peer holds slots, if the connection the
// proof went over (gen) is still the current one and nothing failed on it
// since the proof began (drops).
func (l *link) markSynced(slots []uint16, gen, drops uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen || drops != l.drops {
		return false
	}
	if l.syncedGen != gen {
		l.synced = [SlotCount]bool{}
		l.syncedGen = gen
	}
	for _, s := range slots {
		l.synced[s] = true
	}
	return true
}

// forget clears the synced mark of slots the peer no longer replicates
// for this node: if it becomes a replica again, it must catch up first.
func (l *link) forget(keep func(slot uint16) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.synced {
		if l.synced[s] && !keep(uint16(s)) {
			l.synced[s] = false
		}
	}
}

// dropSync marks the peer out of sync everywhere, as after a failed or
// late replication.
func (l *link) dropSync(why string) {
	if l.forward {
		return // No sync state: the link only forwards commands.
	}
	l.mu.Lock()
	was := l.syncedGen == l.gen
	l.drops++
	l.syncedGen = 0
	l.synced = [SlotCount]bool{}
	l.lastErr = why
	l.mu.Unlock()
	if was {
		l.r.log.Warn("replica out of sync; it will be repaired", "peer", l.id[:8], "addr", l.addr, "why", why)
	}
	l.r.kick()
}

// run is the writer goroutine: it connects when there is work, writes all
// queued calls, and hands them to the connection's reader.
func (l *link) run() {
	var (
		conn     *resp.Conn
		inflight chan []*call
		broken   chan struct{}
		backoff  = 20 * time.Millisecond
	)
	disconnect := func(err error) {
		if conn == nil {
			return
		}
		conn.Close()
		close(inflight) // The reader fails what is left in flight.
		conn, inflight = nil, nil
		l.mu.Lock()
		l.gen++
		l.mu.Unlock()
		l.dropSync(err.Error())
	}
	defer func() {
		if conn != nil {
			disconnect(errLinkDown)
		}
		l.mu.Lock()
		q := l.queue
		l.queue = nil
		l.mu.Unlock()
		for _, c := range q {
			c.finish(resp.Value{}, errLinkDown)
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-broken:
			disconnect(errLinkDown)
			broken = nil
			continue
		}
		if conn == nil {
			c, err := l.dial()
			if err != nil {
				l.mu.Lock()
				l.down = true
				l.mu.Unlock()
				l.failQueue(err)
				select {
				case <-l.stop:
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, time.Second)
				continue
			}
			l.mu.Lock()
			l.down = false
			l.mu.Unlock()
			backoff = 20 * time.Millisecond
			conn = c
			inflight = make(chan []*call, 4096)
			broken = make(chan struct{})
			l.mu.Lock()
			l.gen++
			gen := l.gen
			l.mu.Unlock()
			go l.read(conn, inflight, broken, gen)
		}
		l.mu.Lock()
		q := l.queue
		l.queue, l.queued = nil, 0
		gen := l.gen
		l.mu.Unlock()
		if len(q) == 0 {
			continue
		}
		if err := l.write(conn, inflight, q, gen); err != nil {
			disconnect(err)
			broken = nil
		}
	}
}

// failQueue fails every queued call.
func (l *link) failQueue(err error) {
	l.mu.Lock()
	q := l.queue
	l.queue, l.queued = nil, 0
	l.lastErr = err.Error()
	l.mu.Unlock()
	for _, c := range q {
		c.finish(resp.Value{}, err)
	}
}

// write sends the queued calls, merging runs of batches into one command.
func (l *link) write(conn *resp.Conn, inflight chan []*call, q []*call, gen uint64) error {
	var batch []byte
	var group []*call
	flushGroup := func() {
		if len(group) == 0 {
			return
		}
		conn.WriteCommand([]byte(ApplyCommand), batch)
		inflight <- group
		group, batch = nil, nil
	}
	for _, c := range q {
		c.gen = gen
		if c.args == nil {
			if len(batch)+len(c.batch) > maxCoalesce {
				flushGroup()
			}
			if len(group) == 0 {
				batch = c.batch
			} else {
				if len(group) == 1 {
					batch = append(make([]byte, 0, 2*len(batch)+len(c.batch)), batch...)
				}
				batch = append(batch, c.batch...)
			}
			group = append(group, c)
			continue
		}
		flushGroup()
		conn.WriteCommand(c.args...)
		inflight <- []*call{c}
	}
	flushGroup()
	return conn.Flush()
}

// read completes calls in order as their replies arrive.
func (l *link) read(conn *resp.Conn, inflight chan []*call, broken chan struct{}, gen uint64) {
	var err error
	for group := range inflight {
		if err == nil {
			conn.SetReadDeadline(time.Now().Add(l.r.readTimeout()))
			var v resp.Value
			v, err = conn.ReadReply()
			if err == nil {
				l.mu.Lock()
				l.lastAck = time.Now()
				l.mu.Unlock()
				if group[0].args == nil && v.Kind != resp.KindError {
					_, excess := ParseApplyReply(v)
					l.setExcess(excess)
				}
				for _, c := range group {
					c.finish(v, nil)
				}
				continue
			}
			conn.Close()
			close(broken)
		}
		for _, c := range group {
			c.finish(resp.Value{}, fmt.Errorf("%w: %v", errLinkDown, err))
		}
	}
}

// ApplyReply is a replica's answer to ApplyCommand: how many states it
// applied, and by how many bytes it is over its maxmemory (0 if not), so
// that the primary evicts for it: a replica never evicts keys of slots it
// does not own.
func ApplyReply(applied, excess int64) resp.Value {
	return resp.Array(resp.Int(applied), resp.Int(excess))
}

// ParseApplyReply reads ApplyReply's answer.
func ParseApplyReply(v resp.Value) (applied, excess int64) {
	if v.Kind == resp.KindArray && len(v.Elems) == 2 {
		return v.Elems[0].Int, max(v.Elems[1].Int, 0)
	}
	return v.Int, 0
}

// setExcess records the peer's memory excess, and tells the replicator
// when it changed.
func (l *link) setExcess(n int64) {
	if l.excess.Swap(n) != n {
		l.r.updateEvictionDemand()
	}
}

// dial connects and performs the handshake.
func (l *link) dial() (*resp.Conn, error) {
	conn, err := resp.Dial(l.addr, time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	v, err := conn.Do([]byte(PeerCommand))
	if err == nil && v.Kind != resp.KindBulk {
		err = fmt.Errorf("handshake: %s", v.Str)
	}
	if err == nil {
		proof := PeerProof(l.r.key, string(v.Bytes), l.r.self)
		v, err = conn.Do([]byte(PeerCommand), []byte(l.r.self), []byte(proof))
		if err == nil && v.Kind == resp.KindError {
			err = fmt.Errorf("handshake refused: %s (is --cluster-key the same on every node?)", v.Str)
		}
	}
	if err == nil && l.forward {
		v, err = conn.Do([]byte(ForwardCommand))
		if err == nil && v.Kind == resp.KindError {
			err = fmt.Errorf("forwarding refused: %s", v.Str)
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// encodeBatch encodes mutations as one batch.
func encodeBatch(muts []storage.Mutation) []byte {
	n := 0
	for i := range muts {
		n += recordHeaderLen + 10 + len(muts[i].Key) + len(muts[i].Rec.Value)
	}
	b := make([]byte, 0, n)
	for _, m := range muts {
		b = AppendMutation(b, m)
	}
	return b
}
