package resp

import (
	"math"
	"strconv"

	"github.com/tidwall/redcon"
)

// Kind says which RESP type a Value encodes as.
type Kind uint8

// The reply kinds. RESP3-only kinds fall back to their RESP2 form on a RESP2
// connection, exactly as Redis does (maps become flat arrays, doubles bulk
// strings, booleans integers, nulls $-1 or *-1).
const (
	KindNull      Kind = iota // RESP3 _, RESP2 $-1
	KindNullArray             // RESP3 _, RESP2 *-1
	KindSimple                // +OK
	KindError                 // -ERR ...
	KindInt                   // :1
	KindBulk                  // $3 foo
	KindArray                 // *n
	KindMap                   // RESP3 %n, RESP2 *2n
	KindSet                   // RESP3 ~n, RESP2 *n
	KindDouble                // RESP3 ,1.5, RESP2 $3 1.5
	KindBool                  // RESP3 #t, RESP2 :1
	KindVerbatim              // RESP3 =n txt:..., RESP2 bulk
	KindRaw                   // pre-encoded bytes, written as they are
	KindPush                  // RESP3 >n (out of band), RESP2 *n (a pub/sub message)
)

// Value is one reply. It is a plain struct, passed by value, so that building
// the common replies (OK, an integer, a bulk) allocates nothing.
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Str   string
	Bytes []byte
	Elems []Value // array and set elements; map keys and values alternate
}

// Common replies.
var (
	OK        = Value{Kind: KindSimple, Str: "OK"}
	Pong      = Value{Kind: KindSimple, Str: "PONG"}
	Queued    = Value{Kind: KindSimple, Str: "QUEUED"}
	Null      = Value{Kind: KindNull}
	NullArray = Value{Kind: KindNullArray}
)

// Simple is a simple string reply.
func Simple(s string) Value { return Value{Kind: KindSimple, Str: s} }

// Int is an integer reply.
func Int(n int64) Value { return Value{Kind: KindInt, Int: n} }

// Bool is a boolean reply (an integer 0 or 1 on RESP2).
func Bool(b bool) Value {
	if b {
		return Value{Kind: KindBool, Int: 1}
	}
	return Value{Kind: KindBool}
}

// Bulk is a bulk string reply. The bytes are written, not kept, so they may
// point into a buffer that is reused after the reply is encoded.
func Bulk(b []byte) Value { return Value{Kind: KindBulk, Bytes: b} }

// BulkString is a bulk string reply from a Go string.
func BulkString(s string) Value { return Value{Kind: KindBulk, Str: s} }

// Double is a floating point reply (a bulk string on RESP2).
func Double(f float64) Value { return Value{Kind: KindDouble, Float: f} }

// Array is an array reply.
func Array(elems ...Value) Value { return Value{Kind: KindArray, Elems: elems} }

// Push is a push message: out of band in RESP3, an array in RESP2 (as a
// subscribed connection gets its messages).
func Push(elems ...Value) Value { return Value{Kind: KindPush, Elems: elems} }

// Set is a set reply (an array on RESP2).
func Set(elems ...Value) Value { return Value{Kind: KindSet, Elems: elems} }

// Map is a map reply from alternating keys and values (a flat array on RESP2).
func Map(kv ...Value) Value { return Value{Kind: KindMap, Elems: kv} }

// Verbatim is a verbatim text reply ("txt" format), as INFO and CLIENT INFO
// send on RESP3; a bulk string on RESP2.
func Verbatim(s string) Value { return Value{Kind: KindVerbatim, Str: s} }

// Raw is pre-encoded RESP, written unchanged.
func Raw(b []byte) Value { return Value{Kind: KindRaw, Bytes: b} }

// BulkStrings is an array of bulk strings.
func BulkStrings(ss ...string) Value {
	elems := make([]Value, len(ss))
	for i, s := range ss {
		elems[i] = BulkString(s)
	}
	return Array(elems...)
}

// Append encodes v for a connection speaking protocol proto (2 or 3).
func Append(b []byte, v Value, proto int) []byte {
	switch v.Kind {
	case KindNull:
		if proto >= 3 {
			return append(b, "_\r\n"...)
		}
		return append(b, "$-1\r\n"...)
	case KindNullArray:
		if proto >= 3 {
			return append(b, "_\r\n"...)
		}
		return append(b, "*-1\r\n"...)
	case KindSimple:
		return redcon.AppendString(b, v.Str)
	case KindError:
		return redcon.AppendError(b, v.Str)
	case KindInt:
		return redcon.AppendInt(b, v.Int)
	case KindBulk:
		if v.Bytes != nil {
			return redcon.AppendBulk(b, v.Bytes)
		}
		return redcon.AppendBulkString(b, v.Str)
	case KindArray:
		b = redcon.AppendArray(b, len(v.Elems))
	case KindPush:
		if proto >= 3 {
			b = appendHeader(b, '>', len(v.Elems))
		} else {
			b = redcon.AppendArray(b, len(v.Elems))
		}
	case KindSet:
		if proto >= 3 {
			b = appendHeader(b, '~', len(v.Elems))
		} else {
			b = redcon.AppendArray(b, len(v.Elems))
		}
	case KindMap:
		if proto >= 3 {
			b = appendHeader(b, '%', len(v.Elems)/2)
		} else {
			b = redcon.AppendArray(b, len(v.Elems))
		}
	case KindDouble:
		s := FormatDouble(v.Float)
		if proto >= 3 {
			b = append(b, ',')
			b = append(b, s...)
			return append(b, "\r\n"...)
		}
		return redcon.AppendBulkString(b, s)
	case KindBool:
		if proto >= 3 {
			if v.Int != 0 {
				return append(b, "#t\r\n"...)
			}
			return append(b, "#f\r\n"...)
		}
		return redcon.AppendInt(b, v.Int)
	case KindVerbatim:
		if proto >= 3 {
			b = appendHeader(b, '=', len(v.Str)+4)
			b = append(b, "txt:"...)
			b = append(b, v.Str...)
			return append(b, "\r\n"...)
		}
		return redcon.AppendBulkString(b, v.Str)
	case KindRaw:
		return append(b, v.Bytes...)
	}
	for _, e := range v.Elems {
		b = Append(b, e, proto)
	}
	return b
}

func appendHeader(b []byte, prefix byte, n int) []byte {
	b = append(b, prefix)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n"...)
}

// FormatDouble formats f as Redis does for RESP3 doubles and INCRBYFLOAT:
// the shortest representation that reads back exactly, "inf"/"-inf" for
// infinities.
func FormatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
