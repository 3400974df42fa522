package arena

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestClasses(t *testing.T) {
	prev := 0
	for i, c := range classes {
		if c <= prev || c%Align != 0 {
			t.Fatalf("class %d = %d after %d", i, c, prev)
		}
		if prev >= 128 && float64(c-prev) > float64(prev)/8+0.5 {
			t.Fatalf("class %d = %d is more than 1/8 above %d", i, c, prev)
		}
		prev = c
	}
	if classes[len(classes)-1] != MaxClass {
		t.Fatalf("largest class %d, want %d", classes[len(classes)-1], MaxClass)
	}
	for n := 1; n <= MaxClass; n++ {
		c := sizeClass(n)
		if classes[c] < n || (c > 0 && classes[c-1] >= n) {
			t.Fatalf("size %d -> class %d (%d)", n, c, classes[c])
		}
	}
	for _, tc := range []struct{ n, want int }{{1, 8}, {133, 144}, {40, 40}, {MaxClass + 1, MaxClass + pageSize}} {
		if got := BlockSize(tc.n); got != tc.want {
			t.Errorf("BlockSize(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestPack(t *testing.T) {
	for _, r := range []Ref{makeRef(0, 8), makeRef(1<<26-1, SpanSize-8), makeRef(12345, 4096)} {
		p := r.Pack()
		if p >= 1<<PackedBits || Unpack(p) != r {
			t.Fatalf("%v packs to %#x, unpacks to %v", r, p, Unpack(p))
		}
	}
}

// TestAllocFreeMatchesModel allocates and frees blocks of random sizes,
// writing a pattern into each, and checks that no block's bytes change
// behind its back, that the counters add up, and that memory goes back to
// the system once everything is freed.
func TestAllocFreeMatchesModel(t *testing.T) {
	a := New()
	type block struct {
		r    Ref
		data []byte
	}
	var live []block
	rng := rand.New(rand.NewPCG(1, 2))
	var want int64
	size := func() int {
		switch rng.IntN(10) {
		case 0:
			return 1 + rng.IntN(3*MaxClass) // some large ones
		case 1, 2:
			return 1 + rng.IntN(4096)
		}
		return 1 + rng.IntN(200)
	}
	check := func(b block) {
		t.Helper()
		if got := a.Bytes(b.r, len(b.data)); !bytes.Equal(got, b.data) {
			t.Fatalf("block %v changed", b.r)
		}
	}
	for step := range 60000 {
		if len(live) == 0 || rng.IntN(100) < 55 {
			n := size()
			r, m, err := a.Alloc(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != n || cap(m) != BlockSize(n) {
				t.Fatalf("Alloc(%d) gave len %d cap %d", n, len(m), cap(m))
			}
			for i := range m {
				m[i] = byte(rng.Uint32())
			}
			live = append(live, block{r, bytes.Clone(m)})
			want += int64(BlockSize(n))
		} else {
			i := rng.IntN(len(live))
			b := live[i]
			check(b)
			a.Free(b.r, len(b.data))
			want -= int64(BlockSize(len(b.data)))
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		if step%10000 == 0 {
			for _, b := range live {
				check(b)
			}
		}
		if a.Allocated() != want || a.Blocks() != int64(len(live)) {
			t.Fatalf("step %d: allocated %d blocks %d, want %d and %d", step, a.Allocated(), a.Blocks(), want, len(live))
		}
		if a.Mapped() < a.Allocated() {
			t.Fatalf("step %d: mapped %d < allocated %d", step, a.Mapped(), a.Allocated())
		}
	}
	for _, b := range live {
		check(b)
		a.Free(b.r, len(b.data))
	}
	if a.Allocated() != 0 || a.Mapped() != 0 || a.Blocks() != 0 {
		t.Fatalf("after freeing everything: allocated %d mapped %d blocks %d", a.Allocated(), a.Mapped(), a.Blocks())
	}
	a.Release()
}

// TestSpansAreReused fills memory with one size, frees it, fills it with
// another, and checks the arena did not map twice as much.
func TestSpansAreReused(t *testing.T) {
	a := New()
	defer a.Release()
	var refs []Ref
	for range 50000 {
		r, _, err := a.Alloc(100)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	peak := a.Mapped()
	// Free all but one block per region, so regions stay mapped but their
	// spans become free.
	for i, r := range refs {
		if i%(regionSize/112) != 0 {
			a.Free(r, 100)
		}
	}
	for range 50000 {
		if _, _, err := a.Alloc(1000); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Mapped(); got > peak*10+regionSize {
		t.Fatalf("mapped %d after reuse, peak was %d", got, peak)
	}
	if over := float64(a.Mapped()) / float64(a.Allocated()); over > 1.3 {
		t.Fatalf("mapped/allocated = %.2f", over)
	}
}

func BenchmarkAllocFree(b *testing.B) {
	a := New()
	defer a.Release()
	refs := make([]Ref, 4096)
	for i := range refs {
		refs[i], _, _ = a.Alloc(133)
	}
	b.ResetTimer()
	for i := range b.N {
		j := i & 4095
		a.Free(refs[j], 133)
		refs[j], _, _ = a.Alloc(133)
	}
}
