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
	"regexp"
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
	// Command, if set, replaces -t: redis-benchmark runs this command
	// (with __rand_int__ placeholders drawn from -r) instead of its
	// built-in tests, and reports it under its text.
	Command []string
	// Timeout bounds the whole invocation; zero means no bound beyond ctx.
	Timeout time.Duration
	// Cluster adds --cluster: redis-benchmark reads CLUSTER NODES from
	// Addr and spreads its clients over all masters, with keys hash-tagged
	// to slots of the master each client talks to.
	Cluster bool
	// Masters, if non-zero, is how many masters a --cluster run must
	// report ("Cluster has N master nodes:"). redis-benchmark skips a
	// master without slots with only a warning, so a different count means
	// part of the cluster would silently not be measured.
	Masters int
}

// Args returns the redis-benchmark command line without the executable.
func (b BenchSpec) Args() ([]string, error) {
	host, port, err := splitHostPort(b.Addr)
	if err != nil {
		return nil, err
	}
	args := []string{"-h", host, "-p", port}
	if b.Cluster {
		args = append(args, "--cluster")
	}
	return append(args, b.LoadArgs()...), nil
}

// LoadArgs returns the arguments that define the load, i.e. all but the
// address and --cluster, for describing a run in reports. --csv makes the
// output machine readable and also turns off the interactive progress
// display.
func (b BenchSpec) LoadArgs() []string {
	var args []string
	if len(b.Command) == 0 {
		args = append(args, "-t", b.Tests)
	}
	args = append(args,
		"-n", strconv.Itoa(b.Requests),
		"-r", strconv.Itoa(b.Keyspace),
		"-c", strconv.Itoa(b.Clients),
		"-P", strconv.Itoa(b.Pipeline),
		"-d", strconv.Itoa(b.DataSize),
		"--csv",
	)
	args = append(args, b.Extra...)
	return append(args, b.Command...)
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("address %q has no port", addr)
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}

// ThreadTick is how often redis-benchmark's worker threads check whether
// all requests are done. In threaded mode, which --cluster always uses
// (one thread per master unless --threads says otherwise), a thread whose
// clients have stopped only exits on that check, so every test's measured
// duration ends up to one tick late: ops/s are understated, by up to
// ThreadTick divided by the test's duration. redis-benchmark 7.0 without
// threads stops at once and is not affected.
const ThreadTick = 250 * time.Millisecond

// TickBias returns, over runs of n requests per test, the shortest
// measured test duration and the largest fraction by which ThreadTick may
// have understated a test's ops/s in threaded mode (0 if there are no
// usable results).
func TickBias(n int, runs [][]Result) (shortest time.Duration, bias float64) {
	for _, run := range runs {
		for _, r := range run {
			if !(r.RPS > 0) {
				continue
			}
			d := time.Duration(float64(n) / r.RPS * float64(time.Second))
			if shortest == 0 || d < shortest {
				shortest = d
			}
		}
	}
	if shortest == 0 {
		return 0, 0
	}
	return shortest, min(ThreadTick.Seconds()/shortest.Seconds(), 1)
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
// and any harmless output lines worth relaying, such as "WARNING: Could
// not fetch server CONFIG" on stderr (a server without CONFIG GET) or an
// unrecognised non-CSV line on stdout.
//
// It fails, and kills redis-benchmark at once, as soon as stderr shows an
// error: redis-benchmark 7.0 reports server errors ("Error from server:
// ...") and broken connections ("Error: ...") there, and after "Could not
// connect" it spins at 100% CPU forever instead of exiting, so waiting for
// the exit status alone is not enough. A non-zero exit status, a timeout,
// an error line on stdout, unparseable CSV or (with Cluster) a wrong
// master count are errors too.
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
		if why, fatal := fatalLine(line); fatal {
			cancel(fmt.Errorf("redis-benchmark reported: %s%s", line, why))
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
	out, err := ParseOutput(&stdout)
	if err == nil {
		err = spec.checkMasters(out)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%v\n  command: %s%s", err, cmdline, stderrText)
	}
	return out.Results, append(warnings, out.Notes...), nil
}

// checkMasters verifies the master count a --cluster run reported.
func (b BenchSpec) checkMasters(out Output) error {
	switch {
	case !b.Cluster:
		return nil
	case out.Masters == 0:
		return errors.New(`redis-benchmark --cluster did not print "Cluster has N master nodes:"`)
	case b.Masters > 0 && out.Masters != b.Masters:
		return fmt.Errorf("redis-benchmark --cluster found %d masters, want %d (masters without slots are skipped)", out.Masters, b.Masters)
	}
	return nil
}

// fatalPatterns are lowercase substrings of redis-benchmark output lines
// that make a run invalid, each with an optional explanation for the
// error message.
var fatalPatterns = []struct{ substr, why string }{
	{"error", ""},
	{"could not connect", ""},
	// "Failed to fetch cluster configuration", "Failed to update cluster
	// slots configuration": --cluster could not learn the slot map.
	{"failed", ""},
	{"invalid cluster", ""},
	// Printed when a node answered MOVED or ASK. redis-benchmark counts the
	// redirect reply as a completed request, so the run's figures would
	// include cheap error replies instead of real work.
	{"cluster slots configuration changed", " (a node answered MOVED/ASK: the slot map changed during the run, and redis-benchmark counts redirects as completed requests)"},
}

// infoLines match the informational lines redis-benchmark --cluster prints
// to stdout before the CSV, e.g.
//
//	Cluster has 3 master nodes:
//	Master 0: 9651ee40798af4feb3aa4c44d2628cae852bb944 127.0.0.1:37002
//
// They are recognised explicitly, before the fatal patterns, so that a
// node address or name that happens to contain "error" cannot fail a run.
var (
	clusterHasRE = regexp.MustCompile(`^Cluster has (\d+) master nodes:$`)
	masterLineRE = regexp.MustCompile(`^Master \d+: `)
)

// isInfoLine reports whether line is known informational output.
func isInfoLine(line string) bool {
	return clusterHasRE.MatchString(line) || masterLineRE.MatchString(line)
}

// fatalLine reports whether a redis-benchmark output line (stdout or
// stderr) means the run is invalid, with an explanation to append to the
// line in error messages.
func fatalLine(line string) (why string, fatal bool) {
	if isInfoLine(line) {
		return "", false
	}
	l := strings.ToLower(line)
	for _, p := range fatalPatterns {
		if strings.Contains(l, p.substr) {
			return p.why, true
		}
	}
	return "", false
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

// Output is redis-benchmark's stdout, parsed.
type Output struct {
	Results []Result
	// Masters is N from "Cluster has N master nodes:" (--cluster), else 0.
	Masters int
	// Notes are non-CSV lines that are neither known information nor
	// errors, e.g. "WARNING: Master node 127.0.0.1:7001 has no slots,
	// skipping...", for the caller to relay.
	Notes []string
}

// ParseOutput parses redis-benchmark --csv output (Redis 7 format):
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"SET","253164.55","0.099","0.024","0.087","0.223","0.319","0.655"
//
// Columns are located by header name, so reordering or added columns do
// not break it. Lines that are not CSV are skipped, because --cluster
// prints the masters it found before the CSV, but a skipped line that
// looks like an error (see fatalLine) fails the parse: a benchmark that
// reported a problem should not quietly yield numbers. Text before a
// carriage return is dropped, in case a progress display that redraws
// itself with \r is ever mixed in. After an error the Output is
// incomplete and should not be used.
func ParseOutput(r io.Reader) (Output, error) {
	var out Output
	data, err := io.ReadAll(r)
	if err != nil {
		return out, err
	}
	var clean strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, `"`):
			clean.WriteString(line + "\n")
		case isInfoLine(line):
			if m := clusterHasRE.FindStringSubmatch(line); m != nil {
				out.Masters, _ = strconv.Atoi(m[1])
			}
		default:
			if why, fatal := fatalLine(line); fatal {
				return out, fmt.Errorf("redis-benchmark reported: %s%s", line, why)
			}
			out.Notes = append(out.Notes, line)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(clean.String())).ReadAll()
	if err != nil {
		return out, fmt.Errorf("parsing redis-benchmark CSV: %w", err)
	}
	if len(recs) == 0 {
		return out, errors.New("redis-benchmark printed no CSV")
	}
	header := recs[0]
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, c := range requiredColumns {
		if _, ok := col[c]; !ok {
			return out, fmt.Errorf("redis-benchmark CSV header %q lacks column %q (Redis 7 redis-benchmark needed)", strings.Join(header, ","), c)
		}
	}
	if len(recs) == 1 {
		return out, errors.New("redis-benchmark CSV has a header but no results")
	}
	out.Results = make([]Result, 0, len(recs)-1)
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
				return out, fmt.Errorf("redis-benchmark CSV: test %q column %s: %w", res.Test, name, err)
			}
			*field(&res) = v
		}
		out.Results = append(out.Results, res)
	}
	return out, nil
}
