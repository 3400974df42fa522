// Package arena allocates the keyspace's memory outside the Go heap, so
// that the collector neither scans it nor lets it double between
// collections, and so that what the keyspace holds is counted to the byte.
//
// Memory comes from the operating system in regions of 2 MiB, cut into
// spans of 64 KiB; each span serves one size class (8-byte steps up to
// 128 bytes, then eight classes per doubling up to 32 KiB, so a block
// wastes at most 1/8 of itself). A span whose blocks are all free gives its
// pages back (madvise) and is reused by any class; a region whose spans
// are all free is unmapped. Blocks above 32 KiB get a mapping of their own.
//
// A block is named by a Ref, a 42-bit number (span index, offset in the
// span) that the keyspace's tables store instead of a pointer: the
// collector never sees it, and Bytes turns it back into memory.
//
// An Arena is written by one goroutine (the store's committer). Bytes may
// be called from any goroutine, for blocks the caller knows to be live;
// the keyspace guarantees that with its shard locks.
package arena

import (
	"fmt"
	"sync/atomic"
)

const (
	// SpanSize is the size of a span, and the granularity of the memory the
	// arena takes from and gives back to the operating system.
	SpanSize = 64 << 10
	// MaxClass is the largest block size served from spans.
	MaxClass = 32 << 10
	// spansPerRegion spans are mapped at once, so that a large keyspace
	// needs few mappings (Linux allows 65530 per process by default).
	spansPerRegion = 32
	regionSize     = spansPerRegion * SpanSize
	// Align is the alignment of every block: a block may start with 8-byte
	// words that are read atomically.
	Align = 8

	offsetBits = 16 // within a span: SpanSize = 1 << offsetBits
	// RefBits is the number of low bits of a Ref that are used: 26 bits of
	// span index (64M spans, 4 TiB) and the offset within the span in
	// 8-byte units (13 bits), plus 3 spare.
	RefBits = 42
)

// Ref names a block: its span's index and its offset in the span. The zero
// Ref is never a block.
type Ref uint64

func makeRef(span int, off int) Ref { return Ref(uint64(span)<<offsetBits | uint64(off)) }
func (r Ref) span() int             { return int(r >> offsetBits) }
func (r Ref) offset() int           { return int(r & (SpanSize - 1)) }

// Pack returns r in PackedBits bits (offsets are 8-byte aligned), for
// tables that keep other bits beside it.
func (r Ref) Pack() uint64 { return uint64(r>>offsetBits)<<(offsetBits-3) | uint64(r&(SpanSize-1))>>3 }

// Unpack is the Ref that Pack turned into p.
func Unpack(p uint64) Ref {
	return Ref(p>>(offsetBits-3))<<offsetBits | Ref(p&(1<<(offsetBits-3)-1))<<3
}

func (r Ref) String() string { return fmt.Sprintf("%d+%d", r.span(), r.offset()) }

// PackedBits is the width of a packed Ref.
const PackedBits = RefBits - 3

// classes are the block sizes spans serve.
var classes = func() []int {
	var cs []int
	for n := 8; n <= 128; n += 8 {
		cs = append(cs, n)
	}
	for base := 128; base < MaxClass; base *= 2 {
		for i := 1; i <= 8; i++ {
			cs = append(cs, base+base*i/8)
		}
	}
	return cs
}()

// classOf maps (size+7)/8 to the class index, for sizes up to 1 KiB; above
// that a search over the few larger classes is cheap enough.
var classOf = func() []uint8 {
	t := make([]uint8, 1024/8+1)
	c := 0
	for i := range t {
		for classes[c] < i*8 {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

// sizeClass returns the class index for a block of n bytes (n <= MaxClass).
func sizeClass(n int) int {
	if n <= 1024 {
		return int(classOf[(n+7)/8])
	}
	for c := int(classOf[1024/8]); ; c++ {
		if classes[c] >= n {
			return c
		}
	}
}

// BlockSize is the memory a block of n bytes takes: its class size, or for
// a large block its mapping rounded to pages.
func BlockSize(n int) int {
	if n <= 0 {
		n = 1
	}
	if n <= MaxClass {
		return classes[sizeClass(n)]
	}
	return roundPages(n)
}

func roundPages(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

const pageSize = 4096

// span is one span's bookkeeping; only the writer touches it.
type span struct {
	class   int // -1: free span, -2: a large block
	region  *region
	free    uint32 // offset+1 of the first free block, 0: none
	bump    uint32 // first never-used offset
	live    int
	partial int // index in its class's partial list, or -1
	large   int // size of a large block's mapping
}

// region is a mapping of spansPerRegion spans.
type region struct {
	mem   []byte
	first int // index of its first span
	used  int // spans not free
}

// Arena is a set of spans. The zero value is not usable: call New.
type Arena struct {
	// mem holds every span's memory by index, for Bytes; it is replaced
	// (never changed in place) when it grows, so readers load it atomically.
	mem   atomic.Pointer[[][]byte]
	spans []span
	// partial lists, per class, the spans with both live and free blocks
	// (or free blocks never used).
	partial [][]int
	// freeSpans are spans of partly used regions that hold nothing.
	freeSpans []int
	// freeIndexes are single span indexes without memory (of large blocks
	// freed), and freeRegionIndexes the first indexes of unmapped regions'
	// runs, for reuse.
	freeIndexes       []int
	freeRegionIndexes []int

	allocated atomic.Int64 // bytes in live blocks (class sizes)
	mapped    atomic.Int64 // bytes mapped from the operating system
	blocks    atomic.Int64
}

// New returns an empty arena.
func New() *Arena {
	a := &Arena{partial: make([][]int, len(classes))}
	empty := [][]byte{}
	a.mem.Store(&empty)
	a.grow(1) // Index 0 stays unused, so that no block is the zero Ref.
	return a
}

// Allocated is the bytes held by live blocks, counted at their block size.
func (a *Arena) Allocated() int64 { return a.allocated.Load() }

// Mapped is the bytes of memory taken from the operating system and not
// given back: live blocks, the free blocks beside them, empty spans not
// yet reused.
func (a *Arena) Mapped() int64 { return a.mapped.Load() }

// Blocks is the number of live blocks.
func (a *Arena) Blocks() int64 { return a.blocks.Load() }

// Bytes returns the memory of a live block, n bytes long. Any goroutine
// may call it, as long as the block cannot be freed meanwhile.
func (a *Arena) Bytes(r Ref, n int) []byte {
	m := (*a.mem.Load())[r.span()]
	off := r.offset()
	return m[off : off+n : off+n]
}

// Tail returns the memory of a live block from its start to the end of its
// span (or mapping), for readers that learn the block's length from its
// first bytes.
func (a *Arena) Tail(r Ref) []byte {
	m := (*a.mem.Load())[r.span()]
	return m[r.offset():]
}

// Alloc returns a new block of n bytes (n > 0), not zeroed.
func (a *Arena) Alloc(n int) (Ref, []byte, error) {
	if n <= 0 {
		n = 1
	}
	if n > MaxClass {
		return a.allocLarge(n)
	}
	c := sizeClass(n)
	size := classes[c]
	var si int
	if p := a.partial[c]; len(p) > 0 {
		si = p[len(p)-1]
	} else {
		var err error
		if si, err = a.newSpan(c); err != nil {
			return 0, nil, err
		}
	}
	s := &a.spans[si]
	var off int
	if s.free != 0 {
		off = int(s.free - 1)
		m := (*a.mem.Load())[si]
		s.free = uint32(m[off]) | uint32(m[off+1])<<8 | uint32(m[off+2])<<16
	} else {
		off = int(s.bump)
		s.bump += uint32(size)
	}
	s.live++
	if s.free == 0 && int(s.bump)+size > SpanSize {
		a.unlistPartial(si)
	}
	a.allocated.Add(int64(size))
	a.blocks.Add(1)
	m := (*a.mem.Load())[si]
	return makeRef(si, off), m[off : off+n : off+size], nil
}

// Free releases a block of n bytes (the n it was allocated with, or any
// length of the same block size).
func (a *Arena) Free(r Ref, n int) {
	si := r.span()
	s := &a.spans[si]
	a.blocks.Add(-1)
	if s.class == -2 {
		a.allocated.Add(-int64(s.large))
		a.mapped.Add(-int64(s.large))
		unmap((*a.mem.Load())[si])
		a.setMem(si, nil)
		*s = span{class: -1, partial: -1}
		a.freeIndexes = append(a.freeIndexes, si)
		return
	}
	size := classes[s.class]
	if n > MaxClass || (n > 0 && sizeClass(n) != s.class) {
		panic(fmt.Sprintf("arena: free of %d bytes in a block of class %d", n, size))
	}
	a.allocated.Add(-int64(size))
	off := r.offset()
	wasFull := s.partial < 0
	s.live--
	if s.live == 0 {
		a.releaseSpan(si)
		return
	}
	m := (*a.mem.Load())[si]
	m[off], m[off+1], m[off+2] = byte(s.free), byte(s.free>>8), byte(s.free>>16)
	s.free = uint32(off + 1)
	if wasFull {
		s.partial = len(a.partial[s.class])
		a.partial[s.class] = append(a.partial[s.class], si)
	}
}

// unlistPartial removes a span that has become full from its class's list.
func (a *Arena) unlistPartial(si int) {
	s := &a.spans[si]
	l := a.partial[s.class]
	last := l[len(l)-1]
	l[s.partial] = last
	a.spans[last].partial = s.partial
	a.partial[s.class] = l[:len(l)-1]
	s.partial = -1
}

// newSpan gives class c an empty span, from a free span or a new region.
func (a *Arena) newSpan(c int) (int, error) {
	if len(a.freeSpans) == 0 {
		if err := a.newRegion(); err != nil {
			return 0, err
		}
	}
	si := a.freeSpans[len(a.freeSpans)-1]
	a.freeSpans = a.freeSpans[:len(a.freeSpans)-1]
	s := &a.spans[si]
	s.class, s.free, s.bump, s.live = c, 0, 0, 0
	s.region.used++
	s.partial = len(a.partial[c])
	a.partial[c] = append(a.partial[c], si)
	return si, nil
}

// releaseSpan makes an emptied span free, giving its pages back, or
// unmaps its region when that was the region's last span in use.
func (a *Arena) releaseSpan(si int) {
	s := &a.spans[si]
	if s.partial >= 0 {
		a.unlistPartial(si)
	}
	s.class = -1
	rg := s.region
	rg.used--
	if rg.used > 0 {
		release((*a.mem.Load())[si])
		a.freeSpans = append(a.freeSpans, si)
		return
	}
	// The region's other spans are all in freeSpans: take them out, and
	// the region's indexes become reusable.
	kept := a.freeSpans[:0]
	for _, f := range a.freeSpans {
		if a.spans[f].region != rg {
			kept = append(kept, f)
		}
	}
	a.freeSpans = kept
	for i := rg.first; i < rg.first+spansPerRegion; i++ {
		a.spans[i] = span{class: -1, partial: -1}
		a.setMem(i, nil)
	}
	unmap(rg.mem)
	a.mapped.Add(-regionSize)
	a.freeRegionIndexes = append(a.freeRegionIndexes, rg.first)
}

// newRegion maps a region and adds its spans to the free spans.
func (a *Arena) newRegion() error {
	mem, err := mapMemory(regionSize)
	if err != nil {
		return fmt.Errorf("arena: map %d bytes: %w", regionSize, err)
	}
	first := a.takeIndexes(&a.freeRegionIndexes, spansPerRegion)
	rg := &region{mem: mem, first: first}
	for i := range spansPerRegion {
		si := first + i
		a.spans[si] = span{class: -1, region: rg, partial: -1}
		a.setMem(si, mem[i*SpanSize:(i+1)*SpanSize:(i+1)*SpanSize])
		a.freeSpans = append(a.freeSpans, si)
	}
	// Reuse the lowest spans first.
	for i, j := len(a.freeSpans)-spansPerRegion, len(a.freeSpans)-1; i < j; i, j = i+1, j-1 {
		a.freeSpans[i], a.freeSpans[j] = a.freeSpans[j], a.freeSpans[i]
	}
	a.mapped.Add(regionSize)
	return nil
}

// allocLarge maps a block of its own.
func (a *Arena) allocLarge(n int) (Ref, []byte, error) {
	size := roundPages(n)
	mem, err := mapMemory(size)
	if err != nil {
		return 0, nil, fmt.Errorf("arena: map %d bytes: %w", size, err)
	}
	si := a.takeIndexes(&a.freeIndexes, 1)
	a.spans[si] = span{class: -2, partial: -1, large: size}
	a.setMem(si, mem)
	a.allocated.Add(int64(size))
	a.mapped.Add(int64(size))
	a.blocks.Add(1)
	return makeRef(si, 0), mem[:n:size], nil
}

// takeIndexes returns the first of n span indexes: a run given back
// earlier (free lists runs of n), or new ones at the end.
func (a *Arena) takeIndexes(free *[]int, n int) int {
	if k := len(*free); k > 0 {
		first := (*free)[k-1]
		*free = (*free)[:k-1]
		return first
	}
	first := len(a.spans)
	a.grow(first + n)
	return first
}

// grow makes room for n span indexes.
func (a *Arena) grow(n int) {
	for len(a.spans) < n {
		a.spans = append(a.spans, span{class: -1, partial: -1})
	}
	old := *a.mem.Load()
	if len(old) >= n {
		return
	}
	var m [][]byte
	if cap(old) >= n {
		// Readers of the old header never index past its length.
		m = old[:n]
	} else {
		m = make([][]byte, n, max(n, 2*cap(old), 64))
		copy(m, old)
	}
	a.mem.Store(&m)
}

// setMem publishes span si's memory. The writer changes an element of the
// current slice in place only for a span nobody reads: one being set up
// or one whose blocks are all free.
func (a *Arena) setMem(si int, m []byte) { (*a.mem.Load())[si] = m }

// Release unmaps everything. The arena must not be used after it.
func (a *Arena) Release() {
	seen := map[*region]bool{}
	for i := range a.spans {
		s := &a.spans[i]
		switch {
		case s.class == -2:
			unmap((*a.mem.Load())[i])
		case s.region != nil && !seen[s.region]:
			seen[s.region] = true
			unmap(s.region.mem)
		}
	}
	a.spans, a.freeSpans, a.freeIndexes, a.freeRegionIndexes = nil, nil, nil, nil
	a.partial = make([][]int, len(classes))
	empty := [][]byte{}
	a.mem.Store(&empty)
	a.grow(1)
	a.allocated.Store(0)
	a.mapped.Store(0)
	a.blocks.Store(0)
}
