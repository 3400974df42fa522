package server

import (
	"strings"
	"sync/atomic"

	"github.com/ringcache/ringcache/storage"
)

// Keyspace notifications as Redis 7 sends them (notify-keyspace-events):
// a change to a key is published to this node's subscribers on
// __keyspace@0__:<key> (the event's name as the message, with K) and
// __keyevent@0__:<event> (the key as the message, with E), through the
// same local delivery as PUBLISH. They are node-local, as in Redis
// Cluster: the node that holds the key and made the change fires them,
// and nothing goes to the other nodes.
//
//   - A command's events (set, del, expire, rename_from, ...) are noted by
//     its write function in the committer, into its connection's notes,
//     and published by the change handler once the batch is applied,
//     before the command is acknowledged: a subscriber hears of a change
//     before the writer does, and one who reads the key then sees it.
//     Notes of a function that fails are dropped with its writes; those
//     of a command that changed nothing (a keymiss) are published by the
//     connection once its batch completes.
//   - A replica applying a write (RINGCACHE.APPLY), a handoff or a
//     catch-up stream fires nothing: those writes carry no notes, and the
//     primary that ran the command fired them.
//   - expired comes from the active expiry, and from a lazy one: a
//     command that finds a key whose time has passed removes it first,
//     as Redis's lookupKey does (a write inside its function, a read by a
//     small write of its own before it answers). Only the slot's primary
//     fires it: every copy runs its own active expiry.
//   - evicted comes from the eviction the slot's primary decides (its
//     replicas apply it as a deletion, which fires nothing).
//
// Off (the default) it costs one atomic load per write function and per
// read miss, and allocates nothing.

// Event classes, Redis's NOTIFY_* flags.
const (
	notifyKeyspace uint32 = 1 << iota // K
	notifyKeyevent                    // E
	notifyGeneric                     // g
	notifyString                      // $
	notifyList                        // l
	notifySet                         // s
	notifyHash                        // h
	notifyZset                        // z
	notifyExpired                     // x
	notifyEvicted                     // e
	notifyStream                      // t
	notifyKeyMiss                     // m
	notifyLoaded                      // module key loads: no letter
	notifyModule                      // d
	notifyNew                         // n

	// notifyAll is A: every class but m and n.
	notifyAll = notifyGeneric | notifyString | notifyList | notifySet | notifyHash | notifyZset |
		notifyExpired | notifyEvicted | notifyStream | notifyModule
)

// notifyLetters maps the letters of notify-keyspace-events to classes.
var notifyLetters = [...]struct {
	letter byte
	class  uint32
}{
	{'g', notifyGeneric}, {'$', notifyString}, {'l', notifyList}, {'s', notifySet},
	{'h', notifyHash}, {'z', notifyZset}, {'x', notifyExpired}, {'e', notifyEvicted},
	{'t', notifyStream}, {'d', notifyModule}, {'n', notifyNew},
	{'K', notifyKeyspace}, {'E', notifyKeyevent}, {'m', notifyKeyMiss},
}

// errNotifyClass is Redis's refusal of a notify-keyspace-events value.
const errNotifyClass = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

// parseNotifyFlags reads a notify-keyspace-events value.
func parseNotifyFlags(s string) (uint32, bool) {
	var f uint32
	for i := 0; i < len(s); i++ {
		if s[i] == 'A' {
			f |= notifyAll
			continue
		}
		found := false
		for _, l := range notifyLetters {
			if l.letter == s[i] {
				f |= l.class
				found = true
				break
			}
		}
		if !found {
			return 0, false
		}
	}
	return f, true
}

// formatNotifyFlags writes flags as CONFIG GET shows them: Redis's
// canonical order, A for all of its classes (and then no n, as Redis).
func formatNotifyFlags(f uint32) string {
	var b strings.Builder
	if f&notifyAll == notifyAll {
		b.WriteByte('A')
	} else {
		for _, l := range notifyLetters[:11] { // the classes, g to n
			if f&l.class != 0 {
				b.WriteByte(l.letter)
			}
		}
	}
	for _, l := range notifyLetters[11:] { // K, E, m
		if f&l.class != 0 {
			b.WriteByte(l.letter)
		}
	}
	return b.String()
}

// notifier is a node's notify-keyspace-events state.
type notifier struct {
	config atomic.Uint32 // as set, for CONFIG GET
	// on is what fires: config, or 0 when it has neither K nor E (no
	// channel to publish on). The hot paths load only this.
	on atomic.Uint32

	// queue holds the connections whose notes the next CauseWrite change
	// of their own delivers, in the order their functions ran; buf is a
	// scratch buffer for channel names. Both are the committer's only.
	queue []*client
	buf   []byte
}

func (n *notifier) set(f uint32) {
	n.config.Store(f)
	if f&(notifyKeyspace|notifyKeyevent) == 0 {
		f = 0
	}
	n.on.Store(f)
}

// notifyParam is CONFIG's notify-keyspace-events.
func notifyParam() configParam {
	return configParam{name: "notify-keyspace-events",
		get: func(s *Server) string { return formatNotifyFlags(s.notify.config.Load()) },
		set: func(s *Server, v []byte) error {
			f, ok := parseNotifyFlags(string(v))
			if !ok {
				return errConfigSet("notify-keyspace-events", errNotifyClass)
			}
			s.notify.set(f)
			return nil
		}}
}

// A note is an event a write function noted, published after its batch.
type note struct {
	event string
	key   []byte // the command's argument: valid until its pipeline ends
}

// events is how a write function reads keys and notes its events: its
// connection, and notify-keyspace-events as the function began (0: off,
// and then every method is a branch on a register).
type events struct {
	c  *client
	on uint32
}

func (c *client) events() events { return events{c, c.srv.notify.on.Load()} }

// add notes an event of class.
func (e events) add(class uint32, event string, key []byte) {
	if e.on&class != 0 {
		e.c.notes = append(e.c.notes, note{event, key})
	}
}

// expire is the lazy expiry of a key a command is about to use: when its
// time has passed it is removed, with its expired event, as Redis's
// lookupKeyWrite does. Only with expired events on: otherwise the active
// expiry removes the key, and nobody can tell the difference.
func (e events) expire(tx *storage.Tx, slot uint16, key []byte) {
	if e.on&notifyExpired != 0 && tx.RemoveExpired(slot, key) {
		e.add(notifyExpired, "expired", key)
	}
}

// get is tx.Get after the lazy expiry: how a write function looks up a key
// that Redis's command looks up.
func (e events) get(tx *storage.Tx, slot uint16, key []byte) (storage.Record, bool) {
	e.expire(tx, slot, key)
	return tx.Get(slot, key)
}

// creates reports whether writing key creates it (for the new event),
// looking it up (after the lazy expiry) only when an event depends on it.
func (e events) creates(tx *storage.Tx, slot uint16, key []byte) bool {
	if e.on&(notifyNew|notifyExpired) == 0 {
		return false
	}
	_, exists := e.get(tx, slot, key)
	return !exists
}

// miss notes a keymiss: a command that reads the key (GETDEL, GETEX,
// GETSET, SET GET, COPY's source) found none.
func (e events) miss(key []byte) { e.add(notifyKeyMiss, "keymiss", key) }

// created notes new for a key the function created.
func (e events) created(created bool, key []byte) {
	if created {
		e.add(notifyNew, "new", key)
	}
}

// set notes SET's events: new, set, and expire when it set an expiry (at,
// absolute ms; 0 for none), then expired when that time had passed (the
// key is gone at once, where Redis 7.0 keeps it until an expiry finds
// it: the same events).
func (e events) set(tx *storage.Tx, key []byte, created bool, at int64) {
	e.created(created, key)
	e.add(notifyString, "set", key)
	if at != 0 {
		e.add(notifyGeneric, "expire", key)
		if at <= tx.Now() {
			e.add(notifyExpired, "expired", key)
		}
	}
}

// expired notes the event of expireOrSet: del when the time had passed
// (the key was deleted, as EXPIRE and GETEX do in Redis), else expire.
func (e events) expired(tx *storage.Tx, key []byte, at int64) {
	if at <= tx.Now() {
		e.add(notifyGeneric, "del", key)
	} else {
		e.add(notifyGeneric, "expire", key)
	}
}

// afterWrite is called after a write function of c that added notes from
// mark on: a failed function's go with its writes; otherwise, if it
// wrote something, the connection joins the queue, and the change
// handler publishes its notes with its batch's changes (a function that
// wrote nothing has no change to be told of: its notes wait for the
// connection, see publishNotes).
func (c *client) afterWrite(tx *storage.Tx, mark int) {
	if tx.Err() != nil {
		clear(c.notes[mark:])
		c.notes = c.notes[:mark]
		return
	}
	if !c.notesQueued && len(tx.Mutations()) > 0 {
		c.notesQueued = true
		q := &c.srv.notify.queue
		*q = append(*q, c)
	}
}

// publishNotes publishes the notes left once the connection's batch
// completed (those of functions that changed nothing), from its own
// goroutine.
func (c *client) publishNotes() {
	c.notesQueued = false
	if len(c.notes) == 0 {
		return
	}
	on := c.srv.notify.on.Load()
	for _, n := range c.notes {
		c.notifyBuf = c.srv.publishEvent(on, c.notifyBuf, n.event, n.key)
	}
	clear(c.notes)
	c.notes = c.notes[:0]
}

// keyMissed is a read's miss, with notifications on (on): a key whose
// time has passed is expired at once on the slot's primary (a write of
// its own, as Redis's lookupKeyRead deletes it), then the keymiss.
func (c *client) keyMissed(on uint32, slot uint16, key []byte) {
	s := c.srv
	if on&notifyExpired != 0 && s.primaryHere(slot) && s.store.Expired(slot, key) {
		// The tombstone carries the record's version: replicas, which
		// expire their copies themselves, need not be sent it.
		p := s.store.SubmitFrom(c.id, func(tx *storage.Tx) {
			mark := len(c.notes)
			events{c, on}.expire(tx, slot, key)
			c.afterWrite(tx, mark)
		})
		_ = p.Wait()
		c.publishNotes()
	}
	if on&notifyKeyMiss != 0 {
		c.notifyBuf = s.publishEvent(on, c.notifyBuf, "keymiss", key)
	}
}

// primaryHere reports whether this node fires the events of slot's
// expiries: it is the slot's primary (or runs without a cluster).
func (s *Server) primaryHere(slot uint16) bool {
	if s.repl == nil {
		return true
	}
	_, ok, _, _ := s.repl.Route(slot)
	return ok
}

// notifyChanged is the change handler's part for keyspace notifications
// (called from keysChanged, in the committer).
func (s *Server) notifyChanged(ch storage.Change) {
	n := &s.notify
	on := n.on.Load()
	if on == 0 && len(n.queue) == 0 {
		return
	}
	switch ch.Cause {
	case storage.CauseWrite:
		// A client's batch: publish its notes if it queued them. Writes
		// applied for another node (a replica's, a handoff's) have none.
		i := 0
		for i < len(n.queue) && n.queue[i].id != ch.Origin {
			i++
		}
		if i == len(n.queue) {
			return
		}
		c := n.queue[i]
		// Entries ahead of it had no change to be told of (their
		// functions failed after noting): their connections published
		// what was left themselves.
		k := copy(n.queue, n.queue[i+1:])
		clear(n.queue[k:])
		n.queue = n.queue[:k]
		for _, nt := range c.notes {
			n.buf = s.publishEvent(on, n.buf, nt.event, nt.key)
		}
		clear(c.notes)
		c.notes = c.notes[:0]
		c.notesQueued = false
	case storage.CauseExpired:
		s.publishChanges(on, notifyExpired, "expired", ch.Muts)
	case storage.CauseEvicted:
		s.publishChanges(on, notifyEvicted, "evicted", ch.Muts)
	}
}

// publishChanges publishes event for every key of muts whose slot this
// node is primary of: expiries and evictions.
func (s *Server) publishChanges(on, class uint32, event string, muts []storage.Mutation) {
	if on&class == 0 {
		return
	}
	for i := range muts {
		if m := &muts[i]; s.primaryHere(m.Slot) {
			s.notify.buf = s.publishEvent(on, s.notify.buf, event, m.Key)
		}
	}
}

const (
	keyspacePrefix = "__keyspace@0__:"
	keyeventPrefix = "__keyevent@0__:"
)

// publishEvent delivers one event to this node's subscribers, as K and E
// in on say, building the channel and message in buf, which it returns
// for reuse (deliver keeps neither).
func (s *Server) publishEvent(on uint32, buf []byte, event string, key []byte) []byte {
	if on&notifyKeyspace != 0 {
		buf = append(append(buf[:0], keyspacePrefix...), key...)
		n := len(buf)
		buf = append(buf, event...)
		s.deliver(false, buf[:n], buf[n:])
	}
	if on&notifyKeyevent != 0 {
		buf = append(append(buf[:0], keyeventPrefix...), event...)
		s.deliver(false, buf, key)
	}
	return buf
}
