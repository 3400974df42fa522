package main

import (
	"math"
	"math/rand/v2"
)

// zipf is the Zipf distribution over the ranks 1..n: P(k) = k^-s / H(n, s)
// with H(n, s) = sum of j^-s for j = 1..n. It keeps the cumulative
// distribution, so that sampling is a binary search over it (exact for any
// s > 0, including s close to 1) and the mass of the most popular keys is
// a lookup.
//
// math/rand/v2's Zipf would do for s > 1 (it draws k in [0, imax] with
// P(k) ∝ (v+k)^-s, so v = 1 gives ranks from 1), but it is a rejection
// sampler whose acceptance test becomes numerically delicate as s
// approaches 1; the table costs 8 bytes per key and is exact.
type zipf struct {
	s   float64
	cdf []float64 // cdf[i] = P(rank <= i+1); cdf[n-1] = 1
}

// newZipf builds the distribution over n ranks with exponent s.
func newZipf(n int, s float64) *zipf {
	cdf := make([]float64, n)
	// Sum from the smallest terms up, so that the small ones are not lost
	// against a large running total; the running sum for cdf then goes
	// from the largest, with Kahan compensation.
	var total float64
	for k := n; k >= 1; k-- {
		total += math.Pow(float64(k), -s)
	}
	var sum, comp float64
	for k := 1; k <= n; k++ {
		y := math.Pow(float64(k), -s) - comp
		t := sum + y
		comp = (t - sum) - y
		sum = t
		cdf[k-1] = min(sum/total, 1)
	}
	cdf[n-1] = 1
	return &zipf{s: s, cdf: cdf}
}

// n is the number of ranks.
func (z *zipf) n() int { return len(z.cdf) }

// rank maps u in [0, 1) to a rank in 1..n: the smallest k with
// P(rank <= k) > u.
func (z *zipf) rank(u float64) int {
	lo, hi := 0, len(z.cdf)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if z.cdf[mid] > u {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo + 1
}

// mass is the probability that a request asks for one of the k most
// popular keys: the hit ratio of a cache that always holds exactly those
// k keys, which no online policy beats on a stream of independent
// requests from this distribution holding k keys.
func (z *zipf) mass(k int) float64 {
	switch {
	case k <= 0:
		return 0
	case k >= len(z.cdf):
		return 1
	}
	return z.cdf[k-1]
}

// zipfStream draws ranks from z with its own seeded generator: the same
// seed gives the same stream.
type zipfStream struct {
	z   *zipf
	rng *rand.Rand
}

func newZipfStream(z *zipf, seed uint64) *zipfStream {
	return &zipfStream{z: z, rng: rand.New(rand.NewPCG(seed, 0x5eed_2ff1))}
}

// next returns the next rank, in 1..n.
func (st *zipfStream) next() int { return st.z.rank(st.rng.Float64()) }
