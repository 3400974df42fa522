package server_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server/servertest"
)

// errReply is an expected error reply: the full text, or a prefix ending
// in "*".
type errReply string

// nilReply is an expected null reply.
var nilReply = struct{ null bool }{true}

// step is one exchange of a conversation: a command and the reply expected.
type step struct {
	cmd  string // words split on spaces; use args for values with spaces
	args []any
	want any
}

// call formats a command as a step's args.
func (s step) argv() []any {
	if s.args != nil {
		return s.args
	}
	var out []any
	for _, w := range strings.Fields(s.cmd) {
		out = append(out, w)
	}
	return out
}

// converse sends the steps in order on one connection and checks each reply.
func converse(t *testing.T, rdb *redis.Client, steps []step) {
	t.Helper()
	ctx := servertest.Ctx(t)
	for _, s := range steps {
		got, err := rdb.Do(ctx, s.argv()...).Result()
		check(t, s.argv(), s.want, got, err)
	}
}

// between wants an integer reply in [lo, hi]: for TTLs, which tick down
// between the commands.
type between [2]int64

func check(t *testing.T, argv []any, want, got any, err error) {
	t.Helper()
	switch w := want.(type) {
	case between:
		if n, ok := got.(int64); err != nil || !ok || n < w[0] || n > w[1] {
			t.Errorf("%v: got %#v (err %v), want an integer in [%d, %d]", argv, got, err, w[0], w[1])
		}
	case errReply:
		var re redis.Error
		if !errors.As(err, &re) {
			t.Errorf("%v: got %#v (err %v), want error %q", argv, got, err, w)
			return
		}
		if p, ok := strings.CutSuffix(string(w), "*"); ok {
			if !strings.HasPrefix(err.Error(), p) {
				t.Errorf("%v: error %q, want prefix %q", argv, err, p)
			}
		} else if err.Error() != string(w) {
			t.Errorf("%v: error %q, want %q", argv, err, w)
		}
	default:
		if want == nilReply {
			if !errors.Is(err, redis.Nil) {
				t.Errorf("%v: got %#v (err %v), want nil", argv, got, err)
			}
			return
		}
		if err != nil {
			t.Errorf("%v: unexpected error %v (want %#v)", argv, err, want)
			return
		}
		if w, ok := want.(int); ok {
			want = int64(w)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("%v: got %#v, want %#v", argv, got, want)
		}
	}
}

// normalize makes int and int64, and nested slices, compare equal.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out
	}
	return v
}

// list builds an expected array reply.
func list(vs ...any) []any { return vs }

// conversations runs each named conversation against a fresh node.
func conversations(t *testing.T, cases map[string][]step) {
	t.Helper()
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			n := servertest.Start(t)
			converse(t, n.Client(), steps)
		})
	}
}
