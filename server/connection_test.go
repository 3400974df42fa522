package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server/servertest"
)

func TestConnectionCommands(t *testing.T) {
	conversations(t, map[string][]step{
		"ping echo select": {
			{cmd: "PING", want: "PONG"},
			{cmd: "PING hi", want: "hi"},
			{cmd: "PING a b", want: errReply("ERR wrong number of arguments for 'ping' command")},
			{cmd: "ECHO hello", want: "hello"},
			{cmd: "SELECT 0", want: "OK"},
			{cmd: "SELECT 1", want: errReply("ERR SELECT is not allowed in cluster mode")},
			{cmd: "SELECT x", want: errReply("ERR value is not an integer or out of range")},
			{cmd: "READONLY", want: "OK"},
			{cmd: "READWRITE", want: "OK"},
			{cmd: "ASKING", want: "OK"},
			{cmd: "NOSUCHCMD a b", want: errReply("ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' ")},
			{cmd: "AUTH pw", want: errReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")},
		},
		"client": {
			{cmd: "CLIENT SETNAME conn-1", want: "OK"},
			{cmd: "CLIENT GETNAME", want: "conn-1"},
			{args: []any{"CLIENT", "SETNAME", "has space"}, want: errReply("ERR Client names cannot contain spaces, newlines or special characters.")},
			{cmd: "CLIENT SETINFO LIB-NAME mylib", want: "OK"},
			{cmd: "CLIENT SETINFO LIB-VER 1.2", want: "OK"},
			{cmd: "CLIENT SETINFO BAD x", want: errReply("ERR Unrecognized option 'BAD'")},
			{cmd: "CLIENT SETNAME", want: errReply("ERR wrong number of arguments for 'client|setname' command")},
			{cmd: "CLIENT FOO", want: errReply("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")},
		},
		"config time wait": {
			{cmd: "CONFIG GET maxclients", want: map[any]any{"maxclients": "10000"}},
			{cmd: "CONFIG SET maxclients 500", want: "OK"},
			{cmd: "CONFIG GET maxclients", want: map[any]any{"maxclients": "500"}},
			{cmd: "CONFIG GET cluster-enabled", want: map[any]any{"cluster-enabled": "yes"}},
			{cmd: "CONFIG GET nothing-matches-this", want: map[any]any{}},
			{cmd: "CONFIG SET nosuch 1", want: errReply("ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")},
			{cmd: "CONFIG SET maxclients x", want: errReply("ERR CONFIG SET failed*")},
			{cmd: "CONFIG SET proto-max-bulk-len 1mb", want: "OK"},
			{cmd: "CONFIG GET proto-max-bulk-len", want: map[any]any{"proto-max-bulk-len": "1048576"}},
			{cmd: "WAIT 0 0", want: 0},
			{cmd: "WAIT x 0", want: errReply("ERR value is not an integer or out of range")},
			{cmd: "COMMAND GETKEYS MSET a 1 b 2", want: list("a", "b")},
			{cmd: "COMMAND GETKEYS PING", want: errReply("ERR The command has no key arguments")},
			{cmd: "COMMAND GETKEYS NOPE x", want: errReply("ERR Invalid command specified")},
			{cmd: "COMMAND DOCS", want: errReply("ERR*")},
		},
	})
}

func TestHelloAndResp3(t *testing.T) {
	n := servertest.Start(t)
	ctx := servertest.Ctx(t)
	rdb := n.Client(func(o *redis.Options) { o.Protocol = 2 })
	hello, err := rdb.Do(ctx, "HELLO", "3").Result()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := hello.(map[any]any)
	if !ok {
		t.Fatalf("HELLO 3 reply %#v is not a map", hello)
	}
	for k, v := range map[string]any{"server": "redis", "proto": int64(3), "mode": "cluster", "role": "master"} {
		if m[k] != v {
			t.Errorf("HELLO 3 %s = %#v, want %#v", k, m[k], v)
		}
	}
	if v, _ := m["version"].(string); !strings.HasPrefix(v, "7.") {
		t.Errorf("HELLO version %q, want 7.x", v)
	}
	// On RESP3 the replies use RESP3 types; on RESP2 the flat forms.
	for _, proto := range []int{2, 3} {
		c := n.Client(func(o *redis.Options) { o.Protocol = proto })
		got, err := c.Do(ctx, "CONFIG", "GET", "maxclients").Result()
		if err != nil {
			t.Fatal(err)
		}
		switch proto {
		case 2:
			if _, ok := got.([]any); !ok {
				t.Errorf("RESP2 CONFIG GET = %#v, want an array", got)
			}
		case 3:
			if _, ok := got.(map[any]any); !ok {
				t.Errorf("RESP3 CONFIG GET = %#v, want a map", got)
			}
		}
		if _, err := c.Do(ctx, "GET", "missing").Result(); err != redis.Nil {
			t.Errorf("proto %d: GET missing err = %v, want redis.Nil", proto, err)
		}
	}
	conversations(t, map[string][]step{"hello errors": {
		{cmd: "HELLO 4", want: errReply("NOPROTO unsupported protocol version")},
		{cmd: "HELLO x", want: errReply("ERR Protocol version is not an integer or out of range")},
		{cmd: "HELLO 3 SETNAME", want: errReply("ERR Syntax error in HELLO option 'SETNAME'")},
	}})
}

func TestAuth(t *testing.T) {
	n := servertest.Start(t, servertest.WithPassword("s3cret"))
	ctx := servertest.Ctx(t)
	anon := n.Client(func(o *redis.Options) { o.Password = ""; o.Protocol = 2 })
	converse(t, anon, []step{
		{cmd: "GET k", want: errReply("NOAUTH Authentication required.")},
		{cmd: "PING", want: errReply("NOAUTH Authentication required.")},
		{cmd: "HELLO 3", want: errReply("NOAUTH HELLO must be called with the client already authenticated*")},
		{cmd: "AUTH wrong", want: errReply("WRONGPASS invalid username-password pair or user is disabled.")},
		{cmd: "AUTH other s3cret", want: errReply("WRONGPASS invalid username-password pair or user is disabled.")},
		{cmd: "AUTH s3cret", want: "OK"},
		{cmd: "SET k v", want: "OK"},
		{cmd: "AUTH default s3cret", want: "OK"},
	})
	// HELLO with AUTH authenticates and switches protocol at once.
	h := n.Client(func(o *redis.Options) { o.Password = ""; o.Protocol = 2 })
	if _, err := h.Do(ctx, "HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "x").Result(); err != nil {
		t.Fatalf("HELLO 3 AUTH: %v", err)
	}
	// go-redis authenticates itself with the configured password.
	if v, err := n.Client().Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("authenticated GET = %q, %v", v, err)
	}
}

func TestInfoAndCommand(t *testing.T) {
	n := servertest.Start(t)
	ctx := servertest.Ctx(t)
	rdb := n.Client()
	rdb.Set(ctx, "a", "1", 0)
	rdb.Set(ctx, "b", "1", time.Hour)
	rdb.Get(ctx, "a")
	rdb.Get(ctx, "missing")
	info, err := rdb.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Server", "redis_version:7.", "# Cluster", "cluster_enabled:1", "# Keyspace", "db0:keys=2,expires=1,", "connected_clients:", "used_memory:", "keyspace_hits:1\r\n", "keyspace_misses:1\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	server, _ := rdb.Info(ctx, "server").Result()
	if strings.Contains(server, "# Keyspace") || !strings.Contains(server, "# Server") {
		t.Errorf("INFO server returned other sections:\n%s", server)
	}
	cmds, err := rdb.Command(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	get := cmds["get"]
	if get == nil || get.Arity != 2 || get.FirstKeyPos != 1 || get.LastKeyPos != 1 || get.StepCount != 1 || !get.ReadOnly {
		t.Fatalf("COMMAND get = %+v", get)
	}
	if set := cmds["set"]; set == nil || set.Arity != -3 || set.ReadOnly {
		t.Fatalf("COMMAND set = %+v", set)
	}
	count, err := rdb.Do(ctx, "COMMAND", "COUNT").Int()
	if err != nil || count != len(cmds) {
		t.Fatalf("COMMAND COUNT = %d, %v; COMMAND listed %d", count, err, len(cmds))
	}
	info2, err := rdb.Do(ctx, "COMMAND", "INFO", "get", "nosuch").Slice()
	if err != nil || len(info2) != 2 || info2[1] != nil {
		t.Fatalf("COMMAND INFO get nosuch = %#v, %v", info2, err)
	}
}
