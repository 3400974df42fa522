package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pushConn is a client's socket. redcon writes each pipeline's replies
// through it in one Write; messages that other goroutines push to the
// client (invalidations, pub/sub messages) are queued here and written
// between pipelines, never inside a reply: after the replies of a
// pipeline that was running when they were queued, or at once by the
// connection's pusher when it is idle. A client that reads a key and gets
// an invalidation of it queued during the read therefore sees the reply
// first and the invalidation after it, never the other way round.
//
// Until a connection subscribes or turns tracking on, Write goes straight
// to the socket: plain connections pay one atomic load per pipeline.
type pushConn struct {
	net.Conn
	enabled atomic.Bool
	start   sync.Once
	signal  chan struct{} // a message was queued while idle (capacity 1)
	done    chan struct{} // closed with the connection

	wmu sync.Mutex // serializes writes to the socket

	qmu        sync.Mutex // guards what follows
	queue      []byte     // pushed messages, encoded, not yet written
	spare      []byte     // the previous queue's buffer, for reuse
	inPipeline bool       // a pipeline runs: its Write takes the queue
	closed     bool
	// dropped is set once the queue went over its limit: the connection
	// is closed and nothing more is queued.
	dropped bool
	// overSoft is when the queue last went over the soft limit, zero
	// while under it.
	overSoft time.Time
}

// pushListener wraps the sockets it accepts in pushConns.
type pushListener struct{ net.Listener }

func (l pushListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &pushConn{Conn: c, signal: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// findPushConn finds the pushConn under the wrappers of nc (the protocol
// guard), or nil.
func findPushConn(nc net.Conn) *pushConn {
	for nc != nil {
		if p, ok := nc.(*pushConn); ok {
			return p
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// enable makes the connection take pushes, and starts its pusher. From
// the connection's own pipeline (a SUBSCRIBE, CLIENT TRACKING ON), own
// says so: what is pushed from then on waits for the pipeline's replies,
// as it would had the pipeline begun enabled.
func (p *pushConn) enable(own bool) {
	p.start.Do(func() {
		if own {
			p.qmu.Lock()
			p.inPipeline = true
			p.qmu.Unlock()
		}
		p.enabled.Store(true)
		go p.pusher()
	})
}

// beginPipeline marks a pipeline as running: messages queued from now on
// wait for its replies.
func (p *pushConn) beginPipeline() {
	if !p.enabled.Load() {
		return
	}
	p.qmu.Lock()
	p.inPipeline = true
	p.qmu.Unlock()
}

// Write writes a pipeline's replies, then the messages queued behind them.
func (p *pushConn) Write(b []byte) (int, error) {
	if !p.enabled.Load() {
		return p.Conn.Write(b)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	q := p.take(true)
	if len(q) == 0 {
		return p.Conn.Write(b)
	}
	bufs := net.Buffers{b, q}
	_, err := bufs.WriteTo(p.Conn)
	p.giveBack(q)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// take returns the queued messages and empties the queue; ending says the
// pipeline's replies are being written with them.
func (p *pushConn) take(ending bool) []byte {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if ending {
		p.inPipeline = false
	} else if p.inPipeline {
		return nil // The pipeline's Write takes them.
	}
	q := p.queue
	p.queue = p.spare[:0]
	p.spare = nil
	return q
}

// maxSpare is the largest queue buffer kept for reuse.
const maxSpare = 64 << 10

func (p *pushConn) giveBack(q []byte) {
	if cap(q) > maxSpare {
		return
	}
	p.qmu.Lock()
	if p.spare == nil {
		p.spare = q[:0]
	}
	p.qmu.Unlock()
}

// push queues an encoded message. Past lim (a client that does not read:
// more than lim.hard bytes waiting, or more than lim.soft for
// lim.softFor), the connection is closed instead, as Redis closes a client
// past its output buffer limit; push then reports false.
func (p *pushConn) push(msg []byte, lim *outputLimit) bool {
	p.qmu.Lock()
	if p.closed || p.dropped {
		p.qmu.Unlock()
		return false
	}
	n := int64(len(p.queue) + len(msg))
	over := lim.hard > 0 && n > lim.hard
	if !over && lim.soft > 0 && n > lim.soft {
		now := time.Now()
		if p.overSoft.IsZero() {
			p.overSoft = now
		} else if now.Sub(p.overSoft) > lim.softFor {
			over = true
		}
	} else if !over {
		p.overSoft = time.Time{}
	}
	if over {
		p.dropped = true
		p.queue = nil
		p.qmu.Unlock()
		p.Conn.Close()
		return false
	}
	p.queue = append(p.queue, msg...)
	idle := !p.inPipeline
	p.qmu.Unlock()
	if idle {
		select {
		case p.signal <- struct{}{}:
		default:
		}
	}
	return true
}

// queued is how many bytes of messages wait to be written.
func (p *pushConn) queued() int {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	return len(p.queue)
}

// pusher writes what is queued while no pipeline runs.
func (p *pushConn) pusher() {
	for {
		select {
		case <-p.signal:
		case <-p.done:
			return
		}
		p.wmu.Lock()
		if q := p.take(false); len(q) > 0 {
			_, err := p.Conn.Write(q)
			p.giveBack(q)
			if err != nil {
				p.wmu.Unlock()
				return
			}
		}
		p.wmu.Unlock()
	}
}

// Close closes the socket and stops the pusher.
func (p *pushConn) Close() error {
	p.qmu.Lock()
	first := !p.closed
	p.closed = true
	p.queue = nil
	p.qmu.Unlock()
	if first {
		close(p.done)
	}
	return p.Conn.Close()
}
