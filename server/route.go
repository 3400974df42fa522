package server

import (
	"strconv"
	"strings"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
)

// Redirect modes (--redirects): how a node answers a command for a slot
// held elsewhere.
const (
	// RedirectsAuto answers MOVED to connections that asked for the
	// topology (CLUSTER SLOTS, SHARDS, NODES) or sent READONLY or ASKING,
	// as Redis Cluster does, and forwards for every other connection.
	RedirectsAuto = "auto"
	// RedirectsMoved answers MOVED to every connection.
	RedirectsMoved = "moved"
	// RedirectsForward forwards for every connection.
	RedirectsForward = "forward"
)

// planKind is how a command is served.
type planKind uint8

const (
	planLocal   planKind = iota // here
	planForward                 // by the slot's primary, over the forwarding link
	planSplit                   // keys on several nodes: each part where it is
)

// plan is a routing decision.
type plan struct {
	kind planKind
	slot uint16         // the (first) slot of the keys
	node cluster.Member // planForward: the slot's primary
}

// follows reports whether c is answered as Redis Cluster answers: MOVED and
// CROSSSLOT. With auto, a connection follows when it asked for the
// topology or sent READONLY or ASKING; the others are served whatever
// node holds their keys.
func (s *Server) follows(c *client) bool {
	switch s.cfg.Redirects {
	case RedirectsMoved:
		return true
	case RedirectsForward:
		return false
	}
	return c.aware
}

// nudged reports whether c is told of a change of placement: a connection
// that follows redirects, or one of a client that asked for the topology
// on another connection (same host, same CLIENT SETINFO library name and
// version). A cluster client asks on one connection and sends commands
// on others; one MOVED on any of them makes it reload its slot map.
func (s *Server) nudged(c *client, follows bool) bool {
	if c.forwarded || s.cfg.Redirects == RedirectsForward {
		return false
	}
	if follows {
		return true
	}
	if gen := s.followersGen.Load(); gen != c.followersGen {
		c.followersGen = gen
		c.identityFollows = s.identityFollows(c)
	}
	return c.identityFollows
}

// route finds how to serve a command: here, forwarded, split by node, or
// an error (CROSSSLOT, MOVED, TRYAGAIN, CLUSTERDOWN).
func (s *Server) route(c *client, cmd *Command, args [][]byte) (plan, error) {
	p := plan{}
	first, multi := true, false
	cmd.keyPositions(args, func(i int) {
		ks := cluster.KeySlot(args[i])
		switch {
		case first:
			p.slot, first = ks, false
		case ks != p.slot:
			multi = true
		}
	})
	if first {
		return p, nil // No keys.
	}
	follows := !c.forwarded && s.follows(c)
	if !follows && cmd.Flags&FlagServedHere != 0 {
		return p, nil
	}
	if multi && (follows || cmd.Flags&FlagMultiSlot == 0) {
		return p, resp.ErrCrossSlot
	}
	if s.repl == nil {
		if owner := s.topo.Ring().Owner(p.slot); owner.ID != s.selfID {
			return p, moved(p.slot, owner.Addr)
		}
		return p, nil
	}
	// A change of placement is announced once to each connection of a
	// client that follows redirects: MOVED sends it to reload its slot
	// map, whoever serves the slot.
	if epoch := s.topo.Epoch(); epoch > c.seenEpoch {
		c.seenEpoch = epoch
		if s.nudged(c, follows) {
			if primary, _, _, down := s.repl.Route(p.slot); !down {
				c.counters.nudged.Add(1)
				return p, moved(p.slot, primary.Addr)
			}
		}
	}
	remote := false
	check := func(slot uint16) error {
		primary, ok, tryAgain, down := s.repl.Route(slot)
		switch {
		case ok:
		case down:
			return errClusterDown
		case tryAgain:
			return errTryAgain
		case c.readonly && cmd.Write == nil && s.repl.HoldsSlot(slot):
		case follows || c.forwarded:
			return moved(slot, primary.Addr)
		default:
			if !remote {
				remote = true
				p.node = primary
			} else if primary.ID != p.node.ID {
				p.kind = planSplit
			}
		}
		return nil
	}
	if !multi {
		if err := check(p.slot); err != nil {
			return p, err
		}
		if remote {
			p.kind = planForward
		}
		return p, nil
	}
	var err error
	cmd.keyPositions(args, func(i int) {
		if err == nil {
			err = check(cluster.KeySlot(args[i]))
		}
	})
	switch {
	case err != nil:
		return p, err
	case !remote:
		return p, nil // Every key here: served here, in one batch.
	case cmd.Split == splitNone:
		// All or nothing across nodes (MSETNX) cannot be promised.
		return p, resp.ErrCrossSlot
	}
	p.kind = planSplit
	return p, nil
}

// identity names the client library and host of a connection, when the
// library says its name (CLIENT SETINFO LIB-NAME): the connections of one
// cluster client share it, and only one of them asked for the topology.
func (c *client) identity() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.libName == "" {
		return ""
	}
	host := c.addr
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(host, "]") {
		host = h
	} else if i := strings.LastIndex(host, "]:"); i > 0 {
		host = host[:i+1]
	}
	return host + "\x00" + c.libName + "\x00" + c.libVer
}

// markFollows records that c follows redirects: it asked for the topology
// or sent READONLY or ASKING.
func (c *client) markFollows() {
	c.aware = true
	c.seenEpoch = c.srv.topo.Epoch()
	if id := c.identity(); id != "" {
		if _, had := c.srv.followers.LoadOrStore(id, true); !had {
			c.srv.followersGen.Add(1)
		}
	}
}

// identityFollows reports whether another connection of c's client (its
// identity) asked for the topology.
func (s *Server) identityFollows(c *client) bool {
	id := c.identity()
	if id == "" {
		return false
	}
	_, ok := s.followers.Load(id)
	return ok
}

// splitKind says how the parts of a command split by node join again.
type splitKind uint8

const (
	splitNone   splitKind = iota // cannot be split (MSETNX)
	splitConcat                  // MGET: the parts' arrays, back in key order
	splitAllOK                   // MSET: OK once every part is
	splitSum                     // DEL, UNLINK, EXISTS, TOUCH: the sum
)

// forward sends the command to node and queues its reply.
func (c *client) forward(node cluster.Member, args [][]byte) {
	c.counters.forwarded.Add(1)
	call := c.srv.repl.Forward(node, args)
	c.replies = append(c.replies, queuedReply{fwd: &forwarded{call: call, args: args}})
}

// forwarded is a command forwarded to another node, waiting for its reply.
type forwarded struct {
	call cluster.Call
	args [][]byte
}

// maxForwardHops is how many MOVED replies a forwarded command follows
// (the placement changed while it was on its way) before it answers
// TRYAGAIN.
const maxForwardHops = 2

// wait returns the forwarded command's reply, following a MOVED to the
// node it names.
func (f *forwarded) wait(s *Server) (resp.Value, error) {
	for hop := 0; ; hop++ {
		v, err := f.call.Wait()
		if err != nil {
			return resp.Value{}, resp.Error("TRYAGAIN forwarding to the slot's primary failed: " + err.Error())
		}
		addr, isMoved := movedAddr(v)
		if !isMoved {
			return v, nil
		}
		node, ok := s.memberAt(addr)
		if !ok || node.ID == s.selfID || hop >= maxForwardHops {
			return resp.Value{}, errTryAgain
		}
		f.call = s.repl.Forward(node, f.args)
	}
}

// movedAddr returns the address of a MOVED error reply.
func movedAddr(v resp.Value) (string, bool) {
	if v.Kind != resp.KindError || !strings.HasPrefix(v.Str, "MOVED ") {
		return "", false
	}
	f := strings.Fields(v.Str)
	if len(f) != 3 {
		return "", false
	}
	return f[2], true
}

// memberAt finds the ring member serving at addr.
func (s *Server) memberAt(addr string) (cluster.Member, bool) {
	for _, m := range s.topo.Ring().Members() {
		if m.Addr == addr {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// split serves a multi-key command whose keys are on several nodes: each
// node's keys as one command of the same name (here, or forwarded), the
// replies joined as cmd.Split says. It is not atomic across nodes, as a
// cluster client's splitting of it is not either.
func (c *client) split(cmd *Command, args [][]byte) {
	s := c.srv
	step := max(cmd.KeyStep, 1)
	type part struct {
		args  [][]byte
		keyAt []int // each key's position among the command's keys
		reply int   // its hidden reply in c.replies
	}
	parts := map[string]*part{}
	var order []string
	n := 0
	cmd.keyPositions(args, func(i int) {
		primary, _, _, _ := s.repl.Route(cluster.KeySlot(args[i]))
		pt := parts[primary.ID]
		if pt == nil {
			pt = &part{args: [][]byte{args[0]}}
			parts[primary.ID] = pt
			order = append(order, primary.ID)
		}
		pt.args = append(pt.args, args[i:i+step]...)
		pt.keyAt = append(pt.keyAt, n)
		n++
	})
	for _, id := range order {
		pt := parts[id]
		if id == s.selfID {
			pt.reply = c.execHidden(cmd, pt.args)
			continue
		}
		node, _, _, _ := s.repl.Route(cluster.KeySlot(pt.args[1]))
		c.forward(node, pt.args)
		pt.reply = len(c.replies) - 1
		c.replies[pt.reply].hidden = true
	}
	c.replies = append(c.replies, queuedReply{gather: func() (resp.Value, error) {
		var out []resp.Value
		if cmd.Split == splitConcat {
			out = make([]resp.Value, n)
		}
		var sum int64
		for _, id := range order {
			pt := parts[id]
			r := c.replies[pt.reply]
			if r.err != nil {
				return resp.Value{}, r.err
			}
			if r.v.Kind == resp.KindError {
				return resp.Value{}, resp.Error(r.v.Str)
			}
			switch cmd.Split {
			case splitConcat:
				if len(r.v.Elems) != len(pt.keyAt) {
					return resp.Value{}, resp.Error("ERR a part of the command got " + strconv.Itoa(len(r.v.Elems)) + " replies for " + strconv.Itoa(len(pt.keyAt)) + " keys")
				}
				for j, at := range pt.keyAt {
					out[at] = r.v.Elems[j]
				}
			case splitSum:
				sum += r.v.Int
			}
		}
		switch cmd.Split {
		case splitConcat:
			return resp.Array(out...), nil
		case splitSum:
			return resp.Int(sum), nil
		}
		return resp.OK, nil
	}})
}

// execHidden runs a command here (its keys are all here) with its reply
// kept out of the client's replies, and returns the reply's index.
func (c *client) execHidden(cmd *Command, args [][]byte) int {
	ctx := &c.ctx
	*ctx = Ctx{srv: c.srv, c: c, cmd: cmd, Args: args, Slot: cluster.KeySlot(args[1])}
	if cmd.Write != nil {
		fn, err := cmd.Write(ctx)
		if err != nil {
			c.replies = append(c.replies, queuedReply{err: err, hidden: true})
			return len(c.replies) - 1
		}
		c.queueWrite(fn)
		c.replies[len(c.replies)-1].hidden = true
		return len(c.replies) - 1
	}
	c.commitQueued()
	v, err := cmd.Read(ctx)
	c.replies = append(c.replies, queuedReply{v: cloneValue(v), err: err, hidden: true})
	return len(c.replies) - 1
}

// cloneValue copies a reply's bytes that may alias a buffer reused by the
// next command (a read's value), for a reply that waits in the queue.
func cloneValue(v resp.Value) resp.Value {
	if v.Bytes != nil {
		v.Bytes = append([]byte(nil), v.Bytes...)
	}
	return v
}
