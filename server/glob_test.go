package server

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// globVectors were checked against redis-server 7.0.15: each subject was
// stored as the only key and KEYS <pattern> asked for it (nocase=false), or,
// for nocase=true, CONFIG GET <pattern> was asked whether it lists the config
// parameter (Redis matches config names case-insensitively).
var globVectors = []struct {
	pattern, s   string
	nocase, want bool
}{
	{"*", "anything", false, true},
	{"*", "x", false, true},
	{"?", "a", false, true},
	{"?", "ab", false, false},
	{"??", "ab", false, true},
	{"h?llo", "hello", false, true},
	{"h?llo", "hllo", false, false},
	{"h*llo", "hllo", false, true},
	{"h*llo", "heeeello", false, true},
	{"h[ae]llo", "hello", false, true},
	{"h[ae]llo", "hillo", false, false},
	{"h[^e]llo", "hallo", false, true},
	{"h[^e]llo", "hello", false, false},
	{"h[a-b]llo", "hbllo", false, true},
	{"h[a-b]llo", "hcllo", false, false},
	{"h[b-a]llo", "hallo", false, true},
	{"a\\*b", "a*b", false, true},
	{"a\\*b", "axb", false, false},
	{"a\\", "a\\", false, true},
	{"\\", "\\", false, true},
	{"a\\?", "a?", false, true},
	{"a\\?", "ab", false, false},
	{"[", "[", false, false},
	{"[", "a", false, false},
	{"[^", "x", false, true},
	{"[^", "[", false, true},
	{"[a", "a", false, true},
	{"[ab", "b", false, true},
	{"[ab", "[", false, false},
	{"[a-", "-", false, true},
	{"[a-", "a", false, true},
	{"[a-]", "]", false, true},
	{"[a-]", "a", false, true},
	{"[a-]", "-", false, false},
	{"[a-]", "b", false, false},
	{"[a-]x", "ax", false, false},
	{"[a-]x", "a", false, true},
	{"[]]", "]", false, false},
	{"[]a]", "a", false, false},
	{"[]a]", "]", false, false},
	{"[]a]", "]a]", false, false},
	{"[]", "]", false, false},
	{"[\\]]", "]", false, true},
	{"[\\", "\\", false, true},
	{"[\\]", "]", false, true},
	{"[\\]", "\\", false, false},
	{"[a\\-z]", "-", false, true},
	{"[a\\-z]", "b", false, false},
	{"[-a]", "-", false, true},
	{"[a-c-e]", "d", false, false},
	{"[a-c-e]", "-", false, true},
	{"[^a-c]", "d", false, true},
	{"[^a-c]", "b", false, false},
	{"[\x01-\xff]", "b", false, false},
	{"[\x01-\xff]", "\xff", false, true},
	{"[\x01-\xff]", "\x00", false, true},
	{"[\x01-\xff]", "\x01", false, true},
	{"[\x80-\xff]", "\x90", false, true},
	{"[a-\xff]", "B", false, true},
	{"\xff", "\xff", false, true},
	{"*\x00*", "a\x00b", false, true},
	{"a\x00", "a", false, false},
	{"*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false},
	{"*a*a*a*a*a*a*a*a*a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, true},
	{"**a", "ba", false, true},
	{"a**", "a", false, true},
	{"a*", "a", false, true},
	{"a*b*", "ab", false, true},
	{"*?", "", false, false},
	{"", "", false, true},
	{"", "a", false, false},
	{"a", "", false, false},
	{"A", "a", false, false},
	{"[A-Z]", "a", false, false},
	{"*[", "ab[", false, false},
	{"*]", "a]", false, true},
	{"x*[", "x", false, false},
	{"?*?", "a", false, false},
	{"?*?", "ab", false, true},

	// nocase, via CONFIG GET
	{"MAXMEMOR?", "maxmemory", true, true},
	{"MAXMEMOR?", "maxmemory-policy", true, false},
	{"[L-N]axmemory", "maxmemory", true, true},
	{"[L-N]axmemory", "maxmemory-policy", true, false},
	{"[\\M]axmemory", "maxmemory", true, false},
	{"[\\M]axmemory", "maxmemory-policy", true, false},
	{"[\\m]axmemory", "maxmemory", true, true},
	{"[\\m]axmemory", "maxmemory-policy", true, false},
	{"[^M]axmemory", "maxmemory", true, false},
	{"[^M]axmemory", "maxmemory-policy", true, false},
	{"[^m]axmemory", "maxmemory", true, false},
	{"[^m]axmemory", "maxmemory-policy", true, false},
	{"maxmemory-[P]olicy", "maxmemory", true, false},
	{"maxmemory-[P]olicy", "maxmemory-policy", true, true},
	{"*-POLICY", "maxmemory", true, false},
	{"*-POLICY", "maxmemory-policy", true, true},
	{"[A-Z]axmemory", "maxmemory", true, true},
	{"[A-Z]axmemory", "maxmemory-policy", true, false},
	{"[Z-A]axmemory", "maxmemory", true, true},
	{"[Z-A]axmemory", "maxmemory-policy", true, false},
	{"[[-a]axmemory", "maxmemory", true, false},
	{"[[-a]axmemory", "maxmemory-policy", true, false},
	{"[m-[]axmemory", "maxmemory", true, true},
	{"[m-[]axmemory", "maxmemory-policy", true, false},
	{"MaxMemory*", "maxmemory", true, true},
	{"MaxMemory*", "maxmemory-policy", true, true},
	{"maxmemory[-_]policy", "maxmemory", true, false},
	{"maxmemory[-_]policy", "maxmemory-policy", true, true},
	{"Ma?Me*Y", "maxmemory", true, true},
	{"Ma?Me*Y", "maxmemory-policy", true, true},
}

func TestMatchRedisVectors(t *testing.T) {
	for _, v := range globVectors {
		if got := Match([]byte(v.pattern), []byte(v.s), v.nocase); got != v.want {
			t.Errorf("Match(%q, %q, nocase=%v) = %v, Redis says %v", v.pattern, v.s, v.nocase, got, v.want)
		}
	}
}

// TestMatchNesting checks Redis's guard against abusive patterns: more than
// 1000 nested '*' gives no match, even where the pattern would match. The
// expectations come from KEYS against a 1100-byte key of 'a' on Redis 7.0.15.
func TestMatchNesting(t *testing.T) {
	key := []byte(strings.Repeat("a", 1100))
	for _, v := range []struct {
		pattern string
		want    bool
	}{
		{strings.Repeat("*a", 1000), true},
		{strings.Repeat("*a", 1001), false},
		{strings.Repeat("*a", 1000) + "*", true},
		{strings.Repeat("*a", 1001) + "*", false},
		{strings.Repeat("a*", 1001), true}, // the last '*' is trailing: no recursion
		{strings.Repeat("a*", 1002), false},
		{strings.Repeat("a*", 1000) + "b", false},
	} {
		if got := Match([]byte(v.pattern), key, false); got != v.want {
			t.Errorf("Match(%d-byte pattern %.8q...) = %v, Redis says %v", len(v.pattern), v.pattern, got, v.want)
		}
	}
}

// TestMatchNotExponential runs patterns that take a naive backtracking
// matcher exponential time; each must finish at once.
func TestMatchNotExponential(t *testing.T) {
	for _, v := range []struct{ pattern, s string }{
		{"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 5000)},
		{strings.Repeat("*a", 200) + "b", strings.Repeat("a", 5000)},
		{strings.Repeat("*?", 100) + "b", strings.Repeat("a", 5000)},
		{strings.Repeat("*[a-z]", 100) + "[0-9]", strings.Repeat("ab", 2500)},
		{strings.Repeat("a*", 500) + "b", strings.Repeat("a", 5000)},
	} {
		start := time.Now()
		if Match([]byte(v.pattern), []byte(v.s), false) {
			t.Errorf("Match(%.20q..., %d bytes) = true", v.pattern, len(v.s))
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Match(%.20q..., %d bytes) took %v", v.pattern, len(v.s), d)
		}
	}
}

func BenchmarkMatchAdversarial(b *testing.B) {
	p := []byte("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b")
	s := []byte(strings.Repeat("a", 1000))
	for b.Loop() {
		Match(p, s, false)
	}
}

func BenchmarkMatchKeyPattern(b *testing.B) {
	p := []byte("user:*:session:[0-9]*")
	s := []byte("user:1234567:session:42")
	for b.Loop() {
		Match(p, s, false)
	}
}

// globNaive is Redis's matcher as it was before the skipLongerMatches and
// nesting guards: plain exponential backtracking, written independently of
// Match (no index juggling, the class is parsed up front). Fine for short
// inputs, and the reference FuzzMatch holds Match to.
func globNaive(p, s []byte, nocase bool) bool {
	// stringmatchlen's loop never runs on an empty subject, so only the
	// empty pattern matches it ("*" too fails; KEYS and SCAN special-case
	// a lone "*" before they match). Past the first byte, a '*' is only
	// tried against non-empty rests, and stars left when the subject runs
	// out match the empty rest.
	if len(s) == 0 {
		return len(p) == 0
	}
	return globNaiveRest(p, s, nocase)
}

func globNaiveRest(p, s []byte, nocase bool) bool {
	fold := func(c byte) byte {
		if nocase && c >= 'A' && c <= 'Z' {
			return c + 32
		}
		return c
	}
	for len(p) > 0 {
		if len(s) == 0 {
			// Only a run of '*' matches the empty rest.
			return strings.Trim(string(p), "*") == ""
		}
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i < len(s); i++ {
				if globNaiveRest(p[1:], s[i:], nocase) {
					return true
				}
			}
			return false
		case '?':
			p, s = p[1:], s[1:]
		case '[':
			q := p[1:]
			neg := len(q) > 0 && q[0] == '^'
			if neg {
				q = q[1:]
			}
			hit := false
			n := 0 // bytes of q that the class uses, the ']' included
			for {
				switch {
				case n+1 < len(q) && q[n] == '\\':
					hit = hit || q[n+1] == s[0] // no folding, as Redis
					n += 2
					continue
				case n < len(q) && q[n] == ']':
					n++
				case n >= len(q):
					// Unterminated: the class ends with the pattern,
					// but C steps back onto its last byte first; with
					// nothing after '[' or '^', that byte is the '['
					// or '^' itself.
				case n+2 < len(q) && q[n+1] == '-':
					lo, hi, c := int(int8(q[n])), int(int8(q[n+2])), int(int8(s[0]))
					if lo > hi {
						lo, hi = hi, lo
					}
					if nocase {
						lo, hi, c = int(int8(fold(byte(lo)))), int(int8(fold(byte(hi)))), int(int8(fold(byte(c))))
					}
					hit = hit || (c >= lo && c <= hi)
					n += 3
					continue
				default:
					hit = hit || fold(q[n]) == fold(s[0])
					n++
					continue
				}
				break
			}
			if hit == neg {
				return false
			}
			p, s = q[n:], s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if fold(p[0]) != fold(s[0]) {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}

// globLatin1 maps each byte to the rune of the same value, so that a regexp
// over the result matches byte by byte.
func globLatin1(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// globRegexp translates the well-formed part of the glob language into a
// regexp, for a reference that shares no code with Match. It gives up (ok
// false) on what only Redis's quirks define: unterminated classes, ranges
// ending in ']', range ends at or above 0x80 (signed char), and ranges or
// escapes in classes under nocase.
func globRegexp(p []byte, nocase bool) (re *regexp.Regexp, ok bool) {
	var sb strings.Builder
	sb.WriteString("^(?s)")
	if nocase {
		sb.WriteString("(?i)")
	}
	lit := func(c byte) { sb.WriteString(regexp.QuoteMeta(string(rune(c)))) }
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			sb.WriteString(".*")
		case '?':
			sb.WriteString(".")
		case '\\':
			if i+1 < len(p) {
				i++
			}
			lit(p[i])
		case '[':
			i++
			neg := i < len(p) && p[i] == '^'
			if neg {
				i++
			}
			var items []string
			for {
				if i >= len(p) {
					return nil, false
				}
				if p[i] == ']' {
					break
				}
				if p[i] == '\\' && i+1 < len(p) {
					if nocase {
						return nil, false
					}
					items = append(items, `\x{`+globHex(p[i+1])+`}`)
					i += 2
					continue
				}
				if i+2 < len(p) && p[i+1] == '-' {
					lo, hi := p[i], p[i+2]
					if hi == ']' || lo >= 0x80 || hi >= 0x80 || nocase {
						return nil, false
					}
					if lo > hi {
						lo, hi = hi, lo
					}
					items = append(items, `\x{`+globHex(lo)+`}-\x{`+globHex(hi)+`}`)
					i += 3
					continue
				}
				items = append(items, `\x{`+globHex(p[i])+`}`)
				i++
			}
			if len(items) == 0 {
				// "[]" and "[^]" (a class closed at once) match
				// nothing and any byte respectively.
				if neg {
					sb.WriteString(".")
				} else {
					sb.WriteString(`[^\x00-\x{10FFFF}]`)
				}
				continue
			}
			sb.WriteString("[")
			if neg {
				sb.WriteString("^")
			}
			sb.WriteString(strings.Join(items, ""))
			sb.WriteString("]")
		default:
			lit(c)
		}
	}
	sb.WriteString("$")
	re, err := regexp.Compile(sb.String())
	if err != nil {
		return nil, false
	}
	return re, true
}

func globASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func globHex(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func FuzzMatch(f *testing.F) {
	for _, v := range globVectors {
		f.Add([]byte(v.pattern), []byte(v.s), v.nocase)
	}
	f.Fuzz(func(t *testing.T, p, s []byte, nocase bool) {
		if len(p) > 20 || len(s) > 20 || bytes.Count(p, []byte("*")) > 6 {
			return // the naive reference is exponential
		}
		got := Match(p, s, nocase)
		if want := globNaive(p, s, nocase); got != want {
			t.Fatalf("Match(%q, %q, %v) = %v, naive reference says %v", p, s, nocase, got, want)
		}
		// Go folds Latin-1 letters too; C's tolower only ASCII ones.
		if nocase && (!globASCII(p) || !globASCII(s)) {
			return
		}
		if re, ok := globRegexp(p, nocase); ok && len(s) > 0 {
			if want := re.MatchString(globLatin1(s)); got != want {
				t.Fatalf("Match(%q, %q, %v) = %v, regexp %s says %v", p, s, nocase, got, re, want)
			}
		}
	})
}
