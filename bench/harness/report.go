package harness

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Report is a finished comparison ready to be rendered.
type Report struct {
	// Title is the first line, e.g. what was run.
	Title string
	// Notes are extra lines shown above the table (parameters, versions).
	Notes []string
	// Targets names the series, parallel to Row.Stats. With two targets
	// the ratio columns compare Targets[1] to Targets[0].
	Targets []string
	Rows    []Row
	// Mem is each target's memory after the runs; Err is set instead of
	// Stat when it could not be read.
	Mem []TargetMem
}

// TargetMem is the memory reading of one target.
type TargetMem struct {
	Name string
	Stat MemStat
	Err  error
}

// column is one column of the rendered table.
type column struct {
	head  string
	right bool // numbers are right-aligned so digits line up
	cell  func(Row) string
}

// columns lists the table columns: ops/s and the ratio first because they
// are what the report is about, latencies after.
func (rep *Report) columns() []column {
	cols := []column{{head: "test", cell: func(r Row) string { return r.Test }}}
	for i, name := range rep.Targets {
		cols = append(cols, column{head: name + " ops/s", right: true,
			cell: func(r Row) string { return FormatOps(r.Stats[i].RPS) }})
	}
	if len(rep.Targets) >= 2 {
		cols = append(cols,
			column{head: "ratio", right: true, cell: func(r Row) string { return fmtRatio(r.Ratio) }},
			column{head: "ratio min..max", right: true, cell: func(r Row) string {
				return fmtRatio(r.RatioMin) + ".." + fmtRatio(r.RatioMax)
			}})
	}
	for _, q := range []struct {
		name string
		get  func(Stats) float64
	}{{"p50", func(s Stats) float64 { return s.P50Ms }}, {"p99", func(s Stats) float64 { return s.P99Ms }}} {
		for i, name := range rep.Targets {
			cols = append(cols, column{head: name + " " + q.name + " ms", right: true,
				cell: func(r Row) string { return fmtMs(q.get(r.Stats[i])) }})
		}
	}
	return cols
}

// cells renders the header and all rows as strings.
func (rep *Report) cells() ([]column, [][]string) {
	cols := rep.columns()
	grid := make([][]string, 0, len(rep.Rows)+1)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c.head
	}
	grid = append(grid, head)
	for _, r := range rep.Rows {
		line := make([]string, len(cols))
		for i, c := range cols {
			line[i] = c.cell(r)
		}
		grid = append(grid, line)
	}
	return cols, grid
}

// WriteText writes the report as a plain aligned table for a terminal.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if rep.Title != "" {
		b.WriteString(rep.Title + "\n")
	}
	for _, n := range rep.Notes {
		b.WriteString("  " + n + "\n")
	}
	b.WriteString("\n")
	cols, grid := rep.cells()
	width := make([]int, len(cols))
	for _, line := range grid {
		for i, c := range line {
			width[i] = max(width[i], len(c))
		}
	}
	writeLine := func(line []string) {
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len(c))
			if cols[i].right {
				b.WriteString(pad + c)
			} else if i == len(line)-1 {
				b.WriteString(c) // no trailing blanks
			} else {
				b.WriteString(c + pad)
			}
		}
		b.WriteString("\n")
	}
	writeLine(grid[0])
	rule := make([]string, len(cols))
	for i := range rule {
		rule[i] = strings.Repeat("-", width[i])
	}
	writeLine(rule)
	for _, line := range grid[1:] {
		writeLine(line)
	}
	if len(rep.Mem) > 0 {
		b.WriteString("\nmemory after the runs (VmRSS, peak VmHWM):\n")
		for _, m := range rep.Mem {
			b.WriteString("  " + fmtMem(m) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the report as a Markdown section with a table.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	if rep.Title != "" {
		b.WriteString("### " + rep.Title + "\n\n")
	}
	for _, n := range rep.Notes {
		b.WriteString("- " + mdEscape(n) + "\n")
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
	}
	cols, grid := rep.cells()
	for i, line := range grid {
		b.WriteString("|")
		for _, c := range line {
			b.WriteString(" " + mdEscape(c) + " |")
		}
		b.WriteString("\n")
		if i == 0 {
			b.WriteString("|")
			for _, c := range cols {
				if c.right {
					b.WriteString("---:|")
				} else {
					b.WriteString("---|")
				}
			}
			b.WriteString("\n")
		}
	}
	if len(rep.Mem) > 0 {
		b.WriteString("\nMemory after the runs (VmRSS, peak VmHWM):\n\n")
		for _, m := range rep.Mem {
			b.WriteString("- " + mdEscape(fmtMem(m)) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscape keeps table cells from being split at a literal pipe.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// WriteCSV writes one row per test with full-precision numbers, for
// spreadsheets and for tracking results over time. Memory readings repeat
// on every row so that each row stands alone.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"test", "rounds"}
	for _, n := range rep.Targets {
		head = append(head, n+"_ops_s", n+"_ops_s_min", n+"_ops_s_max")
	}
	if len(rep.Targets) >= 2 {
		head = append(head, "ratio", "ratio_min", "ratio_max")
	}
	for _, n := range rep.Targets {
		head = append(head, n+"_p50_ms", n+"_p99_ms")
	}
	for _, m := range rep.Mem {
		head = append(head, m.Name+"_rss_kib", m.Name+"_peak_rss_kib")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		rec := []string{r.Test, strconv.Itoa(r.Rounds)}
		for _, s := range r.Stats {
			rec = append(rec, csvFloat(s.RPS, 2), csvFloat(s.RPSMin, 2), csvFloat(s.RPSMax, 2))
		}
		if len(rep.Targets) >= 2 {
			rec = append(rec, csvFloat(r.Ratio, 4), csvFloat(r.RatioMin, 4), csvFloat(r.RatioMax, 4))
		}
		for _, s := range r.Stats {
			rec = append(rec, csvFloat(s.P50Ms, 3), csvFloat(s.P99Ms, 3))
		}
		for _, m := range rep.Mem {
			if m.Err != nil {
				rec = append(rec, "", "")
			} else {
				rec = append(rec, strconv.FormatInt(m.Stat.RSSKiB, 10), strconv.FormatInt(m.Stat.HWMKiB, 10))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvFloat formats v with prec decimals, or "" for NaN so spreadsheets see
// an empty cell rather than text.
func csvFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// FormatOps formats ops/s as an integer with thousands separators, or
// "n/a" for NaN.
func FormatOps(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

func fmtMem(m TargetMem) string {
	if m.Err != nil {
		return fmt.Sprintf("%s: unavailable (%v)", m.Name, m.Err)
	}
	return fmt.Sprintf("%s: %.1f MiB (peak %.1f MiB)", m.Name,
		float64(m.Stat.RSSKiB)/1024, float64(m.Stat.HWMKiB)/1024)
}
