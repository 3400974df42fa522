// Package resp owns the Redis protocol beyond what redcon gives: reply values
// and their RESP2/RESP3 encodings, Redis-style errors, and the limits on what
// a client may send (framing checks before any memory is spent on a request).
package resp
