package cluster

import (
	"time"

	"github.com/ringcache/ringcache/resp"
)

// ForwardCommand turns a peer connection into one that runs the client
// commands another node forwards for clients that do not speak cluster
// (server's --redirects): executed there as if a client had sent them,
// writes replicated as usual, and never forwarded again (a node that is no
// longer the slot's primary answers MOVED, and the forwarder tries again).
const ForwardCommand = "ringcache.forward"

// ForwardTimeout bounds how long a forwarded command waits for its reply.
const ForwardTimeout = 10 * time.Second

// Call is a command forwarded to another node, on its way.
type Call struct{ c *call }

// Wait waits for the reply (or ForwardTimeout).
func (c Call) Wait() (resp.Value, error) { return c.c.wait(ForwardTimeout) }

// Forward sends a client command to node m over this node's forwarding
// link to it (one per peer, pipelined, beside the replication link) and
// returns at once.
func (r *Replicator) Forward(m Member, args [][]byte) Call {
	return Call{r.forwardLinkTo(m).send(&call{args: args})}
}

// forwardLinkTo returns the forwarding link to a member, creating it (or
// replacing it when the member's address changed).
func (r *Replicator) forwardLinkTo(m Member) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.forwardLinks[m.ID]
	if l != nil && l.addr == m.Addr {
		return l
	}
	if l != nil {
		l.close()
	}
	l = newLink(r, m.ID, m.Addr)
	l.forward = true
	select {
	case <-r.stop:
		l.close()
		return l
	default:
	}
	r.forwardLinks[m.ID] = l
	return l
}
