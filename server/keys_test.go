package server_test

import (
	"fmt"
	"sort"
	"strconv"
	"testing"

	"github.com/ringcache/ringcache/server/servertest"
)

func TestKeyCommands(t *testing.T) {
	conversations(t, map[string][]step{
		"del exists unlink type": {
			{cmd: "MSET {k}a 1 {k}b 2 {k}c 3", want: "OK"},
			{cmd: "EXISTS {k}a {k}b {k}a {k}x", want: 3},
			{cmd: "DEL {k}a {k}x", want: 1},
			{cmd: "UNLINK {k}b {k}c", want: 2},
			{cmd: "EXISTS {k}a {k}b {k}c", want: 0},
			{cmd: "SET s v", want: "OK"},
			{cmd: "TYPE s", want: "string"},
			{cmd: "TYPE nope", want: "none"},
			{cmd: "DEL", want: errReply("ERR wrong number of arguments for 'del' command")},
			// Keys in several slots: served for a client that does not
			// follow redirects (TestFollowersGetCrossSlot has the rest).
			{cmd: "SET a 1", want: "OK"},
			{cmd: "DEL a b", want: 1},
		},
		"expire family": {
			{cmd: "EXPIRE k 100", want: 0},
			{cmd: "SET k v", want: "OK"},
			{cmd: "TTL k", want: -1},
			{cmd: "PTTL k", want: -1},
			{cmd: "TTL missing", want: -2},
			{cmd: "PTTL missing", want: -2},
			{cmd: "EXPIRETIME missing", want: -2},
			{cmd: "EXPIRETIME k", want: -1},
			{cmd: "EXPIRE k 100", want: 1},
			{cmd: "TTL k", want: 100},
			{cmd: "EXPIRE k 50 NX", want: 0},
			{cmd: "EXPIRE k 50 XX", want: 1},
			{cmd: "EXPIRE k 40 GT", want: 0},
			{cmd: "EXPIRE k 60 GT", want: 1},
			{cmd: "EXPIRE k 70 LT", want: 0},
			{cmd: "EXPIRE k 30 LT", want: 1},
			{cmd: "TTL k", want: 30},
			{cmd: "PERSIST k", want: 1},
			{cmd: "PERSIST k", want: 0},
			{cmd: "EXPIRE k 10 GT", want: 0},
			{cmd: "EXPIRE k 10 LT", want: 1},
			{cmd: "PEXPIRE k 5000", want: 1},
			{cmd: "TTL k", want: 5},
			{cmd: "EXPIREAT k 99999999999", want: 1},
			{cmd: "EXPIRETIME k", want: int64(99999999999)},
			{cmd: "PEXPIREAT k 99999999999123", want: 1},
			{cmd: "PEXPIRETIME k", want: int64(99999999999123)},
			{cmd: "EXPIRE k 10 NX XX", want: errReply("ERR NX and XX, GT or LT options at the same time are not compatible")},
			{cmd: "EXPIRE k 10 GT LT", want: errReply("ERR GT and LT options at the same time are not compatible")},
			{cmd: "EXPIRE k 10 FOO", want: errReply("ERR Unsupported option FOO")},
			{cmd: "EXPIRE k abc", want: errReply("ERR value is not an integer or out of range")},
			{cmd: "EXPIRE k 9223372036854775807", want: errReply("ERR invalid expire time in 'expire' command")},
			{cmd: "EXPIRE k -1", want: 1},
			{cmd: "EXISTS k", want: 0},
			{cmd: "SET k v", want: "OK"},
			{cmd: "EXPIREAT k 1", want: 1},
			{cmd: "GET k", want: nilReply},
		},
		"rename copy": {
			{cmd: "RENAME {r}a {r}b", want: errReply("ERR no such key")},
			{cmd: "SET {r}a 1 EX 100", want: "OK"},
			{cmd: "RENAME {r}a {r}b", want: "OK"},
			{cmd: "GET {r}b", want: "1"},
			{cmd: "TTL {r}b", want: 100},
			{cmd: "EXISTS {r}a", want: 0},
			{cmd: "SET {r}c 2", want: "OK"},
			{cmd: "RENAMENX {r}b {r}c", want: 0},
			{cmd: "RENAMENX {r}b {r}d", want: 1},
			{cmd: "RENAME {r}d {r}d", want: "OK"},
			{cmd: "RENAME a b", want: errReply("CROSSSLOT Keys in request don't hash to the same slot")},
			{cmd: "COPY {r}d {r}e", want: 1},
			{cmd: "COPY {r}d {r}c", want: 0},
			{cmd: "COPY {r}d {r}c REPLACE", want: 1},
			{cmd: "GET {r}c", want: "1"},
			{cmd: "TTL {r}c", want: 100},
			{cmd: "COPY {r}zz {r}y", want: 0},
			{cmd: "COPY {r}d {r}d", want: errReply("ERR source and destination objects are the same")},
			{cmd: "COPY {r}d {r}f DB 1", want: errReply("ERR Copying to another database is not allowed in cluster mode")},
			{cmd: "COPY {r}d {r}f BAD", want: errReply("ERR syntax error")},
		},
		"keys randomkey dbsize flush": {
			{cmd: "DBSIZE", want: 0},
			{cmd: "RANDOMKEY", want: nilReply},
			{cmd: "SET user:1 a", want: "OK"},
			{cmd: "SET user:2 b", want: "OK"},
			{cmd: "SET order:1 c", want: "OK"},
			{cmd: "DBSIZE", want: 3},
			{cmd: "FLUSHALL ASYNC", want: "OK"},
			{cmd: "DBSIZE", want: 0},
			{cmd: "SET a b", want: "OK"},
			{cmd: "RANDOMKEY", want: "a"},
			{cmd: "KEYS a", want: list("a")},
			{cmd: "FLUSHDB", want: "OK"},
			{cmd: "FLUSHDB BAD", want: errReply("ERR syntax error")},
			{cmd: "KEYS *", want: list()},
		},
	})
}

func TestKeysAndScan(t *testing.T) {
	n := servertest.Start(t)
	rdb := n.Client()
	ctx := servertest.Ctx(t)
	var want []string
	for i := range 500 {
		k := fmt.Sprintf("user:%d", i)
		want = append(want, k)
		if err := rdb.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "other:"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(want)
	got, err := rdb.Keys(ctx, "user:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("KEYS user:* returned %d keys, want %d", len(got), len(want))
	}

	for _, count := range []int64{1, 7, 100, 5000} {
		seen := map[string]int{}
		var cursor uint64
		calls := 0
		for {
			keys, next, err := rdb.Scan(ctx, cursor, "user:*", count).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				seen[k]++
			}
			calls++
			if next == 0 {
				break
			}
			cursor = next
			if calls > 100000 {
				t.Fatal("SCAN does not terminate")
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("COUNT %d: SCAN saw %d distinct keys, want %d", count, len(seen), len(want))
		}
		for k, c := range seen {
			if c != 1 {
				t.Fatalf("COUNT %d: key %s returned %d times with no concurrent changes", count, k, c)
			}
		}
	}
	keys, _, err := rdb.ScanType(ctx, 0, "*", 2000, "hash").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("SCAN TYPE hash = %v, %v; want nothing", keys, err)
	}
	for _, s := range []step{
		{cmd: "SCAN abc", want: errReply("ERR invalid cursor")},
		{cmd: "SCAN 0 COUNT 0", want: errReply("ERR syntax error")},
		{cmd: "SCAN 0 MATCH", want: errReply("ERR syntax error")},
		{cmd: "SCAN 0 FOO bar", want: errReply("ERR syntax error")},
	} {
		got, err := rdb.Do(ctx, s.argv()...).Result()
		check(t, s.argv(), s.want, got, err)
	}
}
