package resp

import (
	"errors"
	"strings"
)

// Error is an error whose text goes to the client unchanged: it starts with
// the Redis error code (ERR, WRONGTYPE, MOVED, ...), because clients parse it.
type Error string

func (e Error) Error() string { return string(e) }

// Errors whose exact text clients and tests rely on, as Redis 7 words them.
var (
	// ErrSyntax is Redis's generic syntax error.
	ErrSyntax = Error("ERR syntax error")
	// ErrNotInteger is returned where an integer argument or value is not one.
	ErrNotInteger = Error("ERR value is not an integer or out of range")
	// ErrNotFloat is returned where a float argument or value is not one.
	ErrNotFloat = Error("ERR value is not a valid float")
	// ErrOverflow is returned when INCR and friends would leave int64.
	ErrOverflow = Error("ERR increment or decrement would overflow")
	// ErrNaNOrInf is returned by INCRBYFLOAT when the result is not finite.
	ErrNaNOrInf = Error("ERR increment would produce NaN or Infinity")
	// ErrWrongType is returned when a key holds another type.
	ErrWrongType = Error("WRONGTYPE Operation against a key holding the wrong kind of value")
	// ErrNoAuth is returned to unauthenticated clients when a password is set.
	ErrNoAuth = Error("NOAUTH Authentication required.")
	// ErrWrongPass is returned for a wrong password.
	ErrWrongPass = Error("WRONGPASS invalid username-password pair or user is disabled.")
	// ErrCrossSlot is returned when a multi-key command spans hash slots.
	ErrCrossSlot = Error("CROSSSLOT Keys in request don't hash to the same slot")
	// ErrNoSuchKey is returned by RENAME of a missing key.
	ErrNoSuchKey = Error("ERR no such key")
	// ErrStringTooLong is returned when a string would exceed proto-max-bulk-len.
	ErrStringTooLong = Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	// ErrInvalidExpire is returned for an expire time out of range.
	ErrInvalidExpire = Error("ERR invalid expire time in 'set' command")
	// ErrDBIndex is returned by SELECT of a database other than 0.
	ErrDBIndex = Error("ERR DB index is out of range")
	// ErrMaxClients is sent to a connection refused for maxclients.
	ErrMaxClients = Error("ERR max number of clients reached")
	// ErrOOM refuses a command that may grow memory while the node is over
	// maxmemory and cannot evict.
	ErrOOM = Error("OOM command not allowed when used memory > 'maxmemory'.")
)

// ErrArity is the wrong-number-of-arguments error for a command.
func ErrArity(cmd string) Error {
	return Error("ERR wrong number of arguments for '" + strings.ToLower(cmd) + "' command")
}

// ErrUnknownCommand is Redis 7's unknown command error, quoting the
// command and the start of its arguments.
func ErrUnknownCommand(name string, args [][]byte) Error {
	var sb strings.Builder
	sb.WriteString("ERR unknown command '")
	sb.WriteString(sanitize(name, 128))
	sb.WriteString("', with args beginning with: ")
	for _, a := range args {
		if sb.Len() > 512 {
			break
		}
		sb.WriteByte('\'')
		sb.WriteString(sanitize(string(a), 128))
		sb.WriteString("' ")
	}
	return Error(sb.String())
}

// ErrSubArity is the wrong-number-of-arguments error for a subcommand,
// named as Redis names it: 'client|setname'.
func ErrSubArity(cmd, sub string) Error {
	return ErrArity(cmd + "|" + sub)
}

// ErrUnknownSubcommand is Redis 7's error for an unknown subcommand.
func ErrUnknownSubcommand(cmd, sub string) Error {
	return Error("ERR unknown subcommand '" + sanitize(sub, 128) + "'. Try " + strings.ToUpper(cmd) + " HELP.")
}

// sanitize keeps an echoed client string on one line and bounded, as an
// error reply must not contain CR or LF.
func sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// ErrorValue turns a Go error into the error reply a client sees: an Error
// (possibly wrapped) keeps its text; anything else becomes "ERR <text>".
func ErrorValue(err error) Value {
	var re Error
	if errors.As(err, &re) {
		return Value{Kind: KindError, Str: sanitize(string(re), 4096)}
	}
	return Value{Kind: KindError, Str: "ERR " + sanitize(err.Error(), 4096)}
}
