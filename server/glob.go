package server

// Glob-style matching for KEYS, SCAN MATCH, CONFIG GET and friends.
//
// Match is a port of Redis 7.0's stringmatchlen (util.c), quirks included,
// because clients rely on KEYS and SCAN selecting exactly the keys Redis
// would select:
//
//   - an unterminated class ("[abc") runs to the end of the pattern and still
//     matches one character;
//   - in a class, "a-z" is a range whose ends may come in either order, and
//     the range end may be the class's ']' ("[a-]" is the range ']'..'a' in
//     a class that never closes);
//   - range ends and the subject compare as C's signed char, so bytes 0x80 and
//     above sort below 0x00 in a range;
//   - an escaped character inside a class ("[\a]") compares case-sensitively
//     even when nocase is set;
//   - case folding is ASCII only (C's tolower in the "C" locale);
//   - a pattern that would recurse through more than 1000 '*' gives no match
//     (Redis's guard against abusive patterns, CVE-2022-36021).
//
// The C code reads the NUL that terminates its sds strings when it looks one
// byte past the end of the pattern; the port's globAt returns 0 there, so the
// two agree.

// maxGlobNesting is Redis's limit on '*' recursion depth.
const maxGlobNesting = 1000

// Match reports whether s matches the glob pattern, with exactly the
// semantics of Redis's stringmatchlen: '*' any run, '?' any byte, '[...]'
// classes with '^' negation and 'a-z' ranges, '\' escapes; nocase folds
// ASCII letters.
//
// As in Redis, an empty subject matches only an empty pattern, not even "*":
// KEYS and SCAN treat a lone "*" as "everything" before they ever match.
//
// It runs in O(len(pattern)*len(s)) time: like Redis, once the rest of the
// pattern after a '*' has failed at every position of the subject, no earlier
// '*' is retried with a longer run, since that could only start the rest
// later in the subject. That keeps patterns such as "*a*a*a*a*a*b" from
// taking exponential time.
func Match(pattern, s []byte, nocase bool) bool {
	skipLonger := false
	return globMatch(pattern, s, nocase, &skipLonger, 0)
}

// globAt returns b[i], or 0 past the end: the C code reads the terminating NUL
// in the same places.
func globAt(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// globLower is C's tolower in the "C" locale.
func globLower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// globLowerSigned is tolower applied to a signed char value, as the C range
// check does: only ASCII letters change, other values (negative ones
// included) are returned unchanged.
func globLowerSigned(c int) int {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func globMatch(p, s []byte, nocase bool, skipLonger *bool, nesting int) bool {
	// Protection against abusive patterns, as Redis 7.0.9+.
	if nesting > maxGlobNesting {
		return false
	}
	// pi and si play the role of C's pattern and string pointers; the
	// lengths left are len(p)-pi and len(s)-si.
	pi, si := 0, 0
	for pi < len(p) && si < len(s) {
		switch p[pi] {
		case '*':
			for pi+1 < len(p) && p[pi+1] == '*' {
				pi++
			}
			if pi+1 == len(p) {
				return true
			}
			for si < len(s) {
				if globMatch(p[pi+1:], s[si:], nocase, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				si++
			}
			// The rest of the pattern matched nowhere in the rest of the
			// subject, so a longer run for any earlier '*' cannot help
			// either: tell every enclosing '*' to give up.
			*skipLonger = true
			return false
		case '?':
			si++
		case '[':
			pi++
			not := globAt(p, pi) == '^'
			if not {
				pi++
			}
			match := false
			for {
				if globAt(p, pi) == '\\' && len(p)-pi >= 2 {
					pi++
					// Case-sensitive even with nocase, as in Redis.
					if p[pi] == s[si] {
						match = true
					}
				} else if globAt(p, pi) == ']' {
					break
				} else if pi == len(p) {
					// Unterminated class: step back onto the last byte
					// (the '[' or '^' at least), which the advance after
					// the switch consumes again.
					pi--
					break
				} else if len(p)-pi >= 3 && p[pi+1] == '-' {
					// Range ends and subject compare as C signed chars.
					start, end, c := int(int8(p[pi])), int(int8(p[pi+2])), int(int8(s[si]))
					if start > end {
						start, end = end, start
					}
					if nocase {
						start, end, c = globLowerSigned(start), globLowerSigned(end), globLowerSigned(c)
					}
					pi += 2
					if c >= start && c <= end {
						match = true
					}
				} else if !nocase {
					if p[pi] == s[si] {
						match = true
					}
				} else if globLower(p[pi]) == globLower(s[si]) {
					match = true
				}
				pi++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			si++
		case '\\':
			if len(p)-pi >= 2 {
				pi++
			}
			fallthrough
		default:
			if !nocase {
				if p[pi] != s[si] {
					return false
				}
			} else if globLower(p[pi]) != globLower(s[si]) {
				return false
			}
			si++
		}
		pi++
		if si == len(s) {
			for pi < len(p) && p[pi] == '*' {
				pi++
			}
			break
		}
	}
	return pi == len(p) && si == len(s)
}
