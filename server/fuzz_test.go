package server_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server/servertest"
)

// FuzzCommand executes arbitrary commands (arguments split on NUL) against a
// real node. Whatever they are, the node must answer, keep serving, and not
// touch a key the command does not name.
func FuzzCommand(f *testing.F) {
	for _, seed := range []string{
		"SET\x00k\x00v\x00EX\x0010",
		"SET\x00k\x00v\x00PXAT\x00-1",
		"GETRANGE\x00k\x00-9223372036854775808\x009223372036854775807",
		"SETRANGE\x00k\x00536870911\x00x",
		"INCRBYFLOAT\x00k\x00inf",
		"EXPIRE\x00k\x00-9223372036854775808",
		"SCAN\x0018446744073709551615\x00COUNT\x009223372036854775807",
		"KEYS\x00[[[[[[*",
		"CLIENT\x00SETNAME",
		"HELLO\x003\x00AUTH",
		"COMMAND\x00GETKEYS\x00MSET\x00a",
		"CONFIG\x00SET\x00maxclients\x000",
		"MSETNX\x00{a}\x00",
		"COPY\x00{a}x\x00{a}y\x00DB",
		"GETEX\x00k\x00PERSIST\x00EX\x001",
	} {
		f.Add([]byte(seed))
	}
	n := servertest.Start(f)
	rdb := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, Protocol: 2})
	f.Cleanup(func() { rdb.Close() })
	rdb.Set(context.Background(), "sentinel", "untouched", 0)
	f.Fuzz(func(t *testing.T, in []byte) {
		parts := bytes.Split(in, []byte{0})
		if len(parts) > 64 {
			return
		}
		name := bytes.ToUpper(parts[0])
		switch string(name) {
		case "FLUSHALL", "FLUSHDB", "QUIT", "RESET", "CONFIG", "AUTH", "HELLO":
			return // these legitimately change the connection or every key
		}
		args := make([]any, len(parts))
		for i, p := range parts {
			args[i] = string(p)
			if bytes.Equal(p, []byte("sentinel")) {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rdb.Do(ctx, args...) // any reply or error reply is fine
		if v, err := rdb.Get(ctx, "sentinel").Result(); err != nil || v != "untouched" {
			t.Fatalf("after %q: sentinel = %q, %v", in, v, err)
		}
	})
}
