package server

import (
	"strings"

	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// memoryCommands are MEMORY and OBJECT: what a key costs and how it is
// held, as Redis reports them.
func memoryCommands() []*Command {
	return []*Command{
		{Name: "memory", Arity: -2, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, KeyStep: 1, ACL: []string{"@read"}, Read: memoryCmd},
		{Name: "object", Arity: -2, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, KeyStep: 1, ACL: []string{"@keyspace", "@read"}, Read: objectCmd},
	}
}

// Errors of OBJECT FREQ and IDLETIME under the other kind of policy.
var (
	errNoLFU = resp.Error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	errLFU   = resp.Error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
)

// MEMORY USAGE key [SAMPLES count] | MEMORY STATS | MEMORY DOCTOR |
// MEMORY PURGE | MEMORY HELP
func memoryCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	args := ctx.Args
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "usage":
		if len(args) < 3 {
			return resp.Value{}, resp.ErrSubArity("memory", "usage")
		}
		for i := 3; i < len(args); i += 2 {
			if !is(args[i], "SAMPLES") || i+1 >= len(args) {
				return resp.Value{}, resp.ErrSyntax
			}
			if _, err := intArg(args[i+1]); err != nil {
				return resp.Value{}, err
			}
		}
		n, ok := s.store.MemoryUsage(ctx.Slot, args[2])
		if !ok {
			return resp.Null, nil
		}
		return resp.Int(n), nil
	case "stats":
		if err := subArity(args, 2, "memory", sub); err != nil {
			return resp.Value{}, err
		}
		return s.memoryStats(), nil
	case "doctor":
		return resp.BulkString("Sam, I have no memory problems"), nil
	case "purge", "malloc-stats":
		return resp.OK, nil
	case "help":
		return resp.BulkStrings(
			"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"DOCTOR", "    Return memory problems reports.",
			"STATS", "    Return information about the memory usage of the server.",
			"USAGE <key> [SAMPLES <count>]", "    Return memory in bytes used by <key> and its value.",
		), nil
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("memory", string(args[1]))
}

// memoryStats is MEMORY STATS, with Redis's field names where they apply.
func (s *Server) memoryStats() resp.Value {
	m := s.memory()
	keys := s.store.Len()
	perKey := int64(0)
	if keys > 0 {
		perKey = m.dataset / keys
	}
	kv := func(k string, v resp.Value) []resp.Value { return []resp.Value{resp.BulkString(k), v} }
	var out []resp.Value
	for _, f := range [][]resp.Value{
		kv("peak.allocated", resp.Int(m.peak)),
		kv("total.allocated", resp.Int(m.used)),
		kv("startup.allocated", resp.Int(0)),
		kv("replication.backlog", resp.Int(0)),
		kv("clients.slaves", resp.Int(0)),
		kv("clients.normal", resp.Int(0)),
		kv("aof.buffer", resp.Int(m.stats.Persistence)),
		kv("overhead.total", resp.Int(m.used-m.dataset)),
		kv("keys.count", resp.Int(keys)),
		kv("keys.bytes-per-key", resp.Int(perKey)),
		kv("dataset.bytes", resp.Int(m.dataset)),
		kv("dataset.percentage", resp.Double(percent(m.dataset, m.used))),
		kv("peak.percentage", resp.Double(percent(m.used, m.peak))),
		kv("allocator.allocated", resp.Int(m.stats.Keyspace)),
		kv("allocator.resident", resp.Int(m.stats.Mapped)),
		kv("allocator-fragmentation.ratio", resp.Double(ratio(m.stats.Mapped, m.stats.Keyspace))),
		kv("fragmentation", resp.Double(ratio(m.rss, m.used))),
		kv("fragmentation.bytes", resp.Int(m.rss-m.used)),
	} {
		out = append(out, f...)
	}
	return resp.Map(out...)
}

func percent(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

func ratio(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key | OBJECT HELP
func objectCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	args := ctx.Args
	sub := strings.ToLower(string(args[1]))
	if sub == "help" {
		return resp.BulkStrings(
			"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ENCODING <key>", "    Return the kind of internal representation used in order to store the value",
			"    associated with a <key>.",
			"FREQ <key>", "    Return the access frequency index of the <key>. The returned integer is",
			"    proportional to the logarithm of the recent access frequency of the key.",
			"IDLETIME <key>", "    Return the idle time of the <key>, that is the approximated number of",
			"    seconds elapsed since the last access to the key.",
			"REFCOUNT <key>", "    Return the number of references of the value associated with the specified",
			"    <key>.",
		), nil
	}
	switch sub {
	case "encoding", "freq", "idletime", "refcount":
	default:
		return resp.Value{}, resp.ErrUnknownSubcommand("object", string(args[1]))
	}
	if err := subArity(args, 3, "object", sub); err != nil {
		return resp.Value{}, err
	}
	key := args[2]
	st := s.store
	lfu := st.MemoryConfig().Policy == storage.AllKeysLFU || st.MemoryConfig().Policy == storage.VolatileLFU
	switch sub {
	case "freq":
		if !lfu {
			return resp.Value{}, errNoLFU
		}
		n, ok := st.ObjectFreq(ctx.Slot, key)
		if !ok {
			return resp.Null, nil
		}
		return resp.Int(int64(n)), nil
	case "idletime":
		if lfu {
			return resp.Value{}, errLFU
		}
		d, ok := st.ObjectIdleTime(ctx.Slot, key)
		if !ok {
			return resp.Null, nil
		}
		return resp.Int(int64(d.Seconds())), nil
	}
	var enc string
	found, _ := st.Peek(ctx.Slot, key, func(r storage.Record) { enc = stringEncoding(r) })
	switch {
	case !found:
		return resp.Null, nil
	case sub == "refcount":
		return resp.Int(1), nil
	}
	return resp.BulkString(enc), nil
}

// stringEncoding is how Redis would hold a string value: "int" for an
// integer of up to 20 characters, "embstr" up to 44 bytes, otherwise (or
// once APPEND or SETRANGE changed it in place) "raw".
func stringEncoding(r storage.Record) string {
	switch {
	case r.Raw:
		return "raw"
	case len(r.Value) <= 20:
		if _, ok := parseInt(r.Value); ok {
			return "int"
		}
	}
	if len(r.Value) <= 44 {
		return "embstr"
	}
	return "raw"
}
