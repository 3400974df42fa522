package storage

// Cause says why keys changed, for the change handler.
type Cause uint8

const (
	// CauseWrite is a write submitted to the store: a client's, one
	// applied as a replica, a handoff's.
	CauseWrite Cause = iota
	// CauseExpired is the active expiry removing keys whose time came.
	CauseExpired
	// CauseEvicted is an eviction under the memory policy.
	CauseEvicted
	// CauseFlushed is a FlushAll (muts is nil: every key) or a DropSlot
	// (muts is nil, slot is the slot's).
	CauseFlushed
)

// A Change is what the change handler is told after a batch: the keys a
// submission (or the batch's evictions, or an expiry step) changed, with
// the origin its submitter gave (SubmitFrom), or a whole range dropped.
type Change struct {
	Cause  Cause
	Origin int64
	Muts   []Mutation
	// Slot is the slot a DropSlot dropped, -1 for a FlushAll.
	Slot int
}

// SetChangeHandler sets the function told of every change to the
// keyspace, in the committer, after the batch is in the index and before
// its submissions complete: whoever is told of a change (a client caching
// the key) is told before the write that made it is acknowledged. The
// handler must be quick and must not call back into the store's write
// path; it must not keep muts (or their keys) past its return. nil turns
// it off; with none set the committer skips the calls.
func (s *Store) SetChangeHandler(fn func(ch Change)) {
	if fn == nil {
		s.onChange.Store(nil)
		return
	}
	s.onChange.Store(&fn)
}

// SubmitFrom is Submit with an origin, which the change handler is told
// with the submission's changes (the client that wrote, say).
func (s *Store) SubmitFrom(origin int64, fns ...func(tx *Tx)) *Pending {
	return s.submit(&Pending{fns: fns, origin: origin, done: make(chan struct{}), ran: make(chan struct{})})
}

// changed tells the change handler of a batch's changes.
func (c *committer) changed(b *batch) {
	h := c.s.onChange.Load()
	if h == nil {
		return
	}
	if b.evicted && len(c.evictions.muts) > 0 {
		(*h)(Change{Cause: CauseEvicted, Muts: c.evictions.muts})
	}
	for _, p := range b.pendings {
		if len(p.muts) > 0 {
			(*h)(Change{Cause: p.cause, Origin: p.origin, Muts: p.muts})
		}
	}
}

// dropped tells the change handler of a FlushAll or DropSlot.
func (c *committer) dropped(slot int) {
	if h := c.s.onChange.Load(); h != nil {
		(*h)(Change{Cause: CauseFlushed, Slot: slot})
	}
}
