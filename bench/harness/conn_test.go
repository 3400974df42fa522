package harness

import (
	"bufio"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadValue(t *testing.T) {
	tests := []struct {
		in      string
		want    any
		wantErr string
	}{
		{"+OK\r\n", "OK", ""},
		{":42\r\n", int64(42), ""},
		{"$3\r\nfoo\r\n", "foo", ""},
		{"$-1\r\n", nil, ""},
		{"_\r\n", nil, ""},
		{"=8\r\ntxt:abcd\r\n", "abcd", ""},
		{"*2\r\n:1\r\n$1\r\na\r\n", []any{int64(1), "a"}, ""},
		{"%1\r\n+k\r\n:2\r\n", []any{"k", int64(2)}, ""},
		{"*1\r\n-ERR x\r\n", []any{&ReplyError{Msg: "ERR x"}}, ""},
		{"-MOVED 12182 127.0.0.1:7002\r\n", nil, "MOVED 12182 127.0.0.1:7002"},
		{"$x\r\n", nil, "bad length"},
		{"?\r\n", nil, "unsupported"},
	}
	for _, tc := range tests {
		got, err := readValue(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	_, err := readValue(bufio.NewReader(strings.NewReader("-TRYAGAIN x\r\n")))
	var re *ReplyError
	if !errors.As(err, &re) {
		t.Errorf("error reply is %T, want *ReplyError", err)
	}
}

func TestParseClusterSlots(t *testing.T) {
	node := func(port int64) []any { return []any{"127.0.0.1", port, "id"} }
	tests := []struct {
		name    string
		reply   any
		check   map[int]string // slot -> owner
		wantErr string
	}{
		{"two ranges", []any{
			[]any{int64(0), int64(8000), node(7001), node(7002)},
			[]any{int64(8001), int64(16383), node(7002)},
		}, map[int]string{0: "127.0.0.1:7001", 8000: "127.0.0.1:7001", 8001: "127.0.0.1:7002", 16383: "127.0.0.1:7002"}, ""},
		{"gap", []any{[]any{int64(0), int64(100), node(1)}}, nil, "slot 101 not covered"},
		{"not an array", "x", nil, "not an array"},
		{"bad range", []any{[]any{int64(5), int64(4), node(1)}}, nil, "bad range"},
		{"bad node", []any{[]any{int64(0), int64(16383), []any{"h"}}}, nil, "bad range"},
	}
	for _, tc := range tests {
		m, err := ParseClusterSlots(tc.reply)
		if !wantErr(t, err, tc.wantErr) {
			continue
		}
		for s, a := range tc.check {
			if m[s] != a {
				t.Errorf("%s: slot %d -> %s, want %s", tc.name, s, m[s], a)
			}
		}
	}
}

func TestKeyName(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want string
	}{{0, 16, "key:000000000000"}, {999999, 16, "key:000000999999"}, {12345, 8, "key:1234"}} {
		if got := KeyName(tc.i, tc.n); got != tc.want || len(got) != tc.n {
			t.Errorf("KeyName(%d, %d) = %q, want %q", tc.i, tc.n, got, tc.want)
		}
	}
}

// TestLoadAndProbe loads keys into a real redis-server, probes a write,
// and runs the background load against it briefly.
func TestLoadAndProbe(t *testing.T) {
	server := needTool(t, "redis-server")
	ws, err := NewWorkspace("harness-load-test-", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx := context.Background()
	dir, _ := ws.Dir("redis")
	srv, err := ws.StartReady(ctx, 3, 30*time.Second, func(p int) ServerSpec {
		return ServerSpec{Name: "redis", Path: server, Args: RedisArgs(p), Dir: dir, Port: p}
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	if err := Load(ctx, []string{addr}, nil, LoadSpec{Keys: 10000, KeyLen: 16, ValueLen: 100, ConnsEach: 3, Batch: 64}); err != nil {
		t.Fatal(err)
	}
	if n, err := Command(ctx, addr, "DBSIZE"); err != nil || n != "10000" {
		t.Errorf("DBSIZE = %q, %v; want 10000", n, err)
	}
	if v, err := Command(ctx, addr, "STRLEN", KeyName(9999, 16)); err != nil || v != "100" {
		t.Errorf("STRLEN = %q, %v; want 100", v, err)
	}

	var slots SlotMap
	for i := range slots {
		slots[i] = addr
	}
	bg := StartLoad(ctx, &slots, 2, 100)
	res, err := ProbeWrite(ctx, []string{"127.0.0.1:1", addr}, "probe", time.Now(), 10*time.Millisecond, 5*time.Second)
	// The probe can finish before the load's first write: give the load
	// its chance before judging it.
	for deadline := time.Now().Add(5 * time.Second); bg.ok.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	ok, _ := bg.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if res.By != addr || res.Refusals != 1 || res.After <= 0 {
		t.Errorf("probe = %+v; want OK from %s after one refusal", res, addr)
	}
	if ok == 0 {
		t.Error("background load made no writes")
	}

	// A probe that nobody answers gives up.
	if _, err := ProbeWrite(ctx, []string{"127.0.0.1:1"}, "k", time.Now(), 10*time.Millisecond, 50*time.Millisecond); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}
