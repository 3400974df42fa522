package server

import (
	"strconv"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// errNotPeer answers an internal command from an ordinary client.
var errNotPeer = resp.Error("NOPERM this command is for ringcache cluster nodes only")

// peerCommands are the node-to-node commands (see cluster.PeerCommand):
// after the handshake, a replica applies batches, and any node answers
// digest, stream and in-sync queries.
func peerCommands() []*Command {
	internal := func(name string, arity int, flags Flag, h ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagKeyless | FlagInternal, ACL: []string{"@admin"}, Read: h}
	}
	apply := &Command{Name: cluster.ApplyCommand, Arity: 2, Flags: FlagWrite | FlagKeyless | FlagInternal, ACL: []string{"@admin"}, Write: applyCmd}
	return []*Command{
		internal(cluster.PeerCommand, -1, FlagNoAuth|FlagFast, peerCmd),
		apply,
		internal(cluster.DigestCommand, 2, 0, digestCmd),
		internal(cluster.StreamCommand, 2, 0, streamCmd),
		internal(cluster.InSyncCommand, 2, 0, inSyncCmd),
		internal(cluster.StateCommand, 2, 0, stateCmd),
		internal(cluster.ForwardCommand, 1, 0, forwardCmd),
	}
}

// RINGCACHE.FORWARD: the connection carries commands another node forwards
// for its clients; they run here as a client's would, writes replicated.
func forwardCmd(ctx *Ctx) (resp.Value, error) {
	ctx.c.forwarded = true
	return resp.OK, nil
}

// RINGCACHE.PEER (gives a nonce) | RINGCACHE.PEER id proof
func peerCmd(ctx *Ctx) (resp.Value, error) {
	s, c := ctx.srv, ctx.c
	if s.repl == nil {
		return resp.Value{}, resp.Error("ERR this node runs without a cluster")
	}
	switch len(ctx.Args) {
	case 1:
		c.nonce = randomHex(16)
		return resp.BulkString(c.nonce), nil
	case 3:
		if c.nonce == "" || !cluster.VerifyPeerProof(s.repl.Key(), c.nonce, string(ctx.Args[1]), string(ctx.Args[2])) {
			c.nonce = ""
			return resp.Value{}, resp.Error("ERR peer authentication failed")
		}
		c.nonce = ""
		c.peer, c.authed = true, true
		return resp.OK, nil
	}
	return resp.Value{}, resp.ErrArity(cluster.PeerCommand)
}

// RINGCACHE.APPLY batch. A replica's apply notes no keyspace events: the
// primary that ran the command published them (notify.go).
func applyCmd(ctx *Ctx) (func(tx *storage.Tx) (resp.Value, error), error) {
	batch := ctx.Args[1]
	return func(tx *storage.Tx) (resp.Value, error) {
		n, err := cluster.ApplyBatch(tx, batch)
		if err != nil {
			tx.Fail(err)
			return resp.Value{}, resp.Error("ERR " + err.Error())
		}
		return cluster.ApplyReply(int64(n), tx.MemoryExcess()), nil
	}, nil
}

// RINGCACHE.DIGEST slots
func digestCmd(ctx *Ctx) (resp.Value, error) {
	b, err := ctx.srv.repl.Digests(ctx.Args[1])
	if err != nil {
		return resp.Value{}, resp.Error("ERR " + err.Error())
	}
	return resp.Bulk(b), nil
}

// RINGCACHE.STREAM slot
func streamCmd(ctx *Ctx) (resp.Value, error) {
	n, err := strconv.Atoi(string(ctx.Args[1]))
	if err != nil || n < 0 || n >= cluster.SlotCount {
		return resp.Value{}, resp.Error("ERR Invalid or out of range slot")
	}
	b, err := ctx.srv.repl.StreamSlot(uint16(n))
	if err != nil {
		return resp.Value{}, resp.Error("ERR " + err.Error())
	}
	return resp.Bulk(b), nil
}

// RINGCACHE.STATE id
func stateCmd(ctx *Ctx) (resp.Value, error) {
	return resp.BulkString(ctx.srv.repl.StateOf(string(ctx.Args[1]))), nil
}

// RINGCACHE.INSYNC id
func inSyncCmd(ctx *Ctx) (resp.Value, error) {
	return resp.Bool(ctx.srv.repl.InSync(string(ctx.Args[1]))), nil
}
