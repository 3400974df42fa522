package server

import (
	"slices"
	"strings"

	"github.com/ringcache/ringcache/resp"
)

// COMMAND [COUNT | INFO name... | LIST | GETKEYS cmd args... | DOCS]
func commandCmd(ctx *Ctx) (resp.Value, error) {
	t := ctx.srv.table
	args := ctx.Args
	if len(args) == 1 {
		out := make([]resp.Value, 0, len(t))
		for _, name := range t.names() {
			out = append(out, t[name].info())
		}
		return resp.Array(out...), nil
	}
	switch strings.ToLower(string(args[1])) {
	case "count":
		return resp.Int(int64(len(t))), nil
	case "list":
		return resp.BulkStrings(t.names()...), nil
	case "info":
		names := args[2:]
		if len(names) == 0 {
			return commandCmd(&Ctx{srv: ctx.srv, Args: args[:1]})
		}
		out := make([]resp.Value, len(names))
		for i, n := range names {
			if c := t.lookup(n); c != nil {
				out[i] = c.info()
			} else {
				out[i] = resp.NullArray
			}
		}
		return resp.Array(out...), nil
	case "getkeys":
		if len(args) < 3 {
			return resp.Value{}, resp.ErrSubArity("command", "getkeys")
		}
		c := t.lookup(args[2])
		if c == nil {
			return resp.Value{}, resp.Error("ERR Invalid command specified")
		}
		cargs := args[2:]
		if !arityOK(c.Arity, len(cargs)) {
			return resp.Value{}, resp.Error("ERR Invalid number of arguments specified for command")
		}
		var keys []resp.Value
		c.keyPositions(cargs, func(i int) { keys = append(keys, resp.Bulk(cargs[i])) })
		if len(keys) == 0 {
			return resp.Value{}, resp.Error("ERR The command has no key arguments")
		}
		return resp.Array(keys...), nil
	case "docs":
		// redis-cli asks for DOCS at start and falls back to its own help
		// on an error; a partial docs reply would make it assert.
		return resp.Value{}, resp.Error("ERR COMMAND DOCS is not supported")
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("command", string(args[1]))
}

func (t Table) names() []string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// info is the command's Redis 7 COMMAND entry: name, arity, flags, first
// key, last key, step, ACL categories, tips, key specs, subcommands.
func (c *Command) info() resp.Value {
	var flags []resp.Value
	for _, f := range flagNames {
		if c.Flags&f.f != 0 {
			flags = append(flags, resp.Simple(f.name))
		}
	}
	var acl []resp.Value
	for _, a := range c.ACL {
		acl = append(acl, resp.Simple(a))
	}
	switch {
	case c.Flags&FlagWrite != 0:
		acl = append(acl, resp.Simple("@write"))
	case c.Flags&FlagReadonly != 0:
		acl = append(acl, resp.Simple("@read"))
	}
	if c.Flags&FlagFast != 0 {
		acl = append(acl, resp.Simple("@fast"))
	} else {
		acl = append(acl, resp.Simple("@slow"))
	}
	var specs []resp.Value
	if c.FirstKey > 0 {
		access := []resp.Value{resp.Simple("RO"), resp.Simple("access")}
		if c.Flags&FlagWrite != 0 {
			access = []resp.Value{resp.Simple("RW"), resp.Simple("update")}
		}
		lastKey := int64(c.LastKey)
		if lastKey >= 0 {
			lastKey -= int64(c.FirstKey)
		}
		specs = append(specs, resp.Map(
			resp.BulkString("flags"), resp.Set(access...),
			resp.BulkString("begin_search"), resp.Map(
				resp.BulkString("type"), resp.BulkString("index"),
				resp.BulkString("spec"), resp.Map(resp.BulkString("index"), resp.Int(int64(c.FirstKey))),
			),
			resp.BulkString("find_keys"), resp.Map(
				resp.BulkString("type"), resp.BulkString("range"),
				resp.BulkString("spec"), resp.Map(
					resp.BulkString("lastkey"), resp.Int(lastKey),
					resp.BulkString("keystep"), resp.Int(int64(max(c.KeyStep, 1))),
					resp.BulkString("limit"), resp.Int(0),
				),
			),
		))
	}
	var subs []resp.Value
	for _, s := range c.Subs {
		subs = append(subs, s.info())
	}
	return resp.Array(
		resp.BulkString(c.Name),
		resp.Int(int64(c.Arity)),
		resp.Set(flags...),
		resp.Int(int64(c.FirstKey)),
		resp.Int(int64(c.LastKey)),
		resp.Int(int64(c.KeyStep)),
		resp.Set(acl...),
		resp.Array(),
		resp.Array(specs...),
		resp.Array(subs...),
	)
}
