package cluster

// Static is the topology of a node that runs without gossip: a cluster of
// one that owns every slot. Tests of a single node and tools use it.
type Static struct {
	self Meta
	ring *Ring
}

// NewStatic returns a one-node topology for the node id serving at addr,
// with bus as its (nominal) cluster bus port.
func NewStatic(id, addr string, bus int) *Static {
	return &Static{
		self: Meta{ID: id, Addr: addr, Bus: bus, State: StateActive},
		ring: NewRing([]Member{{ID: id, Addr: addr, Bus: bus}}, DefaultVNodes, 1),
	}
}

// Ring is the one-node ring.
func (s *Static) Ring() *Ring { return s.ring }

// Self is the node's metadata.
func (s *Static) Self() Meta { return s.self }

// Epoch is always 1: the ring never changes.
func (s *Static) Epoch() uint64 { return 1 }

// Members is the node itself.
func (s *Static) Members() []Meta { return []Meta{s.self} }
