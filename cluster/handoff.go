package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/ringcache/ringcache/storage"
)

// ApplyBatch applies a replicated batch in a write function: each state is
// stored if it is newer than the stored one. It returns how many were.
func ApplyBatch(tx *storage.Tx, batch []byte) (int, error) {
	applied := 0
	err := DecodeBatch(batch, func(m storage.Mutation) error {
		if tx.Apply(m) {
			applied++
		}
		return tx.Err()
	})
	return applied, err
}

// Digests answers a digest request: this node's digest of each slot.
func (r *Replicator) Digests(request []byte) ([]byte, error) {
	slots, err := decodeSlots(request)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8*len(slots))
	for _, s := range slots {
		out = binary.BigEndian.AppendUint64(out, r.store.SlotDigest(s))
	}
	return out, nil
}

// StreamSlot answers a stream request: every stored state of slot.
func (r *Replicator) StreamSlot(slot uint16) ([]byte, error) {
	var out []byte
	err := r.store.StreamSlot(slot, func(m storage.Mutation) bool {
		out = AppendMutation(out, m)
		return true
	})
	return out, err
}

// InSync reports whether node id, as a replica of this node, holds every
// slot this node is primary of and id replicates. A node this node does
// not (yet) see alive is not in sync: it replicates nothing here, and a
// "yes" would only mean that gossip had not told this node about it.
func (r *Replicator) InSync(id string) bool {
	p := r.c.Placement()
	if !p.Alive(id) {
		return false
	}
	l := r.existingLink(id)
	marked := func() (bool, bool) {
		replicates := false
		for s := range SlotCount {
			slot := uint16(s)
			pm, ok := p.Primary(slot)
			if !ok || pm.ID != r.self {
				continue
			}
			for _, m := range p.Replicas(slot) {
				if m.ID != id {
					continue
				}
				replicates = true
				if l == nil || !l.inSync(slot) || r.takingOver[s].Load() {
					return false, true
				}
			}
		}
		return true, replicates
	}
	ok, replicates := marked()
	if !ok || !replicates {
		return ok
	}
	// The marks hold for the connection they were earned on; a round trip
	// on it proves that the process at the other end is still the one that
	// was synced (a restarted node resets the connection, which clears
	// them), even if no write has crossed it since.
	if _, err := l.do(2*time.Second, []byte("PING")); err != nil {
		return false
	}
	ok, _ = marked()
	return ok
}

// AllInSync reports whether every replica of every slot this node is
// primary of is in sync.
func (r *Replicator) AllInSync() bool {
	p := r.c.Placement()
	for s := range SlotCount {
		slot := uint16(s)
		if pm, ok := p.Primary(slot); !ok || pm.ID != r.self {
			continue
		}
		if r.takingOver[s].Load() || r.inSyncCount(p, slot) < len(p.Replicas(slot)) {
			return false
		}
	}
	return true
}

// askInSync asks the primary pm whether node id is in sync with it.
func (r *Replicator) askInSync(pm Member, id string) bool {
	if pm.ID == r.self {
		return r.InSync(id)
	}
	v, err := r.linkTo(pm).do(2*time.Second, []byte(InSyncCommand), []byte(id))
	return err == nil && v.Int == 1
}

// Join waits until this (joining) node holds every slot it will own or
// replicate, as the primaries of those slots confirm, then makes it
// active.
func (r *Replicator) Join(ctx context.Context) error {
	if r.c.Self().State != StateJoining {
		return nil
	}
	r.log.Info("joining: receiving the slots this node will hold")
	start := time.Now()
	lastLog := time.Now()
	for {
		p := r.c.Placement()
		// Gossip has admitted this node, but the placement may not yet
		// show the others: with nobody else in it every slot looks
		// sourceless, and the node would call itself done.
		known := p.AliveCount() >= r.c.NumMembers() && p.AliveCount() > 1
		sources := map[string]Member{}
		slots := 0
		for s := range SlotCount {
			slot := uint16(s)
			if !p.InTarget(r.self, slot) {
				continue
			}
			slots++
			if pm, ok := p.Primary(slot); ok {
				sources[pm.ID] = pm
			}
		}
		waiting := 0
		for _, pm := range sources {
			if !r.askInSync(pm, r.self) {
				waiting++
			}
		}
		if known && waiting == 0 && slots > 0 {
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			r.log.Info("joining: waiting for primaries to report this node in sync", "waiting_for", waiting, "of", len(sources), "slots", slots, "keys", r.store.Len())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stop:
			return fmt.Errorf("cluster: replication stopped")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := r.announce(ctx, StateActive); err != nil {
		return err
	}
	r.log.Info("joined: this node is active and serves its slots", "took", time.Since(start).Round(time.Millisecond), "keys", r.store.Len())
	return nil
}

// Leave hands this node's slots over: it marks the node leaving, waits
// until the new holder of every slot it holds is in sync with the slot's
// primary (this node, or another), and returns; the caller then leaves
// gossip and exits.
func (r *Replicator) Leave(ctx context.Context) error {
	if err := r.announce(ctx, StateLeaving); err != nil {
		return err
	}
	r.log.Info("leaving: handing slots over")
	start := time.Now()
	if err := r.waitHandedOver(ctx); err != nil {
		return err
	}
	// Stop taking writes for this node's slots, let those in flight finish
	// (committed and replicated, or their replica dropped), and check
	// again: a write acknowledged after the first check could have missed
	// a new owner that fell out of sync meanwhile.
	r.draining.Store(true)
	r.writes.Lock()
	r.writes.Unlock() //nolint:staticcheck // A barrier: see Replicator.writes.
	if err := r.waitHandedOver(ctx); err != nil {
		return err
	}
	r.log.Info("handed slots over", "took", time.Since(start).Round(time.Millisecond))
	// Said before gossip's goodbye, so that the others know the slots are
	// safe elsewhere and drop this node at once instead of waiting out a
	// grace period.
	return r.announce(ctx, StateLeft)
}

// waitHandedOver waits until the new holder of every slot this node holds
// is in sync with the slot's primary (this node, or another).
func (r *Replicator) waitHandedOver(ctx context.Context) error {
	lastLog := time.Now()
	for {
		p := r.c.Placement()
		type pair struct{ primary, node string }
		checks := map[pair]Member{}
		for s := range SlotCount {
			slot := uint16(s)
			if !p.Holds(r.self, slot) {
				continue
			}
			pm, ok := p.Primary(slot)
			if !ok {
				continue
			}
			for _, m := range p.Target(slot) {
				if m.ID != r.self && p.Alive(m.ID) {
					checks[pair{pm.ID, m.ID}] = pm
				}
			}
		}
		waiting := 0
		for pr, pm := range checks {
			if !r.askInSync(pm, pr.node) {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Since(lastLog) > 5*time.Second {
			r.log.Info("leaving: waiting for the new holders to be in sync", "waiting_for", waiting, "of", len(checks))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// announce changes this node's state and waits (a few seconds at most)
// until every other alive node sees it: the others act on it (new
// replicas for a leaving node; dropping a node that left rather than
// waiting out a grace period for it), and gossip alone does not always
// deliver one update promptly.
func (r *Replicator) announce(ctx context.Context, s State) error {
	if err := r.c.SetState(s); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	want := []byte(s.String())
	for {
		p := r.c.Placement()
		pending := 0
		for id, alive := range p.alive {
			if !alive || id == r.self {
				continue
			}
			l := r.linkTo(Member{ID: id, Addr: p.addrs[id]})
			v, err := l.do(time.Second, []byte(StateCommand), []byte(r.self))
			if err != nil || !bytes.Equal(v.Bytes, want) {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.log.Warn("some nodes have not seen this node's new state yet", "state", s, "nodes", pending)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StateOf is the state this node sees for node id ("unknown" if it does
// not see it alive): the answer to StateCommand.
func (r *Replicator) StateOf(id string) string {
	p := r.c.Placement()
	if !p.Alive(id) {
		return "unknown"
	}
	return p.State(id).String()
}

// Info is the INFO replication section's fields.
func (r *Replicator) Info() [][2]string {
	p := r.c.Placement()
	self := r.c.Self()
	type peerInfo struct {
		m             Member
		slots, inSync int
		lastAck       time.Time
		connected     bool
		lastErr       string
	}
	peers := map[string]*peerInfo{}
	primarySlots, takingOver := 0, 0
	inSyncSlots := 0 // slots with every replica in sync
	for s := range SlotCount {
		slot := uint16(s)
		pm, ok := p.Primary(slot)
		if !ok || pm.ID != r.self {
			continue
		}
		primarySlots++
		if r.takingOver[s].Load() {
			takingOver++
		}
		all := true
		for _, m := range p.Replicas(slot) {
			pi := peers[m.ID]
			if pi == nil {
				pi = &peerInfo{m: m}
				peers[m.ID] = pi
			}
			pi.slots++
			if l := r.existingLink(m.ID); l != nil && l.inSync(slot) {
				pi.inSync++
			} else {
				all = false
			}
		}
		if all {
			inSyncSlots++
		}
	}
	inSyncPeers := 0
	out := [][2]string{
		{"role", "master"},
		{"connected_slaves", strconv.Itoa(len(peers))},
	}
	var lines [][2]string
	i := 0
	for id, pi := range peers {
		state := "sync"
		if pi.inSync == pi.slots {
			state = "online"
			inSyncPeers++
		}
		lag := int64(-1)
		if l := r.existingLink(id); l != nil {
			l.mu.Lock()
			if !l.lastAck.IsZero() {
				lag = int64(time.Since(l.lastAck).Seconds())
			}
			l.mu.Unlock()
		}
		ip, port, _ := net.SplitHostPort(pi.m.Addr)
		lines = append(lines, [2]string{"slave" + strconv.Itoa(i), fmt.Sprintf("ip=%s,port=%s,state=%s,offset=0,lag=%d,id=%s,slots=%d,slots_in_sync=%d", ip, port, state, lag, id, pi.slots, pi.inSync)})
		i++
	}
	out = append(out,
		[2]string{"min_slaves_good_slaves", strconv.Itoa(inSyncPeers)},
		[2]string{"ringcache_state", self.State.String()},
		[2]string{"ringcache_replication_factor", strconv.Itoa(r.c.cfg.Replicas)},
		[2]string{"ringcache_min_replicas", strconv.Itoa(r.cfg.MinReplicas)},
		[2]string{"ringcache_primary_slots", strconv.Itoa(primarySlots)},
		[2]string{"ringcache_primary_slots_all_in_sync", strconv.Itoa(inSyncSlots)},
		[2]string{"ringcache_in_sync_replicas", strconv.Itoa(inSyncPeers)},
		[2]string{"ringcache_taking_over_slots", strconv.Itoa(takingOver)},
		[2]string{"ringcache_takeovers", strconv.FormatInt(r.stats.takeovers.Load(), 10)},
		[2]string{"ringcache_repaired_keys", strconv.FormatInt(r.stats.repairedKeys.Load(), 10)},
		[2]string{"ringcache_pushed_slots", strconv.FormatInt(r.stats.pushedSlots.Load(), 10)},
		[2]string{"ringcache_pulled_slots", strconv.FormatInt(r.stats.pulledSlots.Load(), 10)},
		[2]string{"ringcache_replication_timeouts", strconv.FormatInt(r.stats.timeouts.Load(), 10)},
	)
	return append(out, lines...)
}
