package cluster

import (
	"slices"
	"strings"
	"time"
)

// nodeRecord is what this node knows of a node (itself included).
type nodeRecord struct {
	meta      Meta
	alive     bool
	deadSince time.Time
	// wasActive records that the node served (was active) while known
	// here: a dead one keeps its place for the grace period, and one that
	// comes back keeps it while it catches up, so a restart is a catch-up
	// rather than a reshuffle.
	wasActive bool
}

// Placement is who does what for every slot, as this node sees the cluster
// at one moment. It is computed from the node table on each change and
// immutable after, so readers need no lock.
//
// Two rings describe where data is and where it is going:
//   - the serving ring holds the active and leaving nodes, the dead ones
//     still in their grace period, and the ones catching up after a
//     restart: a slot's data is on its serving preference list;
//   - the target ring holds the active and joining nodes (and the dead
//     ones in grace): a slot's data must end up on its target list.
//
// A slot's primary is the first node of its serving list that is alive
// and active or leaving. Its replicas are every other alive node of either
// list, so that while a node joins or leaves both the old and the new
// holders receive every write. With no such primary the slot is down.
type Placement struct {
	Epoch  uint64
	serve  *Ring
	target *Ring
	// roles has, for each slot, the primary first and then the replicas;
	// a range with no nodes has no primary.
	roles *Ring
	alive map[string]bool
	// States and addresses of the alive nodes.
	states map[string]State
	addrs  map[string]string
}

// newPlacement computes the placement of the known nodes.
func newPlacement(nodes []*nodeRecord, vnodes, replicas int, epoch uint64) *Placement {
	var serve, target []Member
	p := &Placement{Epoch: epoch, alive: map[string]bool{}, states: map[string]State{}, addrs: map[string]string{}}
	eligible := map[string]bool{}
	for _, n := range nodes {
		m := Member{ID: n.meta.ID, Addr: n.meta.Addr, Bus: n.meta.Bus}
		st := n.meta.State
		if n.alive {
			p.alive[m.ID] = true
			p.states[m.ID] = st
			p.addrs[m.ID] = m.Addr
			eligible[m.ID] = st == StateActive || st == StateLeaving
		}
		switch {
		case n.alive && (st == StateActive || st == StateLeaving):
			serve = append(serve, m)
		case n.wasActive && st != StateLeft: // dead in grace, or back and catching up
			serve = append(serve, m)
		}
		switch {
		case n.alive && (st == StateActive || st == StateJoining):
			target = append(target, m)
		case !n.alive && n.wasActive && st != StateLeaving && st != StateLeft:
			target = append(target, m)
		}
	}
	p.serve = NewRing(serve, vnodes, replicas)
	p.target = NewRing(target, vnodes, replicas)

	all := append(slices.Clone(serve), target...)
	var scratch []Member
	p.roles = ringFromLists(all, func(slot uint16) []Member {
		scratch = scratch[:0]
		sp, tp := p.serve.Preference(slot), p.target.Preference(slot)
		for _, m := range sp {
			if eligible[m.ID] {
				scratch = append(scratch, m)
				break
			}
		}
		if len(scratch) == 0 {
			return nil
		}
		for _, list := range [][]Member{sp, tp} {
			for _, m := range list {
				if p.alive[m.ID] && !slices.ContainsFunc(scratch, func(x Member) bool { return x.ID == m.ID }) {
					scratch = append(scratch, m)
				}
			}
		}
		return scratch
	})
	return p
}

// Ring is the slot map clients see: each range's primary, then its
// replicas.
func (p *Placement) Ring() *Ring { return p.roles }

// Primary is the node serving slot, and false if the slot has none (every
// node that holds it is down).
func (p *Placement) Primary(slot uint16) (Member, bool) {
	nodes := p.roles.Preference(slot)
	if len(nodes) == 0 {
		return Member{}, false
	}
	return nodes[0], true
}

// Replicas are the alive nodes, other than the primary, that receive the
// writes of slot. The slice is shared and must not be modified.
func (p *Placement) Replicas(slot uint16) []Member {
	nodes := p.roles.Preference(slot)
	if len(nodes) == 0 {
		return nil
	}
	return nodes[1:]
}

// Holds reports whether node id should hold slot's data: it is on the
// slot's serving or target preference list.
func (p *Placement) Holds(id string, slot uint16) bool {
	has := func(list []Member) bool {
		return slices.ContainsFunc(list, func(m Member) bool { return m.ID == id })
	}
	return has(p.serve.Preference(slot)) || has(p.target.Preference(slot))
}

// InTarget reports whether node id is on slot's target preference list.
func (p *Placement) InTarget(id string, slot uint16) bool {
	return slices.ContainsFunc(p.target.Preference(slot), func(m Member) bool { return m.ID == id })
}

// Target is slot's target preference list (shared; do not modify).
func (p *Placement) Target(slot uint16) []Member { return p.target.Preference(slot) }

// AliveCount is the number of alive nodes, this one included.
func (p *Placement) AliveCount() int { return len(p.alive) }

// Alive reports whether gossip sees node id alive.
func (p *Placement) Alive(id string) bool { return p.alive[id] }

// State is the state an alive node gossips.
func (p *Placement) State(id string) State { return p.states[id] }

// fingerprint identifies a placement's inputs, to publish only changes.
func fingerprint(nodes []*nodeRecord) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.meta.ID)
		b.WriteString(n.meta.Addr)
		b.WriteByte(byte('0' + n.meta.State))
		if n.alive {
			b.WriteByte('+')
		}
		if n.wasActive {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}
