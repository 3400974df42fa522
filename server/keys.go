package server

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

func keyCommands() []*Command {
	ks := []string{"@keyspace"}
	one := func(name string, arity int, flags Flag, read ReadHandler, write WriteHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags, FirstKey: 1, LastKey: 1, KeyStep: 1, ACL: ks, Read: read, Write: write}
	}
	two := func(c *Command) *Command { c.LastKey = 2; return c }
	keyless := func(name string, arity int, flags Flag, read ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagKeyless, ACL: ks, Read: read}
	}
	// Multi-key commands that a client which does not follow redirects
	// may send with keys anywhere (route.go): summed across nodes.
	sum := func(c *Command) *Command {
		c.LastKey, c.Flags, c.Split = -1, c.Flags|FlagMultiSlot, splitSum
		return c
	}
	return []*Command{
		sum(one("del", -2, 0, nil, delCmd)),
		sum(one("unlink", -2, FlagFast, nil, delCmd)),
		sum(one("exists", -2, FlagReadonly|FlagFast, existsCmd, nil)),
		sum(one("touch", -2, FlagReadonly|FlagFast, existsCmd, nil)),
		one("expire", -3, FlagFast, nil, expireCmd("expire", 1000, false)),
		one("pexpire", -3, FlagFast, nil, expireCmd("pexpire", 1, false)),
		one("expireat", -3, FlagFast, nil, expireCmd("expireat", 1000, true)),
		one("pexpireat", -3, FlagFast, nil, expireCmd("pexpireat", 1, true)),
		one("ttl", 2, FlagReadonly|FlagFast, ttlCmd(false, false), nil),
		one("pttl", 2, FlagReadonly|FlagFast, ttlCmd(true, false), nil),
		one("expiretime", 2, FlagReadonly|FlagFast, ttlCmd(false, true), nil),
		one("pexpiretime", 2, FlagReadonly|FlagFast, ttlCmd(true, true), nil),
		one("persist", 2, FlagFast, nil, persistCmd),
		one("type", 2, FlagReadonly|FlagFast, typeCmd, nil),
		two(one("rename", 3, 0, nil, renameCmd(false))),
		two(one("renamenx", 3, FlagFast, nil, renameCmd(true))),
		two(one("copy", -3, FlagDenyOOM, nil, copyCmd)),
		keyless("keys", 2, FlagReadonly, keysCmd),
		keyless("scan", -2, FlagReadonly, scanCmd),
		keyless("randomkey", 1, FlagReadonly, randomkeyCmd),
		keyless("dbsize", 1, FlagReadonly|FlagFast, dbsizeCmd),
		keyless("flushdb", -1, FlagWrite, flushCmd),
		keyless("flushall", -1, FlagWrite, flushCmd),
	}
}

// DEL key [key ...] / UNLINK key [key ...]
func delCmd(ctx *Ctx) (writeFn, error) {
	c, keys := ctx.c, ctx.Args[1:]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		var n int64
		for _, k := range keys {
			slot := cluster.KeySlot(k)
			ev.expire(tx, slot, k)
			if tx.Delete(slot, k) {
				ev.add(notifyGeneric, "del", k)
				n++
			}
		}
		return resp.Int(n), nil
	}, nil
}

// EXISTS key [key ...] / TOUCH key [key ...] (a read: it counts as an
// access, as a lookup does)
func existsCmd(ctx *Ctx) (resp.Value, error) {
	var n int64
	for _, k := range ctx.Args[1:] {
		if _, found := ctx.lookupKey(k); found {
			n++
		}
	}
	return resp.Int(n), nil
}

// EXPIRE key seconds [NX|XX|GT|LT] and PEXPIRE, EXPIREAT, PEXPIREAT.
func expireCmd(name string, unit int64, absolute bool) WriteHandler {
	return func(ctx *Ctx) (writeFn, error) {
		var nx, xx, gt, lt bool
		for _, a := range ctx.Args[3:] {
			switch {
			case is(a, "NX"):
				nx = true
			case is(a, "XX"):
				xx = true
			case is(a, "GT"):
				gt = true
			case is(a, "LT"):
				lt = true
			default:
				return nil, resp.Error("ERR Unsupported option " + string(a))
			}
		}
		if nx && (xx || gt || lt) {
			return nil, resp.Error("ERR NX and XX, GT or LT options at the same time are not compatible")
		}
		if gt && lt {
			return nil, resp.Error("ERR GT and LT options at the same time are not compatible")
		}
		n, ok := parseInt(ctx.Args[2])
		if !ok {
			return nil, resp.ErrNotInteger
		}
		invalid := resp.Error("ERR invalid expire time in '" + name + "' command")
		if n > math.MaxInt64/unit || n < math.MinInt64/unit {
			return nil, invalid
		}
		at := n * unit
		if !absolute {
			now := ctx.Store().Now()
			if at > math.MaxInt64-now {
				return nil, invalid
			}
			at += now
		}
		c, slot, key := ctx.c, ctx.Slot, ctx.Args[1]
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			old, exists := ev.get(tx, slot, key)
			if !exists {
				return resp.Int(0), nil
			}
			cur := old.ExpireAt
			// A key without expiry counts as infinite TTL for GT and LT.
			if (nx && cur != 0) || (xx && cur == 0) ||
				(gt && (cur == 0 || at <= cur)) || (lt && cur != 0 && at >= cur) {
				return resp.Int(0), nil
			}
			expireOrSet(tx, slot, key, old, max(at, 1))
			ev.expired(tx, key, max(at, 1))
			return resp.Int(1), nil
		}, nil
	}
}

// TTL key, PTTL key, EXPIRETIME key, PEXPIRETIME key
func ttlCmd(ms, absolute bool) ReadHandler {
	return func(ctx *Ctx) (resp.Value, error) {
		rec, found := ctx.lookup(ctx.Args[1])
		at := rec.ExpireAt
		switch {
		case !found:
			return resp.Int(-2), nil
		case at == 0:
			return resp.Int(-1), nil
		}
		v := at
		if !absolute {
			v = max(at-ctx.Store().Now(), 0)
		}
		if !ms {
			v = (v + 500) / 1000
		}
		return resp.Int(v), nil
	}
}

// PERSIST key
func persistCmd(ctx *Ctx) (writeFn, error) {
	c, slot, key := ctx.c, ctx.Slot, ctx.Args[1]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if !exists || old.ExpireAt == 0 {
			return resp.Int(0), nil
		}
		old.ExpireAt = 0
		tx.SetRecord(slot, key, old)
		ev.add(notifyGeneric, "persist", key)
		return resp.Int(1), nil
	}, nil
}

// TYPE key
func typeCmd(ctx *Ctx) (resp.Value, error) {
	if _, found := ctx.lookup(ctx.Args[1]); !found {
		return resp.Simple("none"), nil
	}
	return resp.Simple("string"), nil
}

// RENAME key newkey / RENAMENX key newkey
func renameCmd(nx bool) WriteHandler {
	return func(ctx *Ctx) (writeFn, error) {
		c, slot, src, dst := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[2]
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			old, exists := ev.get(tx, slot, src)
			if !exists {
				return resp.Value{}, resp.ErrNoSuchKey
			}
			if bytes.Equal(src, dst) {
				if nx {
					return resp.Int(0), nil
				}
				return resp.OK, nil
			}
			if nx {
				if _, taken := ev.get(tx, slot, dst); taken {
					return resp.Int(0), nil
				}
			} else {
				ev.expire(tx, slot, dst)
			}
			tx.Delete(slot, src)
			tx.SetRecord(slot, dst, old)
			// Redis deletes an old dst and adds the key anew: new either way.
			ev.created(true, dst)
			ev.add(notifyGeneric, "rename_from", src)
			ev.add(notifyGeneric, "rename_to", dst)
			if nx {
				return resp.Int(1), nil
			}
			return resp.OK, nil
		}, nil
	}
}

// COPY source destination [DB destination-db] [REPLACE]
func copyCmd(ctx *Ctx) (writeFn, error) {
	var replace bool
	args := ctx.Args
	for i := 3; i < len(args); i++ {
		switch {
		case is(args[i], "REPLACE"):
			replace = true
		case is(args[i], "DB") && i+1 < len(args):
			db, err := intArg(args[i+1])
			if err != nil {
				return nil, err
			}
			if db != 0 {
				return nil, resp.Error("ERR Copying to another database is not allowed in cluster mode")
			}
			i++
		default:
			return nil, resp.ErrSyntax
		}
	}
	slot, src, dst := ctx.Slot, args[1], args[2]
	if bytes.Equal(src, dst) {
		return nil, resp.Error("ERR source and destination objects are the same")
	}
	c := ctx.c
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, src)
		if !exists {
			ev.miss(src) // Redis reads the source as a read command would
			return resp.Int(0), nil
		}
		if _, taken := ev.get(tx, slot, dst); taken && !replace {
			return resp.Int(0), nil
		}
		tx.SetRecord(slot, dst, old)
		// An old dst is deleted and the copy added anew: new either way.
		ev.created(true, dst)
		ev.add(notifyGeneric, "copy_to", dst)
		return resp.Int(1), nil
	}, nil
}

// KEYS pattern
func keysCmd(ctx *Ctx) (resp.Value, error) {
	pattern := ctx.Args[1]
	st := ctx.Store()
	out := []resp.Value{}
	matchAll := len(pattern) == 1 && pattern[0] == '*'
	for slot := range uint16(cluster.SlotCount) {
		if st.CountSlot(slot) == 0 || !ctx.c.listsSlot(slot) {
			continue
		}
		err := st.ScanSlot(slot, nil, func(key []byte, _ storage.Record) bool {
			if matchAll || Match(pattern, key, false) {
				out = append(out, resp.Bulk(bytes.Clone(key)))
			}
			return true
		})
		if err != nil {
			return resp.Value{}, err
		}
	}
	return resp.Array(out...), nil
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//
// The cursor is slot<<32 | token: the slot the scan has reached, and a token
// naming the last key returned in it (kept in a bounded table). A token that
// has been forgotten restarts its slot, which may repeat keys but never skips
// one, so SCAN's guarantee holds.
func scanCmd(ctx *Ctx) (resp.Value, error) {
	args := ctx.Args
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return resp.Value{}, resp.Error("ERR invalid cursor")
	}
	var pattern []byte
	var typ []byte
	count := int64(10)
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return resp.Value{}, resp.ErrSyntax
		}
		switch {
		case is(args[i], "MATCH"):
			pattern = args[i+1]
			if len(pattern) == 1 && pattern[0] == '*' {
				pattern = nil
			}
		case is(args[i], "COUNT"):
			if count, err = intArg(args[i+1]); err != nil {
				return resp.Value{}, err
			}
			if count < 1 {
				return resp.Value{}, resp.ErrSyntax
			}
		case is(args[i], "TYPE"):
			typ = args[i+1]
		default:
			return resp.Value{}, resp.ErrSyntax
		}
	}
	st := ctx.Store()
	cs := &ctx.srv.cursors
	slot := cursor >> 32
	var after []byte
	if tok := uint32(cursor); tok != 0 {
		after, _ = cs.load(tok)
	}
	keys := []resp.Value{}
	var examined int64
	next := uint64(0)
	for ; slot < cluster.SlotCount; slot, after = slot+1, nil {
		if st.CountSlot(uint16(slot)) == 0 || !ctx.c.listsSlot(uint16(slot)) {
			continue
		}
		var last []byte
		err := st.ScanSlot(uint16(slot), after, func(key []byte, _ storage.Record) bool {
			if examined >= count {
				return false
			}
			examined++
			last = append(last[:0], key...)
			if (pattern == nil || Match(pattern, key, false)) && (typ == nil || is(typ, "STRING")) {
				keys = append(keys, resp.Bulk(bytes.Clone(key)))
			}
			return true
		})
		if err != nil {
			return resp.Value{}, err
		}
		if examined >= count {
			if last != nil {
				next = slot<<32 | uint64(cs.save(last))
			} else {
				next = slot << 32
			}
			break
		}
	}
	return resp.Array(resp.BulkString(strconv.FormatUint(next, 10)), resp.Array(keys...)), nil
}

// cursorStore remembers the last key of recent SCAN calls, bounded, so a
// cursor fits in the integer clients expect.
type cursorStore struct {
	mu   sync.Mutex
	next uint32
	keys map[uint32][]byte
	ring []uint32
	pos  int
}

const maxCursors = 1 << 14

func (cs *cursorStore) save(key []byte) uint32 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.keys == nil {
		cs.keys = make(map[uint32][]byte)
		cs.ring = make([]uint32, maxCursors)
	}
	cs.next++
	if cs.next == 0 {
		cs.next = 1
	}
	tok := cs.next
	if old := cs.ring[cs.pos]; old != 0 {
		delete(cs.keys, old)
	}
	cs.ring[cs.pos] = tok
	cs.pos = (cs.pos + 1) % maxCursors
	cs.keys[tok] = bytes.Clone(key)
	return tok
}

func (cs *cursorStore) load(tok uint32) ([]byte, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	k, ok := cs.keys[tok]
	return k, ok
}

// RANDOMKEY
func randomkeyCmd(ctx *Ctx) (resp.Value, error) {
	st := ctx.Store()
	if st.Len() == 0 {
		return resp.Null, nil
	}
	start := rand.IntN(cluster.SlotCount)
	for i := range cluster.SlotCount {
		slot := uint16((start + i) % cluster.SlotCount)
		n := st.CountSlot(slot)
		if n == 0 || !ctx.c.listsSlot(slot) {
			continue
		}
		// Walk to a random key of the slot; bounded so a huge slot stays cheap.
		skip := rand.Int64N(min(n, 1000))
		var key []byte
		err := st.ScanSlot(slot, nil, func(k []byte, _ storage.Record) bool {
			key = append(key[:0], k...)
			skip--
			return skip >= 0
		})
		if err != nil {
			return resp.Value{}, err
		}
		if key != nil {
			return resp.Bulk(key), nil
		}
	}
	return resp.Null, nil
}

// DBSIZE
func dbsizeCmd(ctx *Ctx) (resp.Value, error) {
	if ctx.srv.repl == nil {
		return resp.Int(ctx.Store().Len()), nil
	}
	var n int64
	for slot := range uint16(cluster.SlotCount) {
		if ctx.c.listsSlot(slot) {
			n += ctx.Store().CountSlot(slot)
		}
	}
	return resp.Int(n), nil
}

// listsSlot reports whether the keyspace commands (KEYS, SCAN, DBSIZE,
// RANDOMKEY) show slot's keys to this client: the slots this node is
// primary of, as a Redis Cluster master shows its own, and after READONLY
// also the slots it replicates.
func (c *client) listsSlot(slot uint16) bool {
	r := c.srv.repl
	if r == nil {
		return true
	}
	if _, ok, tryAgain, _ := r.Route(slot); ok || tryAgain {
		return true
	}
	return c.readonly && r.HoldsSlot(slot)
}

// FLUSHDB [ASYNC|SYNC] / FLUSHALL [ASYNC|SYNC]
func flushCmd(ctx *Ctx) (resp.Value, error) {
	if len(ctx.Args) > 2 || (len(ctx.Args) == 2 && !is(ctx.Args[1], "ASYNC") && !is(ctx.Args[1], "SYNC")) {
		return resp.Value{}, resp.ErrSyntax
	}
	s := ctx.srv
	if s.repl == nil {
		if err := ctx.Store().FlushAll(); err != nil {
			return resp.Value{}, err
		}
		return resp.OK, nil
	}
	// In a cluster a node flushes the slots it is primary of, on itself
	// and its replicas, as a Redis Cluster master does: with versioned
	// tombstones, so that no copy brings a key back.
	for slot := range uint16(storage.SlotCount) {
		if _, ok, _, _ := s.repl.Route(slot); !ok || s.store.CountSlot(slot) == 0 {
			continue
		}
		var keys [][]byte
		err := s.store.ScanSlot(slot, nil, func(key []byte, _ storage.Record) bool {
			keys = append(keys, bytes.Clone(key))
			return true
		})
		if err != nil {
			return resp.Value{}, err
		}
		if err := s.repl.BeginWrite(); err != nil {
			return resp.Value{}, err
		}
		p := s.store.Submit(func(tx *storage.Tx) {
			for _, k := range keys {
				tx.Delete(slot, k)
			}
		})
		err = p.Wait()
		_, rerr := s.repl.Send(p.Mutations()).Wait()
		s.repl.EndWrite()
		if err == nil {
			err = rerr
		}
		if err != nil {
			return resp.Value{}, err
		}
	}
	return resp.OK, nil
}
