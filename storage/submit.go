package storage

import "fmt"

// Pending is a submission: write functions that the committer runs, in
// order, in one batch, and completes together once that batch is applied
// to the in-memory index (with FsyncAlways, once it is also in Badger).
type Pending struct {
	fns []func(tx *Tx)
	// drop, when non-nil, makes this a drop request (FlushAll, DropSlot)
	// instead of a write.
	drop *dropRequest
	// origin and cause are what the change handler is told.
	origin int64
	cause  Cause

	done chan struct{}
	err  error
	muts []Mutation
	// ran is closed once the functions have run (the mutations are final)
	// or the submission completes, whichever is first; ranClosed is
	// touched only by whoever holds the submission (committer or caller).
	ran       chan struct{}
	ranClosed bool
}

// Ran returns a channel that is closed once the submission's functions have
// run, before their batch is applied: from then on Mutations is final, so
// a caller may ship them (to replicas) while the batch completes. It is
// also closed when the submission completes without running.
func (p *Pending) Ran() <-chan struct{} { return p.ran }

func (p *Pending) markRan() {
	if !p.ranClosed {
		p.ranClosed = true
		close(p.ran)
	}
}

// Wait blocks until the batch holding the submission is applied to the
// in-memory index, so that every later read sees it, and returns the first
// failure: the error given to Tx.Fail, a refusal (Badger failing while the
// backlog is full, or with FsyncAlways), or ErrClosed. Badger gets the
// writes later, by a persist cycle; with FsyncAlways, Wait returns only
// once one has written them, and fails only if Close gave up on them.
func (p *Pending) Wait() error {
	<-p.done
	return p.err
}

// Done returns a channel that is closed when the submission completes, for
// callers that select on it; Wait then returns at once.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Mutations returns, after Wait, every mutation the submission's functions
// made, in order (the writes of a failed function are not included). The
// slice and its contents must not be modified.
func (p *Pending) Mutations() []Mutation { return p.muts }

// complete finishes a submission.
func (p *Pending) complete(err error) {
	if p.err == nil {
		p.err = err
	}
	p.markRan()
	close(p.done)
}

// Submit queues write functions for the committer, which runs them in order,
// in the committer goroutine, within one batch, and completes the returned
// Pending once the batch is applied to the in-memory index (see
// Pending.Wait). fns (the slice) must not be modified until then. A
// function must not call the store's Submit, Do, Flush, FlushAll, DropSlot
// or Close (the committer would wait for itself); it may read through Get
// or View, but should read through its Tx, which also sees the writes of
// its batch so far. Submit blocks only when the committer's queue is full
// (as it gets while Badger trails by more than Options.MaxUnpersisted).
// After Close, the Pending fails with ErrClosed.
func (s *Store) Submit(fns ...func(tx *Tx)) *Pending {
	return s.submit(&Pending{fns: fns, done: make(chan struct{}), ran: make(chan struct{})})
}

func (s *Store) submit(p *Pending) *Pending {
	if !s.gate.enter() {
		p.complete(ErrClosed)
		return p
	}
	s.submitCh <- p
	s.gate.exit()
	return p
}

// Do runs fn in the committer and waits for its batch, as Submit and
// Pending.Wait do.
func (s *Store) Do(fn func(tx *Tx)) error { return s.Submit(fn).Wait() }

// dropRequest asks the committer to drop whole key ranges.
type dropRequest struct {
	prefixes [][]byte
	slot     int // the slot dropped, or -1 for all
}

// FlushAll drops every key of every slot, and what is scheduled to expire,
// and resets the counts. It runs in the committer, between batches, so no
// write races it; writes submitted after it see an empty store.
func (s *Store) FlushAll() error {
	return s.submit(&Pending{drop: &dropRequest{prefixes: allSlotPrefixes(), slot: -1}, done: make(chan struct{}), ran: make(chan struct{})}).Wait()
}

// DropSlot drops every key of one slot and resets its count, like FlushAll.
// The slot's keys stay in the expiry queue; the expiry loop discards them
// when they come due and find no record.
func (s *Store) DropSlot(slot uint16) error {
	if slot >= SlotCount {
		return fmt.Errorf("storage: slot %d out of range", slot)
	}
	p := slotPrefix(slot)
	return s.submit(&Pending{drop: &dropRequest{prefixes: [][]byte{p[:]}, slot: int(slot)}, done: make(chan struct{}), ran: make(chan struct{})}).Wait()
}
