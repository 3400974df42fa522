package server

import (
	"cmp"
	"crypto/subtle"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/resp"
)

// Version is the Redis version ringcache reports, so clients enable the
// Redis 7 features it implements.
const Version = "7.2.0"

func connectionCommands() []*Command {
	conn := []string{"@connection"}
	c := func(name string, arity int, flags Flag, h ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagKeyless | FlagLoading | FlagStale, ACL: conn, Read: h}
	}
	return []*Command{
		c("ping", -1, FlagFast, pingCmd),
		c("echo", 2, FlagFast, echoCmd),
		c("quit", -1, FlagNoAuth|FlagFast, quitCmd),
		c("reset", 1, FlagNoAuth|FlagFast, resetCmd),
		c("select", 2, FlagFast, selectCmd),
		c("hello", -1, FlagNoAuth|FlagFast, helloCmd),
		c("auth", -2, FlagNoAuth|FlagFast, authCmd),
		c("client", -2, 0, clientCmd),
		// Cluster clients send these at connect or before retries; with
		// every slot served by its primary they only need to succeed.
		c("readonly", 1, FlagFast, readonlyCmd),
		c("readwrite", 1, FlagFast, readwriteCmd),
		c("asking", 1, FlagFast, askingCmd),
	}
}

// ASKING: only cluster clients send it, so the connection follows
// redirects; every slot is served by its primary, so there is nothing to
// ask.
func askingCmd(ctx *Ctx) (resp.Value, error) {
	ctx.c.markFollows()
	return resp.OK, nil
}

// READONLY: reads of the slots this node replicates are served here, and
// the connection follows redirects.
func readonlyCmd(ctx *Ctx) (resp.Value, error) {
	ctx.c.readonly = true
	ctx.c.markFollows()
	return resp.OK, nil
}

// READWRITE: back to redirecting every command to the primary.
func readwriteCmd(ctx *Ctx) (resp.Value, error) {
	ctx.c.readonly = false
	return resp.OK, nil
}

// PING [message]
func pingCmd(ctx *Ctx) (resp.Value, error) {
	if c := ctx.c; c.proto == 2 && c.subs.any() {
		// Subscribed, RESP2 answers in the shape of a message.
		msg := []byte{}
		if len(ctx.Args) == 2 {
			msg = ctx.Args[1]
		}
		if len(ctx.Args) <= 2 {
			return resp.Array(resp.BulkString("pong"), resp.Bulk(msg)), nil
		}
	}
	switch len(ctx.Args) {
	case 1:
		return resp.Pong, nil
	case 2:
		return resp.Bulk(ctx.Args[1]), nil
	}
	return resp.Value{}, resp.ErrArity("ping")
}

// ECHO message
func echoCmd(ctx *Ctx) (resp.Value, error) { return resp.Bulk(ctx.Args[1]), nil }

// QUIT
func quitCmd(ctx *Ctx) (resp.Value, error) {
	ctx.c.quit = true
	return resp.OK, nil
}

// RESET
func resetCmd(ctx *Ctx) (resp.Value, error) {
	c := ctx.c
	c.setProto(2)
	c.leaveAll()
	ctx.srv.stopTracking(c)
	c.multi = nil
	c.authed = *ctx.srv.requirePass.Load() == ""
	c.setName("")
	return resp.Simple("RESET"), nil
}

// SELECT index
func selectCmd(ctx *Ctx) (resp.Value, error) {
	db, err := intArg(ctx.Args[1])
	if err != nil {
		return resp.Value{}, err
	}
	if db != 0 {
		return resp.Value{}, resp.Error("ERR SELECT is not allowed in cluster mode")
	}
	return resp.OK, nil
}

// checkPassword compares in constant time, so the reply time does not leak
// how much of a guess was right.
func (s *Server) checkPassword(user, pass []byte) bool {
	want := *s.requirePass.Load()
	if user != nil && string(user) != "default" {
		return false
	}
	return subtle.ConstantTimeCompare(pass, []byte(want)) == 1
}

// AUTH [username] password
func authCmd(ctx *Ctx) (resp.Value, error) {
	args := ctx.Args
	if len(args) > 3 {
		return resp.Value{}, resp.ErrSyntax
	}
	if *ctx.srv.requirePass.Load() == "" {
		if len(args) == 2 {
			return resp.Value{}, resp.Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		}
	}
	var user []byte
	if len(args) == 3 {
		user = args[1]
	}
	if !ctx.srv.checkPassword(user, args[len(args)-1]) {
		return resp.Value{}, resp.ErrWrongPass
	}
	ctx.c.authed = true
	return resp.OK, nil
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
func helloCmd(ctx *Ctx) (resp.Value, error) {
	args := ctx.Args
	c := ctx.c
	proto := c.proto
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			return resp.Value{}, resp.Error("ERR Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return resp.Value{}, resp.Error("NOPROTO unsupported protocol version")
		}
		proto = int(v)
	}
	var name []byte
	setName := false
	authed := c.authed
	for i := 2; i < len(args); i++ {
		switch {
		case is(args[i], "AUTH") && i+2 < len(args):
			if !ctx.srv.checkPassword(args[i+1], args[i+2]) {
				return resp.Value{}, resp.ErrWrongPass
			}
			authed = true
			i += 2
		case is(args[i], "SETNAME") && i+1 < len(args):
			name, setName = args[i+1], true
			if err := validClientName(name); err != nil {
				return resp.Value{}, err
			}
			i++
		default:
			return resp.Value{}, resp.Error("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
		}
	}
	if !authed {
		return resp.Value{}, resp.Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	c.authed = true
	c.setProto(proto)
	if setName {
		c.setName(string(name))
	}
	return resp.Map(
		resp.BulkString("server"), resp.BulkString("redis"),
		resp.BulkString("version"), resp.BulkString(Version),
		resp.BulkString("proto"), resp.Int(int64(proto)),
		resp.BulkString("id"), resp.Int(c.id),
		resp.BulkString("mode"), resp.BulkString("cluster"),
		resp.BulkString("role"), resp.BulkString("master"),
		resp.BulkString("modules"), resp.Array(),
	), nil
}

func validClientName(name []byte) error {
	for _, b := range name {
		if b < '!' || b > '~' {
			return resp.Error("ERR Client names cannot contain spaces, newlines or special characters.")
		}
	}
	return nil
}

// setProto switches the reply protocol; CLIENT LIST on other connections
// reads the copy in shownProto.
func (c *client) setProto(p int) {
	c.proto = p
	c.shownProto.Store(int32(p))
}

func (c *client) setName(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
}

// CLIENT subcommand [args]
func clientCmd(ctx *Ctx) (resp.Value, error) {
	args := ctx.Args
	c := ctx.c
	sub := strings.ToLower(string(args[1]))
	arity := func(n int) error { return subArity(args, n, "client", sub) }
	switch sub {
	case "id":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return resp.Int(c.id), nil
	case "getname":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		c.mu.Lock()
		name := c.name
		c.mu.Unlock()
		if name == "" {
			return resp.Null, nil
		}
		return resp.BulkString(name), nil
	case "setname":
		if err := arity(3); err != nil {
			return resp.Value{}, err
		}
		if err := validClientName(args[2]); err != nil {
			return resp.Value{}, err
		}
		c.setName(string(args[2]))
		return resp.OK, nil
	case "setinfo":
		if err := arity(4); err != nil {
			return resp.Value{}, err
		}
		val := string(args[3])
		if strings.ContainsAny(val, " \r\n") {
			return resp.Value{}, resp.Error("ERR " + string(args[2]) + " cannot contain spaces, newlines or special characters.")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.followersGen = noFollowersGen // The identity changes.
		switch {
		case is(args[2], "LIB-NAME"):
			c.libName = val
		case is(args[2], "LIB-VER"):
			c.libVer = val
		default:
			return resp.Value{}, resp.Error("ERR Unrecognized option '" + string(args[2]) + "'")
		}
		return resp.OK, nil
	case "info":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return resp.Verbatim(c.describe() + "\n"), nil
	case "list":
		return resp.Verbatim(ctx.srv.clientList()), nil
	case "tracking":
		if len(args) < 3 {
			return resp.Value{}, resp.ErrSubArity("client", sub)
		}
		return clientTrackingCmd(ctx)
	case "caching":
		if err := arity(3); err != nil {
			return resp.Value{}, err
		}
		return clientCachingCmd(ctx)
	case "getredir":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return clientGetRedir(c), nil
	case "trackinginfo":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return clientTrackingInfo(c), nil
	case "no-evict", "no-touch":
		if err := arity(3); err != nil {
			return resp.Value{}, err
		}
		return resp.OK, nil
	case "help":
		return resp.BulkStrings(
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ID", "    Return the ID of the current connection.",
			"GETNAME", "    Return the name of the current connection.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"SETINFO <option> <value>", "    Set client meta attributes (LIB-NAME, LIB-VER).",
			"INFO", "    Return information about the current client connection.",
			"LIST", "    Return information about client connections.",
			"TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]", "         [OPTIN] [OPTOUT] [NOLOOP]",
			"    Control server assisted client side caching.",
			"CACHING (YES|NO)", "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
			"GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
			"TRACKINGINFO", "    Report tracking status for the current connection.",
		), nil
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("client", string(args[1]))
}

// describe is the client's CLIENT LIST line, with Redis's field names.
func (c *client) describe() string {
	c.mu.Lock()
	name, lib, ver := c.name, c.libName, c.libVer
	c.mu.Unlock()
	now := time.Now()
	idle := now.Sub(time.Unix(0, c.lastActive.Load()))
	cmd := "NULL"
	if lc := c.lastCmd.Load(); lc != nil {
		cmd = lc.Name
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=%d lib-name=%s lib-ver=%s",
		c.id, c.addr, c.laddr, name, int(now.Sub(c.created).Seconds()), int(idle.Seconds()), cmd, c.shownProto.Load(), lib, ver)
}

func (s *Server) clientList() string {
	s.clientsMu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	s.clientsMu.Unlock()
	slices.SortFunc(clients, func(a, b *client) int { return cmp.Compare(a.id, b.id) })
	var sb strings.Builder
	for _, c := range clients {
		sb.WriteString(c.describe())
		sb.WriteByte('\n')
	}
	return sb.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
