package server

import (
	"strings"

	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// Flag describes how a command is treated before its handler runs.
type Flag uint16

// Command flags, named as in Redis's COMMAND reply where Redis has them.
const (
	FlagWrite    Flag = 1 << iota // mutates the keyspace: runs in the committer
	FlagReadonly                  // reads the keyspace
	FlagAdmin                     // administrative
	FlagNoAuth                    // allowed before AUTH
	FlagFast                      // O(1) or O(log n)
	FlagLoading                   // allowed while loading
	FlagStale                     // allowed on a stale replica
	FlagNoScript                  // not allowed from scripts
	FlagDenyOOM                   // may grow memory
	FlagKeyless                   // takes no keys (KEYS/SCAN/DBSIZE are per node)
	FlagInternal                  // node-to-node only: refused to ordinary clients
	// FlagMultiSlot marks a command whose handler takes each key's slot
	// itself: for a client that does not follow redirects its keys may be
	// in several slots (route.go).
	FlagMultiSlot
	// FlagServedHere marks a command with keys that a connection that
	// does not follow redirects has served by the node it is on, whatever
	// the slot (SSUBSCRIBE: the subscription is the connection's).
	FlagServedHere
)

var flagNames = []struct {
	f    Flag
	name string
}{
	{FlagWrite, "write"},
	{FlagReadonly, "readonly"},
	{FlagDenyOOM, "denyoom"},
	{FlagAdmin, "admin"},
	{FlagNoScript, "noscript"},
	{FlagLoading, "loading"},
	{FlagStale, "stale"},
	{FlagNoAuth, "no_auth"},
	{FlagFast, "fast"},
}

// ReadHandler executes a command that does not change the keyspace.
type ReadHandler func(ctx *Ctx) (resp.Value, error)

// WriteHandler parses a mutating command and returns the function that
// performs it inside the storage committer, where it sees a consistent view
// and its changes commit (and later replicate) as part of one batch. Parse
// errors are returned before anything is submitted.
type WriteHandler func(ctx *Ctx) (func(tx *storage.Tx) (resp.Value, error), error)

// Command is one row of the command table: everything the dispatcher needs
// to decide arity, authentication, routing and execution path, as data.
type Command struct {
	Name     string
	Arity    int // Redis convention: n exact, -n at least n (both count the name)
	Flags    Flag
	FirstKey int // position of the first key, 0 for none
	LastKey  int // position of the last key; negative counts from the end
	KeyStep  int
	ACL      []string // ACL categories, for COMMAND's reply
	// Split says how the command is served when its keys are on several
	// nodes (FlagMultiSlot commands only).
	Split splitKind
	Read  ReadHandler
	Write WriteHandler
	Subs  []*Command // subcommands, for COMMAND's reply only
}

// keyPositions calls fn with the index of each key argument of args.
func (c *Command) keyPositions(args [][]byte, fn func(i int)) {
	if c.FirstKey <= 0 || c.FirstKey >= len(args) {
		return
	}
	last := c.LastKey
	if last < 0 {
		last = len(args) + last
	}
	if last >= len(args) {
		last = len(args) - 1
	}
	step := max(c.KeyStep, 1)
	for i := c.FirstKey; i <= last; i += step {
		fn(i)
	}
}

// Table is the command table, keyed by lower-case name.
type Table map[string]*Command

func newTable(cmds ...[]*Command) Table {
	t := Table{}
	for _, group := range cmds {
		for _, c := range group {
			if c.Read == nil && c.Write == nil {
				panic("command " + c.Name + " has no handler")
			}
			if c.Write != nil {
				c.Flags |= FlagWrite
			}
			t[c.Name] = c
		}
	}
	return t
}

// lookup finds a command by name in any letter case without allocating
// for names that fit the stack buffer.
func (t Table) lookup(name []byte) *Command {
	var buf [32]byte
	if len(name) > len(buf) {
		return t[strings.ToLower(string(name))]
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t[string(buf[:len(name)])]
}

// subArity checks that a container command's subcommand got exactly n
// arguments (name and subcommand included).
func subArity(args [][]byte, n int, cmd, sub string) error {
	if len(args) != n {
		return resp.ErrSubArity(cmd, sub)
	}
	return nil
}

// arityOK reports whether n arguments (name included) fit the arity.
func arityOK(arity, n int) bool {
	if arity >= 0 {
		return n == arity
	}
	return n >= -arity
}
