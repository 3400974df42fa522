package harness

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Median returns the median of xs (the mean of the two middle values for
// an even count), or NaN for an empty slice. xs is not modified.
//
// The median rather than the mean summarises rounds because on a shared
// machine a single disturbed round is common and should not drag the
// summary with it.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// MinMax returns the smallest and largest of xs, or NaN, NaN if empty.
func MinMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// Series is every round of one target: Rounds[i] holds the results of
// round i, one Result per redis-benchmark test.
type Series struct {
	Name   string
	Rounds [][]Result
}

// Stats summarises one target for one test over all rounds.
type Stats struct {
	RPS    float64 // median ops/s
	RPSMin float64
	RPSMax float64
	P50Ms  float64 // median over rounds of the per-round p50
	P99Ms  float64 // median over rounds of the per-round p99
}

// Row is the summary of one test across targets.
type Row struct {
	Test   string
	Rounds int
	Stats  []Stats // parallel to the series passed to Summarize
	// Ratio is the median over rounds of series[1] ops/s divided by
	// series[0] ops/s within the same round; RatioMin and RatioMax are the
	// extremes. All three are NaN with fewer than two series.
	Ratio, RatioMin, RatioMax float64
	// Ratios are the per-round ratios the three figures above came from.
	Ratios []float64
}

// Summarize turns per-round results into one Row per test, in the order
// the tests appear in the first round of the first series.
//
// Ratios are computed per round and then summarised, rather than dividing
// the two medians, because rounds i of both series ran back to back under
// the same machine load, so their quotient cancels most of that load; the
// spread of per-round ratios then shows how much noise is left.
//
// All series must have the same number of rounds, and every round must
// contain every test of the first round.
func Summarize(series []Series) ([]Row, error) {
	if len(series) == 0 {
		return nil, errors.New("no series to summarise")
	}
	rounds := len(series[0].Rounds)
	if rounds == 0 {
		return nil, fmt.Errorf("%s: no rounds", series[0].Name)
	}
	// index[s][r][test] locates each result once instead of scanning.
	index := make([][]map[string]Result, len(series))
	for s, ser := range series {
		if len(ser.Rounds) != rounds {
			return nil, fmt.Errorf("%s has %d rounds, %s has %d", ser.Name, len(ser.Rounds), series[0].Name, rounds)
		}
		index[s] = make([]map[string]Result, rounds)
		for r, res := range ser.Rounds {
			m := make(map[string]Result, len(res))
			for _, x := range res {
				if _, dup := m[x.Test]; dup {
					return nil, fmt.Errorf("%s round %d: test %q reported twice", ser.Name, r+1, x.Test)
				}
				m[x.Test] = x
			}
			index[s][r] = m
		}
	}

	var rows []Row
	for _, first := range series[0].Rounds[0] {
		test := first.Test
		row := Row{Test: test, Rounds: rounds, Ratio: math.NaN(), RatioMin: math.NaN(), RatioMax: math.NaN()}
		rps := make([][]float64, len(series))
		for s, ser := range series {
			var p50, p99 []float64
			for r := range rounds {
				x, ok := index[s][r][test]
				if !ok {
					return nil, fmt.Errorf("%s round %d: test %q missing", ser.Name, r+1, test)
				}
				rps[s] = append(rps[s], x.RPS)
				p50 = append(p50, x.P50Ms)
				p99 = append(p99, x.P99Ms)
			}
			lo, hi := MinMax(rps[s])
			row.Stats = append(row.Stats, Stats{
				RPS: Median(rps[s]), RPSMin: lo, RPSMax: hi,
				P50Ms: Median(p50), P99Ms: Median(p99),
			})
		}
		if len(series) >= 2 {
			for r := range rounds {
				row.Ratios = append(row.Ratios, Ratio(rps[1][r], rps[0][r]))
			}
			row.Ratio = Median(row.Ratios)
			row.RatioMin, row.RatioMax = MinMax(row.Ratios)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Ratio returns num/den, or NaN when den is zero or either is NaN, so that
// a failed measurement shows up as "n/a" rather than as +Inf.
func Ratio(num, den float64) float64 {
	if den == 0 || math.IsNaN(num) || math.IsNaN(den) {
		return math.NaN()
	}
	return num / den
}
