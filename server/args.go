package server

import (
	"math"
	"strconv"

	"github.com/ringcache/ringcache/resp"
)

// parseInt parses a signed 64-bit integer as Redis's string2ll does: no
// sign but '-', no leading zeros, no spaces. Anything else is not an integer.
func parseInt(b []byte) (int64, bool) {
	n := len(b)
	if n == 0 || n > 20 {
		return 0, false
	}
	if n == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	i := 0
	if neg {
		i = 1
		if n == 1 {
			return 0, false
		}
	}
	if b[i] < '1' || b[i] > '9' {
		return 0, false
	}
	var v uint64
	for ; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// intArg parses an integer argument, failing with Redis's error.
func intArg(b []byte) (int64, error) {
	n, ok := parseInt(b)
	if !ok {
		return 0, resp.ErrNotInteger
	}
	return n, nil
}

// parseFloat parses a float as Redis's string2ld does for INCRBYFLOAT: no
// spaces, no NaN.
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 5000 {
		return 0, false
	}
	if b[0] == ' ' || b[len(b)-1] == ' ' {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		// ParseFloat reports out-of-range values with ±Inf; Redis accepts
		// "inf" spelled out but not overflowing literals.
		return 0, false
	}
	if math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// is reports whether arg equals the upper-case keyword kw in any case.
func is(arg []byte, kw string) bool {
	if len(arg) != len(kw) {
		return false
	}
	for i := range len(arg) {
		c := arg[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

// expiryOption parses an EX/PX/EXAT/PXAT option at args[i] (with its value
// at args[i+1]) into absolute unix ms. ok is false when args[i] is not one
// of them or has no value; cmd names the command in errors.
func expiryOption(args [][]byte, i int, now int64, cmd string) (at int64, ok bool, err error) {
	a := args[i]
	absolute := is(a, "EXAT") || is(a, "PXAT")
	seconds := is(a, "EX") || is(a, "EXAT")
	if !(absolute || seconds || is(a, "PX")) || i+1 >= len(args) {
		return 0, false, nil
	}
	unit := int64(1)
	if seconds {
		unit = 1000
	}
	at, err = expireAt(args[i+1], unit, absolute, now, cmd)
	return at, true, err
}

// expireAt turns a relative or absolute expiry argument into absolute unix
// milliseconds, refusing values Redis refuses: non-positive, or so large that
// the millisecond time overflows. cmd names the command in the error.
func expireAt(arg []byte, unitMs int64, absolute bool, now int64, cmd string) (int64, error) {
	n, ok := parseInt(arg)
	if !ok {
		return 0, resp.ErrNotInteger
	}
	invalid := resp.Error("ERR invalid expire time in '" + cmd + "' command")
	if n <= 0 || n > math.MaxInt64/unitMs {
		return 0, invalid
	}
	ms := n * unitMs
	if absolute {
		return ms, nil
	}
	if ms > math.MaxInt64-now {
		return 0, invalid
	}
	return now + ms, nil
}
