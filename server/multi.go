package server

import (
	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
)

// MULTI/EXEC: EXEC runs the queued commands in order, as a pipeline of
// them would run, and answers with their replies in one array. The writes
// among them commit together when nothing reads between them (one batch),
// but a transaction is not isolated: another client's write can land
// between two of its commands, and there is no WATCH. For a cluster
// client every key must be in one slot (CROSSSLOT at EXEC otherwise, as
// Redis Cluster answers), and a key held elsewhere gets MOVED when it is
// queued, which aborts the transaction (EXECABORT), as in Redis.

// multiState is a transaction being queued.
type multiState struct {
	cmds [][][]byte
	// dirty marks a transaction a command failed to join: EXEC aborts.
	dirty bool
	// slot is the first key's slot (cluster clients), crossSlot whether
	// another key's differs.
	slot      int
	crossSlot bool
}

var (
	errMultiNested   = resp.Error("ERR MULTI calls can not be nested")
	errExecNoMulti   = resp.Error("ERR EXEC without MULTI")
	errDiscardNoMult = resp.Error("ERR DISCARD without MULTI")
	errExecAbort     = resp.Error("EXECABORT Transaction discarded because of previous errors.")
)

func multiCommands() []*Command {
	tx := []string{"@transaction", "@fast"}
	c := func(name string, h ReadHandler) *Command {
		return &Command{Name: name, Arity: 1, Flags: FlagKeyless | FlagFast | FlagLoading | FlagStale, ACL: tx, Read: h}
	}
	return []*Command{c("multi", multiCmd), c("exec", execCmd), c("discard", discardCmd)}
}

// errReplied is what a handler returns when it queued its reply itself.
var errReplied = resp.Error("(replied)")

// failMulti marks the transaction being queued, if any, as failed.
func (c *client) failMulti() {
	if c.multi != nil {
		c.multi.dirty = true
	}
}

// controlsTransaction says whether cmd runs at once inside MULTI instead
// of being queued.
func controlsTransaction(cmd *Command) bool {
	switch cmd.Name {
	case "multi", "exec", "discard", "quit", "reset":
		return true
	}
	return false
}

func multiCmd(ctx *Ctx) (resp.Value, error) {
	c := ctx.c
	if c.multi != nil {
		return resp.Value{}, errMultiNested
	}
	c.multi = &multiState{slot: -1}
	return resp.OK, nil
}

func discardCmd(ctx *Ctx) (resp.Value, error) {
	c := ctx.c
	if c.multi == nil {
		return resp.Value{}, errDiscardNoMult
	}
	c.multi = nil
	return resp.OK, nil
}

// queueInMulti queues a command of a transaction, or fails the
// transaction when the command cannot run (a redirect for a cluster
// client).
func (c *client) queueInMulti(cmd *Command, args [][]byte) {
	m := c.multi
	s := c.srv
	if !c.forwarded && s.follows(c) {
		if _, err := s.route(c, cmd, args); err != nil {
			m.dirty = true
			c.reply(resp.Value{}, err)
			return
		}
		cmd.keyPositions(args, func(i int) {
			slot := int(cluster.KeySlot(args[i]))
			switch {
			case m.slot < 0:
				m.slot = slot
			case slot != m.slot:
				m.crossSlot = true
			}
		})
	}
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = append([]byte(nil), a...)
	}
	m.cmds = append(m.cmds, cp)
	c.reply(resp.Simple("QUEUED"), nil)
}

// execCmd runs the transaction. Its commands' replies are queued hidden,
// and a last queued reply gathers them into EXEC's array.
func execCmd(ctx *Ctx) (resp.Value, error) {
	c := ctx.c
	m := c.multi
	if m == nil {
		return resp.Value{}, errExecNoMulti
	}
	c.multi = nil
	switch {
	case m.dirty:
		return resp.Value{}, errExecAbort
	case m.crossSlot:
		return resp.Value{}, resp.ErrCrossSlot
	}
	start := len(c.replies)
	tops := make([]int, 0, len(m.cmds))
	c.inExec = true
	for _, args := range m.cmds {
		c.exec(args)
		tops = append(tops, len(c.replies)-1)
	}
	c.inExec = false
	for i := start; i < len(c.replies); i++ {
		c.replies[i].hidden = true
	}
	c.replies = append(c.replies, queuedReply{gather: func() (resp.Value, error) {
		out := make([]resp.Value, len(tops))
		for i, at := range tops {
			r := c.replies[at]
			if r.err != nil {
				out[i] = resp.ErrorValue(r.err)
			} else {
				out[i] = r.v
			}
		}
		return resp.Array(out...), nil
	}})
	return resp.Value{}, errReplied
}
