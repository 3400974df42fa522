package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// ErrNoReplicas is Redis's refusal when too few replicas are in sync.
var ErrNoReplicas = resp.Error("NOREPLICAS Not enough good replicas to write.")

// errDraining answers writes on a node that has handed its slots over and
// is about to leave.
var errDraining = resp.Error("TRYAGAIN This node is leaving; its slots are moving to other nodes")

// ReplConfig configures replication, repair and handoff.
type ReplConfig struct {
	// MinReplicas is Redis's min-replicas-to-write: a primary with fewer
	// in-sync replicas for a slot refuses writes to it.
	MinReplicas int
	// Timeout is how long a primary waits for a replica's ack before the
	// replica leaves the in-sync set (and the write is acknowledged
	// without it).
	Timeout time.Duration
	// SyncRate bounds catch-up and handoff streaming, in bytes a second
	// (0: unlimited).
	SyncRate int64
	// AntiEntropyInterval is the period of the background comparison of
	// slot digests with in-sync replicas.
	AntiEntropyInterval time.Duration
	// DropDelay is how long the placement must stay unchanged before a
	// node drops the slots it no longer holds.
	DropDelay time.Duration
}

// DefaultReplConfig returns the defaults.
func DefaultReplConfig() ReplConfig {
	return ReplConfig{
		Timeout:             time.Second,
		SyncRate:            64 << 20,
		AntiEntropyInterval: 30 * time.Second,
		DropDelay:           10 * time.Second,
	}
}

// Replicator runs this node's side of replication: it ships every write to
// the in-sync replicas of its slot and waits for them, keeps replicas in
// sync (repair), merges a slot's copies before serving it after a
// failover (takeover), and moves this node through joining and leaving.
type Replicator struct {
	c     *Cluster
	store *storage.Store
	cfg   ReplConfig
	log   *slog.Logger
	self  string
	key   string

	mu    sync.Mutex
	links map[string]*link
	// forwardLinks carry commands forwarded for clients (forward.go).
	forwardLinks map[string]*link

	// takingOver marks slots this node has just become primary of and is
	// still merging from the other holders: they answer TRYAGAIN.
	takingOver [SlotCount]atomic.Bool
	// takeoverGen counts the takeovers of each slot, so that a takeover
	// overtaken by a newer one (the slot lost and gained again) leaves the
	// flag to the newer one.
	takeoverGen [SlotCount]atomic.Uint32
	// primaryOf marks the slots this node is primary of, as of the last
	// placement the watcher saw.
	primaryOf [SlotCount]atomic.Bool

	// writes is held shared by every write from before it loads the
	// placement until its replicas answered (or were dropped); a repair
	// takes it exclusively for an instant before reading digests, so that
	// every write that chose its replicas by an older placement is
	// committed (and in the digests) by then: a write either reaches the
	// new replica or is in what the repair compares and ships. A leaving
	// node takes it once it stops taking writes, to let the last ones
	// finish.
	writes sync.RWMutex
	// draining is set by Leave once the slots are handed over: writes to
	// this node's slots get TRYAGAIN until the others see it gone.
	draining atomic.Bool

	kickCh    chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// feeders counts, for each node, the primaries whose slots it holds a
	// copy of: when it is over its memory limit, each of them evicts its
	// share.
	feeders atomic.Pointer[map[string]int]

	stats struct {
		repairedKeys, pushedSlots, pulledSlots, takeovers atomic.Int64
		timeouts                                          atomic.Int64
	}
}

// NewReplicator starts replication for the node of c, storing in store.
func NewReplicator(c *Cluster, store *storage.Store, cfg ReplConfig) *Replicator {
	def := DefaultReplConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.AntiEntropyInterval <= 0 {
		cfg.AntiEntropyInterval = def.AntiEntropyInterval
	}
	if cfg.DropDelay <= 0 {
		cfg.DropDelay = def.DropDelay
	}
	r := &Replicator{
		c:            c,
		store:        store,
		cfg:          cfg,
		log:          c.log.With("component", "replication"),
		self:         c.cfg.NodeID,
		key:          c.cfg.SecretKey,
		links:        map[string]*link{},
		forwardLinks: map[string]*link{},
		kickCh:       make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	store.SetEvictionHandler(r.shipEvictions)
	r.watch(c.Placement()) // Slots owned from the start need no takeover.
	sub := c.Subscribe()
	r.wg.Add(2)
	go r.watcher(sub)
	go r.repairLoop()
	return r
}

// Close stops replication: links close, loops exit.
func (r *Replicator) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		close(r.stop)
		// Closed first, so that a repair waiting on a peer returns at once.
		for _, l := range r.links {
			l.close()
		}
		for _, l := range r.forwardLinks {
			l.close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
}

// Key is the cluster key peers prove they know.
func (r *Replicator) Key() string { return r.key }

func (r *Replicator) readTimeout() time.Duration { return max(30*time.Second, 10*r.cfg.Timeout) }

func (r *Replicator) kick() {
	select {
	case r.kickCh <- struct{}{}:
	default:
	}
}

// linkTo returns the link to a member, creating it (or replacing it when
// the member's address changed).
func (r *Replicator) linkTo(m Member) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.links[m.ID]
	if l != nil && l.addr == m.Addr {
		return l
	}
	if l != nil {
		l.close()
	}
	l = newLink(r, m.ID, m.Addr)
	select {
	case <-r.stop:
		l.close() // Closed: its calls fail at once, and nothing is left running.
		return l
	default:
	}
	r.links[m.ID] = l
	return l
}

// existingLink returns the link to id, if there is one.
func (r *Replicator) existingLink(id string) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.links[id]
}

// Route says how this node answers for slot: ok when it is the primary and
// ready; otherwise the primary to redirect to, tryAgain while it takes the
// slot over, and down when nobody serves it.
func (r *Replicator) Route(slot uint16) (primary Member, ok, tryAgain, down bool) {
	p := r.c.Placement()
	pm, has := p.Primary(slot)
	switch {
	case !has:
		return Member{}, false, false, true
	case pm.ID != r.self:
		return pm, false, false, false
	case !r.primaryOf[slot].Load() || r.takingOver[slot].Load():
		// Primary by the placement, but the watcher has not taken the
		// slot over yet, or is merging it.
		return pm, false, true, false
	}
	return pm, true, false, false
}

// HoldsSlot reports whether this node holds a copy of slot (for replica
// reads after READONLY).
func (r *Replicator) HoldsSlot(slot uint16) bool {
	p := r.c.Placement()
	return p.Holds(r.self, slot) && p.State(r.self) != StateJoining
}

// CheckWrite refuses a write to slot when fewer than MinReplicas replicas
// are in sync.
func (r *Replicator) CheckWrite(slot uint16) error {
	if r.draining.Load() {
		return errDraining
	}
	if r.cfg.MinReplicas <= 0 {
		return nil
	}
	if r.inSyncCount(r.c.Placement(), slot) < r.cfg.MinReplicas {
		return ErrNoReplicas
	}
	return nil
}

func (r *Replicator) inSyncCount(p *Placement, slot uint16) int {
	n := 0
	for _, m := range p.Replicas(slot) {
		if l := r.existingLink(m.ID); l != nil && l.inSync(slot) {
			n++
		}
	}
	return n
}

// BeginWrite marks the start of a write (before it is submitted); EndWrite
// its end, once its replicas answered. See Replicator.writes. On a node
// that has handed its slots over and is leaving it refuses (TRYAGAIN), and
// then EndWrite must not be called.
func (r *Replicator) BeginWrite() error {
	r.writes.RLock()
	if r.draining.Load() {
		r.writes.RUnlock()
		return errDraining
	}
	return nil
}

// EndWrite ends what BeginWrite started.
func (r *Replicator) EndWrite() { r.writes.RUnlock() }

// Alone reports whether this node is the only member of the placement, so
// that a write has no replica to ship to (Send would ship nothing). Called
// between BeginWrite and EndWrite, it is as safe as Send's own reading of
// the placement: a repair for a node that joins after it waits for the
// write to end.
func (r *Replicator) Alone() bool {
	ring := r.c.Placement().Ring()
	return ring.Len() == 1 && ring.members[0].ID == r.self
}

// Shipment is mutations on their way to replicas.
type Shipment struct {
	r       *Replicator
	p       *Placement
	muts    []storage.Mutation
	targets []shipTarget
}

type shipTarget struct {
	l     *link
	c     *call
	batch []byte // the replica's mutations, until sent
	wait  bool   // the replica is in sync for one of the slots: its ack counts
}

// Send ships mutations to every alive replica of their slots, as one
// batch per replica (merged with other writers' batches on the way), and
// returns at once. The mutations need not be committed locally yet: a
// primary ships while its own commit proceeds.
func (r *Replicator) Send(muts []storage.Mutation) *Shipment {
	sh := &Shipment{r: r, p: r.c.Placement(), muts: muts}
	for _, m := range muts {
		// Normally this node is the slot's primary and ships to its
		// replicas. If the placement moved on since the command was
		// routed here, the write goes to every holder, the new primary
		// included, and waits for them all: it was acknowledged by the
		// old owner, so the new one must have it.
		nodes := sh.p.Ring().Preference(m.Slot)
		demoted := len(nodes) == 0 || nodes[0].ID != r.self
		for _, rm := range nodes {
			if rm.ID == r.self {
				continue
			}
			i := slices.IndexFunc(sh.targets, func(t shipTarget) bool { return t.l.id == rm.ID })
			if i < 0 {
				sh.targets = append(sh.targets, shipTarget{l: r.linkTo(rm)})
				i = len(sh.targets) - 1
			}
			t := &sh.targets[i]
			t.batch = AppendMutation(t.batch, m)
			if !t.wait && (demoted || t.l.inSync(m.Slot)) {
				t.wait = true
			}
		}
	}
	for i := range sh.targets {
		t := &sh.targets[i]
		t.c = t.l.send(&call{batch: t.batch, outOfSync: t.l})
		t.batch = nil
	}
	return sh
}

// Wait waits (up to the timeout) for the replicas that were in sync; one
// that fails or is late leaves the in-sync set. It returns the number of
// replicas that acknowledged every mutation of its slot (the least over
// the slots), and ErrNoReplicas when that is below MinReplicas.
func (sh *Shipment) Wait() (int, error) {
	r := sh.r
	acked := map[string]bool{}
	deadline := time.Now().Add(r.cfg.Timeout)
	for _, t := range sh.targets {
		if !t.wait {
			continue
		}
		if _, err := t.c.wait(max(time.Until(deadline), 0)); err != nil {
			r.stats.timeouts.Add(1)
			t.l.dropSync(fmt.Sprintf("replication failed: %v", err))
			continue
		}
		acked[t.l.id] = true
	}
	least := -1
	for _, m := range sh.muts {
		n := 0
		for _, rm := range sh.p.Ring().Preference(m.Slot) {
			if rm.ID != r.self && acked[rm.ID] {
				n++
			}
		}
		if least < 0 || n < least {
			least = n
		}
	}
	least = max(least, 0)
	if r.cfg.MinReplicas > 0 && least < r.cfg.MinReplicas {
		return least, ErrNoReplicas
	}
	return least, nil
}

// shipEvictions replicates the store's evictions as deletions, so that
// every copy of a slot holds the same keys. It runs on the committer, so
// it only queues them; a replica that fails them leaves the in-sync set.
func (r *Replicator) shipEvictions(muts []storage.Mutation) {
	select {
	case <-r.stop:
		return
	default:
	}
	sh := r.Send(muts)
	go sh.Wait()
}

// countFeeders recounts feeders for a placement.
func (r *Replicator) countFeeders(p *Placement) {
	sets := map[string]map[string]bool{}
	for s := range SlotCount {
		pm, ok := p.Primary(uint16(s))
		if !ok {
			continue
		}
		for _, m := range p.Replicas(uint16(s)) {
			if sets[m.ID] == nil {
				sets[m.ID] = map[string]bool{}
			}
			sets[m.ID][pm.ID] = true
		}
	}
	counts := make(map[string]int, len(sets))
	for id, set := range sets {
		counts[id] = len(set)
	}
	r.feeders.Store(&counts)
	r.updateEvictionDemand()
}

// updateEvictionDemand asks the store to free, beyond its own limit, the
// largest share any replica of this node's slots needs freed: the
// replica's excess divided among the primaries it holds copies for.
func (r *Replicator) updateEvictionDemand() {
	feeders := r.feeders.Load()
	var demand int64
	r.mu.Lock()
	for id, l := range r.links {
		if ex := l.excess.Load(); ex > 0 {
			n := 1
			if feeders != nil {
				n = max((*feeders)[id], 1)
			}
			demand = max(demand, ex/int64(n))
		}
	}
	r.mu.Unlock()
	r.store.SetEvictionDemand(demand)
}

// ReplicaOverLimit reports whether a replica of slot said it is over its
// memory limit: with noeviction a primary then refuses writes that may
// grow memory, as it would if it were over itself.
func (r *Replicator) ReplicaOverLimit(slot uint16) bool {
	for _, m := range r.c.Placement().Replicas(slot) {
		if l := r.existingLink(m.ID); l != nil && l.excess.Load() > 0 {
			return true
		}
	}
	return false
}

// watcher reacts to placement changes: it forgets sync marks of peers
// that stopped replicating a slot, and takes over the slots this node has
// become primary of.
func (r *Replicator) watcher(sub <-chan struct{}) {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-sub:
			r.watch(r.c.Placement())
			r.kick()
		}
	}
}

func (r *Replicator) watch(p *Placement) {
	var gained []uint16
	// Slots owned from the start (the first placement) need no takeover.
	takeOver := p.Epoch > 1
	for s := range SlotCount {
		slot := uint16(s)
		pm, ok := p.Primary(slot)
		isPrimary := ok && pm.ID == r.self
		if isPrimary && !r.primaryOf[s].Load() {
			gained = append(gained, slot)
			// Marked before primaryOf, so that Route never sees the slot
			// as ready in between.
			r.takeoverGen[s].Add(1)
			r.takingOver[s].Store(takeOver)
		}
		r.primaryOf[s].Store(isPrimary)
		// Only a slot's primary evicts, so that its copies hold the same keys.
		r.store.SetEvictable(slot, isPrimary)
		r.store.SetReplicated(slot, len(p.Ring().Preference(slot)) > 1)
	}
	r.countFeeders(p)
	r.mu.Lock()
	links := make([]*link, 0, len(r.links))
	for id, l := range r.links {
		if !p.Alive(id) {
			// Gone (dead or left): a new link is made if it comes back.
			l.close()
			delete(r.links, id)
			continue
		}
		links = append(links, l)
	}
	for id, l := range r.forwardLinks {
		if !p.Alive(id) {
			l.close()
			delete(r.forwardLinks, id)
		}
	}
	r.mu.Unlock()
	for _, l := range links {
		l.forget(func(slot uint16) bool {
			return r.primaryOf[slot].Load() && slices.ContainsFunc(p.Replicas(slot), func(m Member) bool { return m.ID == l.id })
		})
	}
	if len(gained) == 0 || !takeOver {
		return
	}
	r.stats.takeovers.Add(1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.takeOver(p, gained)
	}()
}

// takeOver makes sure this node holds every acknowledged write of slots
// it has just become primary of, by merging in what every other holder of
// them has, then lets the slots serve.
func (r *Replicator) takeOver(p *Placement, slots []uint16) {
	start := time.Now()
	bySource := map[string][]uint16{}
	members := map[string]Member{}
	for _, s := range slots {
		for _, m := range p.Replicas(s) {
			bySource[m.ID] = append(bySource[m.ID], s)
			members[m.ID] = m
		}
	}
	gens := make([]uint32, len(slots))
	for i, s := range slots {
		gens[i] = r.takeoverGen[s].Load()
	}
	var wg sync.WaitGroup
	for id, ss := range bySource {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.mergeFrom(members[id], ss, start)
		}()
	}
	wg.Wait()
	for i, s := range slots {
		if r.takeoverGen[s].Load() == gens[i] {
			r.takingOver[s].Store(false)
		}
	}
	r.log.Info("took slots over", "slots", len(slots), "sources", len(bySource), "took", time.Since(start).Round(time.Millisecond))
}

// takeoverPatience bounds how long a takeover keeps retrying a holder that
// gossip says is alive but that does not answer.
const takeoverPatience = 30 * time.Second

// mergeFrom pulls a holder's differing slots, retrying until it succeeds,
// the holder is gone, or takeoverPatience has passed since start: serving
// a slot before the merge could answer with an older value than one
// acknowledged.
func (r *Replicator) mergeFrom(m Member, slots []uint16, start time.Time) {
	for {
		_, err := r.pullDiffering(r.linkTo(m), slots, 5*time.Second)
		if err == nil {
			return
		}
		switch {
		case !r.c.Placement().Alive(m.ID):
			r.log.Warn("takeover: a holder left before it could be merged", "peer", m.ID[:8], "slots", len(slots), "err", err)
			return
		case time.Since(start) > takeoverPatience:
			r.log.Error("takeover: serving without a holder's copy; repairs will merge it later", "peer", m.ID[:8], "slots", len(slots), "err", err)
			return
		}
		select {
		case <-r.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// differing asks a peer for the digests of slots and returns the slots
// whose digest differs from this node's, and the link's connection
// generation the answer came on. With quiet, slots written here while the
// question was out are left out: under writes a slot's copies differ by
// the writes in flight, which is not divergence.
func (r *Replicator) differing(l *link, slots []uint16, timeout time.Duration, quiet bool) ([]uint16, [2]uint64, error) {
	l.mu.Lock()
	gen, drops := l.gen, l.drops
	l.mu.Unlock()
	var before []uint64
	if quiet {
		before = make([]uint64, len(slots))
		for i, s := range slots {
			before[i] = r.store.SlotDigest(s)
		}
	}
	v, err := l.do(timeout, []byte(DigestCommand), appendSlots(nil, slots))
	if err != nil {
		return nil, [2]uint64{}, err
	}
	theirs, err := decodeDigests(v.Bytes, len(slots))
	if err != nil {
		return nil, [2]uint64{}, err
	}
	var diff []uint16
	for i, s := range slots {
		mine := r.store.SlotDigest(s)
		if mine != theirs[i] && (!quiet || mine == before[i]) {
			diff = append(diff, s)
		}
	}
	return diff, [2]uint64{gen, drops}, nil
}

// pullDiffering merges into this node the peer's copy of every slot whose
// digest differs, and returns how many keys it applied.
func (r *Replicator) pullDiffering(l *link, slots []uint16, timeout time.Duration) (int, error) {
	diff, _, err := r.differing(l, slots, timeout, false)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, s := range diff {
		n, err := r.pull(l, s, timeout)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// pull merges a peer's copy of slot into this node.
func (r *Replicator) pull(l *link, slot uint16, timeout time.Duration) (int, error) {
	v, err := l.do(timeout, []byte(StreamCommand), []byte(strconv.Itoa(int(slot))))
	if err != nil {
		return 0, err
	}
	r.stats.pulledSlots.Add(1)
	r.throttle(len(v.Bytes))
	applied := 0
	var applyErr error
	err = r.store.Do(func(tx *storage.Tx) {
		applied, applyErr = ApplyBatch(tx, v.Bytes)
	})
	return applied, errors.Join(err, applyErr)
}

// push sends this node's copy of slot to a peer, in chunks, and waits
// for them; it returns how many keys the peer applied.
func (r *Replicator) push(l *link, slot uint16) (int, error) {
	r.stats.pushedSlots.Add(1)
	var calls []*call
	var chunk []byte
	flush := func() {
		if len(chunk) > 0 {
			r.throttle(len(chunk))
			calls = append(calls, l.send(&call{batch: chunk}))
			chunk = nil
		}
	}
	err := r.store.StreamSlot(slot, func(m storage.Mutation) bool {
		chunk = AppendMutation(chunk, m)
		if len(chunk) >= 1<<20 {
			flush()
		}
		return true
	})
	flush()
	applied := 0
	for _, c := range calls {
		v, werr := c.wait(r.readTimeout())
		if werr != nil {
			err = errors.Join(err, werr)
			continue
		}
		n, _ := ParseApplyReply(v)
		applied += int(n)
	}
	return applied, err
}

// throttle sleeps as long as n bytes take at SyncRate.
func (r *Replicator) throttle(n int) {
	if r.cfg.SyncRate <= 0 || n <= 0 {
		return
	}
	d := time.Duration(float64(n) / float64(r.cfg.SyncRate) * float64(time.Second))
	if d > time.Millisecond {
		select {
		case <-time.After(d):
		case <-r.stop:
		}
	}
}

// repairLoop keeps the replicas of this node's slots in sync: a replica
// that is out of sync for some slots gets their differing copies pushed
// (and merged back), then a barrier; every AntiEntropyInterval in-sync
// replicas are compared too. It also drops the slots this node no longer
// holds.
func (r *Replicator) repairLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastAE, lastPing := time.Now(), time.Now()
	lastChange, lastEpoch := time.Now(), uint64(0)
	running := map[string]bool{}
	var mu sync.Mutex
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		case <-r.kickCh:
		}
		p := r.c.Placement()
		if p.Epoch != lastEpoch {
			lastEpoch, lastChange = p.Epoch, time.Now()
		}
		antiEntropy := time.Since(lastAE) >= r.cfg.AntiEntropyInterval
		if antiEntropy {
			lastAE = time.Now()
		}
		if time.Since(lastPing) >= time.Second {
			// A heartbeat on every link, as Redis replicas ack every
			// second: it keeps INFO's lag meaningful, and finds a
			// connection to a restarted peer broken without waiting for a
			// write.
			lastPing = time.Now()
			r.mu.Lock()
			for _, l := range r.links {
				l.send(&call{args: [][]byte{[]byte("PING")}})
			}
			r.mu.Unlock()
		}
		// The slots each replica should hold of this node's primaries.
		need := map[string][]uint16{}
		all := map[string][]uint16{}
		members := map[string]Member{}
		for s := range SlotCount {
			slot := uint16(s)
			if !r.primaryOf[s].Load() || r.takingOver[s].Load() {
				continue
			}
			for _, m := range p.Replicas(slot) {
				members[m.ID] = m
				all[m.ID] = append(all[m.ID], slot)
				if l := r.existingLink(m.ID); l == nil || !l.inSync(slot) {
					need[m.ID] = append(need[m.ID], slot)
				}
			}
		}
		for id, m := range members {
			slots := need[id]
			ae := false
			if len(slots) == 0 && antiEntropy {
				slots, ae = all[id], true
			}
			mu.Lock()
			busy := running[id]
			if len(slots) > 0 && !busy {
				running[id] = true
			}
			mu.Unlock()
			if len(slots) == 0 || busy {
				continue
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.repair(r.linkTo(m), slots, ae)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
			}()
		}
		if time.Since(lastChange) >= r.cfg.DropDelay {
			r.dropUnheld(p)
		}
	}
}

// repair brings a replica's copy of slots up to date.
func (r *Replicator) repair(l *link, slots []uint16, antiEntropy bool) {
	start := time.Now()
	if !antiEntropy {
		r.writes.Lock()
		r.writes.Unlock() //nolint:staticcheck // A barrier: see Replicator.writes.
	}
	diff, gen, err := r.differing(l, slots, r.readTimeout(), antiEntropy)
	if err != nil {
		r.log.Debug("repair: digests unavailable", "peer", l.id[:8], "err", err)
		return
	}
	if len(diff) > 0 && !antiEntropy {
		r.log.Info("syncing replica", "peer", l.id[:8], "addr", l.addr, "slots", len(slots), "differing", len(diff))
	}
	repaired := 0
	for i, s := range diff {
		select {
		case <-r.stop:
			return
		default:
		}
		n, err := r.push(l, s)
		if err == nil {
			var m int
			m, err = r.pull(l, s, r.readTimeout())
			n += m
		}
		if err != nil {
			r.log.Warn("repair failed", "peer", l.id[:8], "slot", s, "err", err)
			return
		}
		repaired += n
		if (i+1)%1000 == 0 {
			r.log.Info("syncing replica: progress", "peer", l.id[:8], "slots_done", i+1, "of", len(diff))
		}
	}
	if antiEntropy {
		if repaired > 0 {
			r.stats.repairedKeys.Add(int64(repaired))
			r.log.Warn("anti-entropy repaired divergent keys", "peer", l.id[:8], "keys", repaired, "slots", len(diff))
		}
		return
	}
	// Everything this node held when the digests were taken is now on the
	// peer, and every write since went to it too (it is a replica): once
	// the link delivers a barrier, on the same connection, the peer is in
	// sync.
	if _, err := l.do(r.readTimeout(), []byte("PING")); err != nil {
		return
	}
	if l.markSynced(slots, gen[0], gen[1]) {
		r.stats.repairedKeys.Add(int64(repaired))
		r.log.Info("replica in sync", "peer", l.id[:8], "addr", l.addr, "slots", len(slots), "streamed", len(diff), "keys", repaired, "took", time.Since(start).Round(time.Millisecond))
	}
}

// dropUnheld drops the data of slots this node no longer holds (after a
// join moved them away, or a grace period ended).
func (r *Replicator) dropUnheld(p *Placement) {
	if p.State(r.self) != StateActive {
		return
	}
	dropped := 0
	for s := range SlotCount {
		slot := uint16(s)
		if r.store.CountSlot(slot) == 0 && r.store.SlotDigest(slot) == 0 {
			continue
		}
		if _, ok := p.Primary(slot); !ok || p.Holds(r.self, slot) {
			continue
		}
		if err := r.store.DropSlot(slot); err != nil {
			r.log.Error("drop slot", "slot", slot, "err", err)
			return
		}
		dropped++
	}
	if dropped > 0 {
		r.log.Info("dropped slots this node no longer holds", "slots", dropped)
	}
}
