package server

import (
	"bytes"
	"math"
	"strconv"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// writeFn is what a write handler hands to the committer.
type writeFn = func(tx *storage.Tx) (resp.Value, error)

func stringCommands() []*Command {
	str := []string{"@string"}
	rd := func(name string, arity int, h ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, KeyStep: 1, ACL: str, Read: h}
	}
	wr := func(name string, arity int, h WriteHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: FlagDenyOOM, FirstKey: 1, LastKey: 1, KeyStep: 1, ACL: str, Write: h}
	}
	// GETDEL and GETEX cannot grow memory: they work over maxmemory.
	noOOM := func(c *Command) *Command { c.Flags = c.Flags&^FlagDenyOOM | FlagFast; return c }
	mset := wr("mset", -3, msetCmd(false))
	mset.LastKey, mset.KeyStep, mset.Split = -1, 2, splitAllOK
	msetnx := wr("msetnx", -3, msetCmd(true))
	msetnx.LastKey, msetnx.KeyStep = -1, 2
	mget := rd("mget", -2, mgetCmd)
	mget.LastKey, mget.Split = -1, splitConcat
	for _, c := range []*Command{mset, msetnx, mget} {
		c.Flags |= FlagMultiSlot
	}
	return []*Command{
		rd("get", 2, getCmd),
		rd("strlen", 2, strlenCmd),
		rd("getrange", 4, getrangeCmd),
		rd("substr", 4, getrangeCmd),
		mget,
		wr("set", -3, setCmd),
		wr("setnx", 3, setnxCmd),
		wr("setex", 4, setexCmd("setex", 1000)),
		wr("psetex", 4, setexCmd("psetex", 1)),
		wr("getset", 3, getsetCmd),
		noOOM(wr("getdel", 2, getdelCmd)),
		noOOM(wr("getex", -2, getexCmd)),
		mset,
		msetnx,
		wr("append", 3, appendCmd),
		wr("setrange", 4, setrangeCmd),
		wr("incr", 2, incrCmd(1, false)),
		wr("decr", 2, incrCmd(-1, false)),
		wr("incrby", 3, incrCmd(1, true)),
		wr("decrby", 3, incrCmd(-1, true)),
		wr("incrbyfloat", 3, incrbyfloatCmd),
	}
}

// GET key
func getCmd(ctx *Ctx) (resp.Value, error) {
	rec, found := ctx.lookup(ctx.Args[1])
	if !found {
		return resp.Null, nil
	}
	return resp.Bulk(rec.Value), nil
}

// lookup reads a key of the command's slot, counting the hit or miss. The
// value is copied into the connection's scratch buffer: it is valid until
// the next lookup, which is after this command's reply is written (or
// queued, as a copy).
func (ctx *Ctx) lookup(key []byte) (storage.Record, bool) {
	return ctx.lookupIn(ctx.Slot, key)
}

// lookupKey is lookup for commands whose keys may be in several slots.
func (ctx *Ctx) lookupKey(key []byte) (storage.Record, bool) {
	return ctx.lookupIn(cluster.KeySlot(key), key)
}

func (ctx *Ctx) lookupIn(slot uint16, key []byte) (storage.Record, bool) {
	c := ctx.c
	rec, found := ctx.srv.store.Lookup(slot, key, c.scratch)
	if found {
		c.scratch = rec.Value[:0]
	} else if on := ctx.srv.notify.on.Load(); on != 0 {
		c.keyMissed(on, slot, key)
	}
	c.countLookup(found)
	return rec, found
}

// STRLEN key
func strlenCmd(ctx *Ctx) (resp.Value, error) {
	rec, _ := ctx.lookup(ctx.Args[1])
	return resp.Int(int64(len(rec.Value))), nil
}

// GETRANGE key start end
func getrangeCmd(ctx *Ctx) (resp.Value, error) {
	start, err := intArg(ctx.Args[2])
	if err != nil {
		return resp.Value{}, err
	}
	end, err := intArg(ctx.Args[3])
	if err != nil {
		return resp.Value{}, err
	}
	rec, _ := ctx.lookup(ctx.Args[1])
	out := substr(rec.Value, start, end)
	if out == nil {
		out = []byte{}
	}
	return resp.Bulk(out), nil
}

// substr applies GETRANGE's index rules: negative indexes count from the
// end, both ends inclusive, clamped to the string.
func substr(v []byte, start, end int64) []byte {
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return nil
	}
	if start < 0 {
		start = max(n+start, 0)
	}
	if end < 0 {
		end = max(n+end, 0)
	}
	end = min(end, n-1)
	if start > end || n == 0 {
		return nil
	}
	return v[start : end+1]
}

// MGET key [key ...]
func mgetCmd(ctx *Ctx) (resp.Value, error) {
	keys := ctx.Args[1:]
	out := make([]resp.Value, len(keys))
	for i, k := range keys {
		if rec, found := ctx.lookupKey(k); found {
			out[i] = resp.Bulk(bytes.Clone(rec.Value))
		} else {
			out[i] = resp.Null
		}
	}
	return resp.Array(out...), nil
}

// setOptions are SET's parsed options.
type setOptions struct {
	nx, xx, get, keepTTL bool
	expireAt             int64 // absolute ms, 0 for none
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
func setCmd(ctx *Ctx) (writeFn, error) {
	var o setOptions
	args := ctx.Args
	now := ctx.Store().Now()
	expirySet := false
	for i := 3; i < len(args); i++ {
		a := args[i]
		switch {
		case is(a, "NX") && !o.xx:
			o.nx = true
		case is(a, "XX") && !o.nx:
			o.xx = true
		case is(a, "GET"):
			o.get = true
		case is(a, "KEEPTTL") && !expirySet:
			o.keepTTL, expirySet = true, true
		default:
			at, ok, err := expiryOption(args, i, now, "set")
			switch {
			case !ok || expirySet:
				return nil, resp.ErrSyntax
			case err != nil:
				return nil, err
			}
			o.expireAt, expirySet = at, true
			i++
		}
	}
	if err := ctx.srv.checkLen(len(args[2])); err != nil {
		return nil, err
	}
	c, slot, key, val := ctx.c, ctx.Slot, args[1], args[2]
	if !o.get && !o.nx && !o.xx && !o.keepTTL {
		// A plain SET does not depend on what the key holds: spare it a
		// lookup (unless an event does).
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			created := ev.creates(tx, slot, key)
			setOrExpire(tx, slot, key, val, o.expireAt)
			ev.set(tx, key, created, o.expireAt)
			return resp.OK, nil
		}, nil
	}
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		var reply resp.Value = resp.OK
		if o.get {
			reply = resp.Null
			if exists {
				reply = resp.Bulk(bytes.Clone(old.Value))
			} else {
				ev.miss(key)
			}
		}
		if (o.nx && exists) || (o.xx && !exists) {
			if o.get {
				return reply, nil
			}
			return resp.Null, nil
		}
		at := o.expireAt
		if o.keepTTL && exists {
			at = old.ExpireAt
		}
		setOrExpire(tx, slot, key, val, at)
		ev.set(tx, key, !exists, o.expireAt)
		return reply, nil
	}, nil
}

// setOrExpire stores value, or, when its absolute expiry has already passed
// (EXAT/PXAT in the past), deletes the key, as Redis does.
func setOrExpire(tx *storage.Tx, slot uint16, key, val []byte, at int64) {
	expireOrSet(tx, slot, key, storage.Record{Value: val}, at)
}

// expireOrSet is setOrExpire of a record kept as it is (its value and
// encoding) with a new expiry, for EXPIRE and GETEX.
func expireOrSet(tx *storage.Tx, slot uint16, key []byte, rec storage.Record, at int64) {
	if at != 0 && at <= tx.Now() {
		tx.Delete(slot, key)
		return
	}
	rec.ExpireAt = at
	tx.SetRecord(slot, key, rec)
}

func (s *Server) checkLen(n int) error {
	if int64(n) > s.protoMaxBulkLen.Load() {
		return resp.ErrStringTooLong
	}
	return nil
}

// SETNX key value
func setnxCmd(ctx *Ctx) (writeFn, error) {
	c, slot, key, val := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[2]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		if _, exists := ev.get(tx, slot, key); exists {
			return resp.Int(0), nil
		}
		tx.Set(slot, key, val, 0)
		ev.set(tx, key, true, 0)
		return resp.Int(1), nil
	}, nil
}

// SETEX key seconds value / PSETEX key milliseconds value
func setexCmd(name string, unit int64) WriteHandler {
	return func(ctx *Ctx) (writeFn, error) {
		at, err := expireAt(ctx.Args[2], unit, false, ctx.Store().Now(), name)
		if err != nil {
			return nil, err
		}
		c, slot, key, val := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[3]
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			created := ev.creates(tx, slot, key)
			tx.Set(slot, key, val, at)
			ev.set(tx, key, created, at)
			return resp.OK, nil
		}, nil
	}
}

// GETSET key value
func getsetCmd(ctx *Ctx) (writeFn, error) {
	c, slot, key, val := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[2]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if !exists {
			ev.miss(key)
		}
		tx.Set(slot, key, val, 0)
		ev.set(tx, key, !exists, 0)
		if !exists {
			return resp.Null, nil
		}
		return resp.Bulk(bytes.Clone(old.Value)), nil
	}, nil
}

// GETDEL key
func getdelCmd(ctx *Ctx) (writeFn, error) {
	c, slot, key := ctx.c, ctx.Slot, ctx.Args[1]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if !exists {
			ev.miss(key)
			return resp.Null, nil
		}
		v := bytes.Clone(old.Value)
		tx.Delete(slot, key)
		ev.add(notifyGeneric, "del", key)
		return resp.Bulk(v), nil
	}, nil
}

// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
func getexCmd(ctx *Ctx) (writeFn, error) {
	args := ctx.Args
	var (
		at      int64
		persist bool
		set     bool
	)
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case is(a, "PERSIST") && !set:
			persist, set = true, true
		default:
			t, ok, err := expiryOption(args, i, ctx.Store().Now(), "getex")
			switch {
			case !ok || set:
				return nil, resp.ErrSyntax
			case err != nil:
				return nil, err
			}
			at, set = t, true
			i++
		}
	}
	c, slot, key := ctx.c, ctx.Slot, args[1]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if !exists {
			ev.miss(key)
			return resp.Null, nil
		}
		v := bytes.Clone(old.Value)
		switch {
		case persist && old.ExpireAt != 0:
			old.ExpireAt = 0
			tx.SetRecord(slot, key, old)
			ev.add(notifyGeneric, "persist", key)
		case at != 0:
			expireOrSet(tx, slot, key, old, at)
			ev.expired(tx, key, at)
		}
		return resp.Bulk(v), nil
	}, nil
}

// MSET key value [key value ...] / MSETNX key value [key value ...]
func msetCmd(nx bool) WriteHandler {
	return func(ctx *Ctx) (writeFn, error) {
		args := ctx.Args
		if len(args)%2 != 1 {
			return nil, resp.ErrArity(ctx.cmd.Name)
		}
		c := ctx.c
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			if nx {
				for i := 1; i < len(args); i += 2 {
					if _, exists := ev.get(tx, cluster.KeySlot(args[i]), args[i]); exists {
						return resp.Int(0), nil
					}
				}
			}
			for i := 1; i < len(args); i += 2 {
				slot := cluster.KeySlot(args[i])
				created := ev.creates(tx, slot, args[i])
				tx.Set(slot, args[i], args[i+1], 0)
				ev.set(tx, args[i], created, 0)
			}
			if nx {
				return resp.Int(1), nil
			}
			return resp.OK, nil
		}, nil
	}
}

// APPEND key value
func appendCmd(ctx *Ctx) (writeFn, error) {
	c, slot, key, val := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[2]
	maxLen := ctx.srv.protoMaxBulkLen.Load()
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if !exists {
			tx.Set(slot, key, val, 0)
			ev.created(true, key)
			ev.add(notifyString, "append", key)
			return resp.Int(int64(len(val))), nil
		}
		if int64(len(old.Value)+len(val)) > maxLen {
			return resp.Value{}, resp.ErrStringTooLong
		}
		nv := make([]byte, 0, len(old.Value)+len(val))
		nv = append(append(nv, old.Value...), val...)
		// Redis appends in place, to a string it holds as raw from then on.
		tx.SetRecord(slot, key, storage.Record{Value: nv, ExpireAt: old.ExpireAt, Raw: true})
		ev.add(notifyString, "append", key)
		return resp.Int(int64(len(nv))), nil
	}, nil
}

// SETRANGE key offset value
func setrangeCmd(ctx *Ctx) (writeFn, error) {
	off, err := intArg(ctx.Args[2])
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, resp.Error("ERR offset is out of range")
	}
	c, slot, key, val := ctx.c, ctx.Slot, ctx.Args[1], ctx.Args[3]
	maxLen := ctx.srv.protoMaxBulkLen.Load()
	if off+int64(len(val)) > maxLen {
		return nil, resp.ErrStringTooLong
	}
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		if len(val) == 0 {
			// Nothing to write: report the current length, create nothing.
			return resp.Int(int64(len(old.Value))), nil
		}
		n := max(int64(len(old.Value)), off+int64(len(val)))
		nv := make([]byte, n)
		copy(nv, old.Value)
		copy(nv[off:], val)
		var at int64
		if exists {
			at = old.ExpireAt
		}
		tx.SetRecord(slot, key, storage.Record{Value: nv, ExpireAt: at, Raw: true})
		ev.created(!exists, key)
		ev.add(notifyString, "setrange", key)
		return resp.Int(n), nil
	}, nil
}

// INCR key / DECR key / INCRBY key increment / DECRBY key decrement
func incrCmd(sign int64, hasArg bool) WriteHandler {
	return func(ctx *Ctx) (writeFn, error) {
		delta := int64(1)
		if hasArg {
			var err error
			if delta, err = intArg(ctx.Args[2]); err != nil {
				return nil, err
			}
			if sign < 0 {
				if delta == math.MinInt64 {
					return nil, resp.Error("ERR decrement would overflow")
				}
			}
		}
		delta *= sign
		c, slot, key := ctx.c, ctx.Slot, ctx.Args[1]
		return func(tx *storage.Tx) (resp.Value, error) {
			ev := c.events()
			old, exists := ev.get(tx, slot, key)
			var cur int64
			if exists {
				var ok bool
				if cur, ok = parseInt(old.Value); !ok {
					return resp.Value{}, resp.ErrNotInteger
				}
			}
			if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
				return resp.Value{}, resp.ErrOverflow
			}
			cur += delta
			tx.Set(slot, key, strconv.AppendInt(nil, cur, 10), old.ExpireAt)
			// Redis names INCR, DECR and DECRBY incrby too.
			ev.created(!exists, key)
			ev.add(notifyString, "incrby", key)
			return resp.Int(cur), nil
		}, nil
	}
}

// INCRBYFLOAT key increment
func incrbyfloatCmd(ctx *Ctx) (writeFn, error) {
	delta, ok := parseFloat(ctx.Args[2])
	if !ok {
		return nil, resp.ErrNotFloat
	}
	c, slot, key := ctx.c, ctx.Slot, ctx.Args[1]
	return func(tx *storage.Tx) (resp.Value, error) {
		ev := c.events()
		old, exists := ev.get(tx, slot, key)
		var cur float64
		if exists {
			if cur, ok = parseFloat(old.Value); !ok {
				return resp.Value{}, resp.ErrNotFloat
			}
		}
		cur += delta
		if math.IsNaN(cur) || math.IsInf(cur, 0) {
			return resp.Value{}, resp.ErrNaNOrInf
		}
		s := resp.FormatDouble(cur)
		tx.Set(slot, key, []byte(s), old.ExpireAt)
		ev.created(!exists, key)
		ev.add(notifyString, "incrbyfloat", key)
		// Redis replies with a bulk string on both protocols.
		return resp.BulkString(s), nil
	}, nil
}
