// Command ring measures the consistent-hash ring of package cluster: how
// evenly it spreads primary slots, and how much moves when one node joins or
// leaves, next to what naive hash-mod-n placement would move. It prints a
// Markdown table, one row per cluster size n and tokens per node V, each
// figure averaged over several random node-ID sets so that no row is one
// lucky (or unlucky) draw.
//
//	go run ./bench/ring
//	go run ./bench/ring -n-max 16 -v 512,1024 -trials 100
//
// See bench/ring/README.md for how to read the output.
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringcache/ringcache/cluster"
	"github.com/zeebo/xxh3"
)

// config holds the parsed command-line flags.
type config struct {
	nMax   int
	vnodes []int
	keys   int
	trials int
	seed   uint64
	limit  float64
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("ring", flag.ContinueOnError)
	c := &config{}
	vlist := fs.String("v", "16,64,128,256,512,"+strconv.Itoa(cluster.DefaultVNodes),
		"tokens per node to try, comma separated")
	fs.IntVar(&c.nMax, "n-max", 32, "largest cluster size (rows run n = 2..n-max)")
	fs.IntVar(&c.keys, "keys", 1000000, `keys ("key:<i>") sampled for the key columns`)
	fs.IntVar(&c.trials, "trials", 5, "random node-ID sets each figure is averaged over")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random node IDs (same seed, same table)")
	fs.Float64Var(&c.limit, "limit", 1.10, "max/avg bound whose violations the >limit column counts")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for f := range strings.SplitSeq(*vlist, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("-v: %q is not a positive integer", f)
		}
		c.vnodes = append(c.vnodes, v)
	}
	switch {
	case c.nMax < 2:
		return nil, fmt.Errorf("-n-max must be at least 2")
	case c.keys < 1:
		return nil, fmt.Errorf("-keys must be at least 1")
	case c.trials < 1:
		return nil, fmt.Errorf("-trials must be at least 1")
	}
	return c, nil
}

// keySample is what the key columns need of the sampled keys.
type keySample struct {
	total   int
	perSlot [cluster.SlotCount]int // keys in each slot: a key moves iff its slot does
	hashes  []uint64               // xxh3 of each key, for the hash-mod-n baseline
}

func sampleKeys(n int) *keySample {
	ks := &keySample{total: n, hashes: make([]uint64, n)}
	var buf []byte
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "key:"...), int64(i), 10)
		ks.perSlot[cluster.KeySlot(buf)]++
		ks.hashes[i] = xxh3.Hash(buf)
	}
	return ks
}

// modMoved is the fraction of keys that hash-mod-n placement moves when the
// n+1-th node joins: every key whose hash mod n differs from mod n+1.
func (ks *keySample) modMoved(n int) float64 {
	moved := 0
	for _, h := range ks.hashes {
		if h%uint64(n) != h%uint64(n+1) {
			moved++
		}
	}
	return float64(moved) / float64(ks.total)
}

// row is one line of the table; the figures are means over the trials.
type row struct {
	n, v                  int
	maxAvg, worstMaxAvg   float64
	overLimit             int // trials whose max/avg exceeded -limit
	runsPerNode           float64
	joinSlots, joinKeys   float64
	leaveSlots, leaveKeys float64
	modJoinKeys           float64
	strayJoin, strayLeave int // slots that moved other than consistent hashing promises
	joinIdeal, leaveIdeal float64
	ringsBuilt            int
	buildTotal            time.Duration
}

// members returns the n+1 random members of one trial. The IDs depend only
// on seed, n and trial, so every V is measured on the same ID sets and the
// columns compare V rather than luck.
func members(seed uint64, n, trial int) []cluster.Member {
	rng := rand.New(rand.NewPCG(seed, uint64(n)<<32|uint64(trial)))
	ms := make([]cluster.Member, n+1)
	for i := range ms {
		var b [20]byte
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		ms[i] = cluster.Member{ID: hex.EncodeToString(b[:]), Addr: fmt.Sprintf("10.0.%d.%d:6379", i/256, i%256)}
	}
	return ms
}

// measure fills in one row: for each trial a base ring of n members, the
// same with an n+1-th member joined, and the same with one member gone.
func measure(c *config, ks *keySample, n, v int) row {
	r := row{n: n, v: v, joinIdeal: 1 / float64(n+1), leaveIdeal: 1 / float64(n)}
	for trial := range c.trials {
		ms := members(c.seed, n, trial)
		start := time.Now()
		base := cluster.NewRing(ms[:n], v, 1)
		join := cluster.NewRing(ms, v, 1)
		leaver := ms[trial%n].ID
		leave := cluster.NewRing(slices.DeleteFunc(slices.Clone(ms[:n]), func(m cluster.Member) bool {
			return m.ID == leaver
		}), v, 1)
		r.buildTotal += time.Since(start)
		r.ringsBuilt += 3

		perNode := make(map[string]int, n)
		ranges := base.Ranges()
		for _, sr := range ranges {
			perNode[sr.Nodes[0].ID] += int(sr.End-sr.Start) + 1
		}
		most := 0
		for _, slots := range perNode {
			most = max(most, slots)
		}
		ma := float64(most) * float64(n) / cluster.SlotCount
		r.maxAvg += ma
		r.worstMaxAvg = max(r.worstMaxAvg, ma)
		if ma > c.limit {
			r.overLimit++
		}
		r.runsPerNode += float64(len(ranges)) / float64(n)

		joiner := ms[n].ID
		var js, jk, ls, lk int
		for s := range uint16(cluster.SlotCount) {
			was := base.Owner(s).ID
			if now := join.Owner(s).ID; now != was {
				js++
				jk += ks.perSlot[s]
				if now != joiner {
					r.strayJoin++
				}
			}
			if leave.Owner(s).ID != was {
				ls++
				lk += ks.perSlot[s]
				if was != leaver {
					r.strayLeave++
				}
			}
		}
		r.joinSlots += float64(js) / cluster.SlotCount
		r.joinKeys += float64(jk) / float64(ks.total)
		r.leaveSlots += float64(ls) / cluster.SlotCount
		r.leaveKeys += float64(lk) / float64(ks.total)
	}
	t := float64(c.trials)
	r.maxAvg /= t
	r.runsPerNode /= t
	r.joinSlots /= t
	r.joinKeys /= t
	r.leaveSlots /= t
	r.leaveKeys /= t
	return r
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ring:", err)
		os.Exit(2)
	}
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ring:", err)
		os.Exit(1)
	}
}

func run(c *config, w io.Writer) error {
	start := time.Now()
	ks := sampleKeys(c.keys)

	// The cells are independent, so they share out over the cores; each
	// lands in its own slot of rows, which keeps the output order fixed.
	type cell struct{ i, n, v int }
	var cells []cell
	for n := 2; n <= c.nMax; n++ {
		for _, v := range c.vnodes {
			cells = append(cells, cell{len(cells), n, v})
		}
	}
	rows := make([]row, len(cells))
	mod := make([]float64, c.nMax+1)
	work := make(chan cell)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for cl := range work {
				rows[cl.i] = measure(c, ks, cl.n, cl.v)
			}
		})
	}
	wg.Go(func() {
		for n := 2; n <= c.nMax; n++ {
			mod[n] = ks.modMoved(n)
		}
	})
	for _, cl := range cells {
		work <- cl
	}
	close(work)
	wg.Wait()

	fmt.Fprintf(w, "Ring placement, primaries only; each figure is the mean over %d random node-ID sets (seed %d); keys: %d \"key:<i>\" via cluster.KeySlot.\n\n",
		c.trials, c.seed, c.keys)
	fmt.Fprintf(w, "| n | V | max/avg | worst | >%.2f | runs/node | join: slots | join: keys | 1/(n+1) | leave: slots | leave: keys | 1/n | mod-n join: keys |\n", c.limit)
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	var stray, rings int
	var build time.Duration
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %d | %.3f | %.3f | %d/%d | %.1f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n",
			r.n, r.v, r.maxAvg, r.worstMaxAvg, r.overLimit, c.trials, r.runsPerNode,
			r.joinSlots, r.joinKeys, r.joinIdeal, r.leaveSlots, r.leaveKeys, r.leaveIdeal, mod[r.n])
		stray += r.strayJoin + r.strayLeave
		rings += r.ringsBuilt
		build += r.buildTotal
	}
	fmt.Fprintf(w, "\n%d rings built, %.2f ms each on average; total %.1f s.\n",
		rings, float64(build.Microseconds())/1000/float64(rings), time.Since(start).Seconds())
	if stray > 0 {
		return fmt.Errorf("%d slots moved between nodes other than the one joining or leaving", stray)
	}
	return nil
}
