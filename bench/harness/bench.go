package harness

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// BenchSpec is one redis-benchmark invocation.
type BenchSpec struct {
	Binary   string   // redis-benchmark executable
	Addr     string   // host:port of the server under test
	Tests    string   // -t, comma separated (e.g. "set,get")
	Requests int      // -n, total requests per test
	Keyspace int      // -r, random keys drawn from this many
	Clients  int      // -c, parallel connections
	Pipeline int      // -P, requests per pipeline
	DataSize int      // -d, value size in bytes
	Extra    []string // appended verbatim (e.g. --threads 2)
	// Timeout bounds the whole invocation; zero means no bound beyond ctx.
	Timeout time.Duration
}

// Args returns the redis-benchmark command line without the executable.
func (b BenchSpec) Args() ([]string, error) {
	host, port, err := splitHostPort(b.Addr)
	if err != nil {
		return nil, err
	}
	return append([]string{"-h", host, "-p", port}, b.LoadArgs()...), nil
}

// LoadArgs returns the arguments that define the load, i.e. all but the
// address, for describing a run in reports. --csv makes the output machine
// readable and also turns off the interactive progress display.
func (b BenchSpec) LoadArgs() []string {
	args := []string{
		"-t", b.Tests,
		"-n", strconv.Itoa(b.Requests),
		"-r", strconv.Itoa(b.Keyspace),
		"-c", strconv.Itoa(b.Clients),
		"-P", strconv.Itoa(b.Pipeline),
		"-d", strconv.Itoa(b.DataSize),
		"--csv",
	}
	return append(args, b.Extra...)
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("address %q has no port", addr)
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}

// Result is one row of redis-benchmark's CSV output. Latencies are in
// milliseconds; columns absent from the output are NaN.
type Result struct {
	Test  string
	RPS   float64
	AvgMs float64
	MinMs float64
	P50Ms float64
	P95Ms float64
	P99Ms float64
	MaxMs float64
}

// RunBenchmark runs redis-benchmark once and returns its parsed results
// and any harmless stderr lines (such as "WARNING: Could not fetch server
// CONFIG", which a server without CONFIG GET causes) for the caller to
// relay.
//
// It fails, and kills redis-benchmark at once, as soon as stderr shows an
// error: redis-benchmark 7.0 reports server errors ("Error from server:
// ...") and broken connections ("Error: ...") there, and after "Could not
// connect" it spins at 100% CPU forever instead of exiting, so waiting for
// the exit status alone is not enough. A non-zero exit status, a timeout or
// unparseable output are errors too.
func RunBenchmark(ctx context.Context, spec BenchSpec) ([]Result, []string, error) {
	args, err := spec.Args()
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if spec.Timeout > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeoutCause(runCtx, spec.Timeout,
			fmt.Errorf("redis-benchmark timed out after %v", spec.Timeout))
		defer cancelT()
	}

	cmd := exec.CommandContext(runCtx, spec.Binary, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { killGroup(cmd.Process); return nil }
	// Bounds the wait for the output copy if a grandchild holds the pipe.
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	var stderrAll, warnings []string
	lw := &lineWriter{onLine: func(line string) {
		stderrAll = append(stderrAll, line)
		if isFatalLine(line) {
			cancel(fmt.Errorf("redis-benchmark reported: %s", line))
			return
		}
		warnings = append(warnings, line)
	}}
	cmd.Stdout = &stdout
	cmd.Stderr = lw
	runErr := cmd.Run()
	lw.flush()

	cmdline := spec.Binary + " " + strings.Join(args, " ")
	stderrText := ""
	if len(stderrAll) > 0 {
		stderrText = "\n  stderr: " + strings.Join(stderrAll, "\n  stderr: ")
	}
	if cause := context.Cause(runCtx); cause != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err() // interrupted by the caller
		}
		return nil, nil, fmt.Errorf("%v\n  command: %s%s", cause, cmdline, stderrText)
	}
	if runErr != nil {
		return nil, nil, fmt.Errorf("redis-benchmark failed: %v\n  command: %s%s", runErr, cmdline, stderrText)
	}
	res, err := ParseCSV(&stdout)
	if err != nil {
		return nil, nil, fmt.Errorf("%v\n  command: %s%s", err, cmdline, stderrText)
	}
	return res, warnings, nil
}

// isFatalLine reports whether a redis-benchmark stderr line means the run
// is invalid.
func isFatalLine(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "error") || strings.Contains(l, "could not connect")
}

// lineWriter is an io.Writer that calls onLine for every complete line.
// exec.Cmd writes to it from a single goroutine, so it needs no locking.
type lineWriter struct {
	buf    []byte
	onLine func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.onLine(line)
		}
		w.buf = w.buf[i+1:]
	}
}

// flush emits a final unterminated line, if any.
func (w *lineWriter) flush() {
	if line := strings.TrimSpace(string(w.buf)); line != "" {
		w.onLine(line)
	}
	w.buf = nil
}

// csvColumns maps redis-benchmark 7 CSV header names to Result fields.
var csvColumns = map[string]func(*Result) *float64{
	"rps":            func(r *Result) *float64 { return &r.RPS },
	"avg_latency_ms": func(r *Result) *float64 { return &r.AvgMs },
	"min_latency_ms": func(r *Result) *float64 { return &r.MinMs },
	"p50_latency_ms": func(r *Result) *float64 { return &r.P50Ms },
	"p95_latency_ms": func(r *Result) *float64 { return &r.P95Ms },
	"p99_latency_ms": func(r *Result) *float64 { return &r.P99Ms },
	"max_latency_ms": func(r *Result) *float64 { return &r.MaxMs },
}

// requiredColumns are the columns the reports need; without them the
// output is from an unsupported redis-benchmark (Redis 6 and older print no
// latency columns) and silently reporting NaN would hide that.
var requiredColumns = []string{"test", "rps", "p50_latency_ms", "p99_latency_ms"}

// ParseCSV parses redis-benchmark --csv output (Redis 7 format):
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"SET","253164.55","0.099","0.024","0.087","0.223","0.319","0.655"
//
// Columns are located by header name, so reordering or added columns do
// not break it. Any line that is not CSV, such as an error message that
// ended up on stdout, is an error rather than being skipped: a benchmark
// that printed something unexpected should not quietly yield numbers.
// Text before a carriage return is dropped, in case a progress display
// that redraws itself with \r is ever mixed in.
func ParseCSV(r io.Reader) ([]Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var clean strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, `"`) {
			return nil, fmt.Errorf("unexpected redis-benchmark output line: %q", line)
		}
		clean.WriteString(line + "\n")
	}
	recs, err := csv.NewReader(strings.NewReader(clean.String())).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parsing redis-benchmark CSV: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("redis-benchmark printed no CSV")
	}
	header := recs[0]
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, c := range requiredColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("redis-benchmark CSV header %q lacks column %q (Redis 7 redis-benchmark needed)", strings.Join(header, ","), c)
		}
	}
	if len(recs) == 1 {
		return nil, errors.New("redis-benchmark CSV has a header but no results")
	}
	out := make([]Result, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		res := Result{Test: rec[col["test"]]}
		for name, field := range csvColumns {
			i, ok := col[name]
			if !ok {
				*field(&res) = math.NaN()
				continue
			}
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil {
				return nil, fmt.Errorf("redis-benchmark CSV: test %q column %s: %w", res.Test, name, err)
			}
			*field(&res) = v
		}
		out = append(out, res)
	}
	return out, nil
}
