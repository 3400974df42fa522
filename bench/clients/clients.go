// Package clients drives Redis client libraries (go-redis, redis-cli -c,
// ioredis, redis-py), each with its default options, as writers against a
// cluster, and measures what each of them sees of a failover: how long
// after a primary is killed its slots take that client's writes again, and
// whether any write it was told succeeded went missing. The failover tests
// of cmd/ringcache and the bench suite share it.
package clients

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/ioredis_writer.js
var ioredisWriter []byte

//go:embed scripts/redispy_writer.py
var redispyWriter []byte

// Env says where the tools the external clients need are.
type Env struct {
	// NodeModules is a node_modules folder holding ioredis.
	NodeModules string
	// Dir is a scratch folder for the scripts.
	Dir string
}

// A Write is one write a client made, as the client saw it.
type Write struct {
	Key        string
	Seq        int64 // the value written; rises per key
	OK         bool
	Start, End time.Time
	Err        string
}

// A Lib is one client library, driven as a set of concurrent writers.
type Lib struct {
	Name    string
	Options string // what the writers use: the library's defaults
	// Missing says why the library cannot run here ("" if it can).
	Missing func(env Env) string
	// start begins writing keys from workers concurrent loops, seeded
	// with seeds, sending every write to out until ctx ends.
	start func(ctx context.Context, env Env, seeds []string, workers int, keys []string, out chan<- Write) (wait func() error, err error)
}

// Libs are the libraries the failover measurement covers.
var Libs = []Lib{GoRedis, RedisCLI, IORedis, RedisPy}

// GoRedis is go-redis v9's ClusterClient with default options.
var GoRedis = Lib{
	Name:    "go-redis",
	Options: "redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})",
	Missing: func(Env) string { return "" },
	start: func(ctx context.Context, _ Env, seeds []string, workers int, keys []string, out chan<- Write) (func() error, error) {
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
		var wg sync.WaitGroup
		var seq int64
		var mu sync.Mutex
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					for i := w; i < len(keys) && ctx.Err() == nil; i += workers {
						mu.Lock()
						seq++
						s := seq
						mu.Unlock()
						start := time.Now()
						err := rdb.Set(ctx, keys[i], s, 0).Err()
						wr := Write{Key: keys[i], Seq: s, OK: err == nil, Start: start, End: time.Now()}
						if err != nil {
							if ctx.Err() != nil {
								return // the cancel, not the cluster, ended it
							}
							wr.Err = err.Error()
						}
						out <- wr
					}
				}
			}()
		}
		return func() error { wg.Wait(); return rdb.Close() }, nil
	},
}

// RedisCLI is redis-cli -c, one process per write, each started on the
// first seed, as a shell script would use it.
var RedisCLI = Lib{
	Name:    "redis-cli -c",
	Options: "redis-cli -c -h host -p port SET key value, a process per write",
	Missing: func(Env) string {
		if _, err := exec.LookPath("redis-cli"); err != nil {
			return "redis-cli not on PATH (apt-get install redis-tools)"
		}
		return ""
	},
	start: func(ctx context.Context, _ Env, seeds []string, workers int, keys []string, out chan<- Write) (func() error, error) {
		host, port, err := splitAddr(seeds[0])
		if err != nil {
			return nil, err
		}
		var wg sync.WaitGroup
		var seq int64
		var mu sync.Mutex
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					for i := w; i < len(keys) && ctx.Err() == nil; i += workers {
						mu.Lock()
						seq++
						s := seq
						mu.Unlock()
						start := time.Now()
						cmd := exec.Command("redis-cli", "-c", "-h", host, "-p", port, "SET", keys[i], strconv.FormatInt(s, 10))
						reply, err := cmd.CombinedOutput()
						r := strings.TrimSpace(string(reply))
						wr := Write{Key: keys[i], Seq: s, OK: err == nil && r == "OK", Start: start, End: time.Now()}
						if !wr.OK {
							wr.Err = strings.Join(strings.Fields(r), " ")
							if err != nil {
								wr.Err += " (" + err.Error() + ")"
							}
						}
						out <- wr
					}
				}
			}()
		}
		return func() error { wg.Wait(); return nil }, nil
	},
}

// IORedis is ioredis's Redis.Cluster with default options.
var IORedis = Lib{
	Name:    "ioredis",
	Options: "new Redis.Cluster(seeds)",
	Missing: func(env Env) string {
		if _, err := exec.LookPath("node"); err != nil {
			return "node not on PATH (apt-get install nodejs npm)"
		}
		if _, err := os.Stat(filepath.Join(env.NodeModules, "ioredis")); err != nil {
			return "ioredis not installed in " + env.NodeModules + " (make node-deps)"
		}
		return ""
	},
	start: func(ctx context.Context, env Env, seeds []string, workers int, keys []string, out chan<- Write) (func() error, error) {
		script, err := writeScript(env, "ioredis_writer.js", ioredisWriter)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("node", append([]string{script, strings.Join(seeds, ","), strconv.Itoa(workers)}, keys...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+env.NodeModules)
		return runScript(ctx, cmd, out)
	},
}

// RedisPy is redis-py's RedisCluster with default options.
var RedisPy = Lib{
	Name:    "redis-py",
	Options: "RedisCluster(startup_nodes=seeds), a client per thread",
	Missing: func(Env) string {
		if python() == "" {
			return "no python3 with the redis module (apt-get install python3-redis)"
		}
		return ""
	},
	start: func(ctx context.Context, env Env, seeds []string, workers int, keys []string, out chan<- Write) (func() error, error) {
		script, err := writeScript(env, "redispy_writer.py", redispyWriter)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(python(), append([]string{script, strings.Join(seeds, ","), strconv.Itoa(workers)}, keys...)...)
		return runScript(ctx, cmd, out)
	},
}

// Version is the library's version as installed here ("" if unknown).
func Version(lib Lib, env Env) string {
	var out []byte
	var err error
	switch lib.Name {
	case GoRedis.Name:
		return redis.Version()
	case RedisCLI.Name:
		out, err = exec.Command("redis-cli", "--version").Output()
	case IORedis.Name:
		out, err = exec.Command("node", "-p", "require('"+filepath.Join(env.NodeModules, "ioredis", "package.json")+"').version").Output()
	case RedisPy.Name:
		out, err = exec.Command(python(), "-c", "import redis; print(redis.__version__)").Output()
	}
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// python is a python3 that imports redis: the one on PATH, or Debian's
// (python3-redis installs into /usr/bin/python3's path, which a pyenv or
// venv python3 on PATH does not see).
var python = sync.OnceValue(func() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import redis.cluster").Run() == nil {
			return p
		}
	}
	return ""
})

func splitAddr(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("clients: %q is not host:port", addr)
	}
	return addr[:i], addr[i+1:], nil
}

func writeScript(env Env, name string, body []byte) (string, error) {
	path := filepath.Join(env.Dir, name)
	return path, os.WriteFile(path, body, 0o644)
}

// runScript starts a writer script and turns its lines into writes; the
// script stops when its standard input closes, which the cancel of ctx
// does.
func runScript(ctx context.Context, cmd *exec.Cmd, out chan<- Write) (func() error, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		stdin.Close()
		// A script that does not stop within a few seconds is killed.
		time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
	}()
	lines := make(chan error, 1)
	go func() { lines <- readWrites(stdout, out) }()
	return func() error {
		perr := <-lines
		werr := cmd.Wait()
		if ctx.Err() != nil {
			werr = nil // stopped on purpose
		}
		if err := errors.Join(perr, werr); err != nil {
			return fmt.Errorf("%s: %w; stderr: %s", filepath.Base(cmd.Path), err, lastLines(stderr.String(), 10))
		}
		return nil
	}, nil
}

// readWrites parses "ok|err key seq startMs endMs [error]" lines.
func readWrites(r io.Reader, out chan<- Write) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 6)
		if len(f) < 5 || (f[0] != "ok" && f[0] != "err") {
			return fmt.Errorf("clients: unexpected line from a writer: %q", sc.Text())
		}
		seq, err1 := strconv.ParseInt(f[2], 10, 64)
		start, err2 := strconv.ParseInt(f[3], 10, 64)
		end, err3 := strconv.ParseInt(f[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("clients: bad line %q: %w", sc.Text(), err)
		}
		w := Write{Key: f[1], Seq: seq, OK: f[0] == "ok", Start: time.UnixMilli(start), End: time.UnixMilli(end)}
		if len(f) == 6 {
			w.Err = f[5]
		}
		out <- w
	}
	return sc.Err()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// FailoverSpec is a failover to measure: a cluster already running, the
// keys to write, which of them the kill takes away, and the kill.
type FailoverSpec struct {
	// Seeds are the addresses the clients start from; redis-cli uses
	// the first, so it should survive the kill.
	Seeds []string
	Keys  []string
	// Victim reports whether key is on a slot of the primary Kill ends.
	Victim func(key string) bool
	Kill   func() error
	// Workers is how many writes each client keeps in flight.
	Workers int
	// Limit is how long to wait for the victim's keys to take writes.
	Limit time.Duration
	// Read reads a key's value after the run, through a client of the
	// tester's choosing, to find acknowledged writes that were lost.
	Read func(ctx context.Context, key string) (string, error)
}

// FailoverResult is what one client saw. All times are from the kill.
type FailoverResult struct {
	Lib string
	// Outage is how long the client saw writes to the victim's slots
	// fail: until the later of its last refused write there and the
	// first acknowledged one it began after the kill. This is the figure.
	Outage time.Duration
	// First is the first acknowledged write to the victim's slots begun
	// after the kill; AllKeys is when the last of the victim's keys had
	// one (for a client that goes over its keys slowly, such as a
	// process per write, this includes the time a round takes).
	First, AllKeys time.Duration
	Recovered      bool // every victim key took such a write within Limit
	Refused        int  // writes refused after the kill
	LastErr        string
	Acked          int      // writes acknowledged over the run
	Lost           []string // keys whose value is older than their last acknowledged write
}

// MeasureFailover runs lib's writers over spec.Keys until every key has
// taken a write, kills the victim, waits until each of the victim's keys
// takes a write again (or Limit), stops the writers and reads every key
// back.
func MeasureFailover(ctx context.Context, lib Lib, env Env, spec FailoverSpec) (FailoverResult, error) {
	res := FailoverResult{Lib: lib.Name}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	writes := make(chan Write, 1024)
	wait, err := lib.start(runCtx, env, spec.Seeds, spec.Workers, spec.Keys, writes)
	if err != nil {
		return res, fmt.Errorf("%s: %w", lib.Name, err)
	}

	var mu sync.Mutex
	acked := map[string]int64{}         // key -> last acknowledged value
	recovered := map[string]time.Time{} // victim key -> first write begun after the kill and acknowledged
	var killedAt, lastRefusal time.Time
	changed := make(chan struct{}, 1)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for w := range writes {
			mu.Lock()
			if w.OK {
				res.Acked++
				acked[w.Key] = max(acked[w.Key], w.Seq)
				if !killedAt.IsZero() && w.Start.After(killedAt) && spec.Victim(w.Key) {
					if _, ok := recovered[w.Key]; !ok {
						recovered[w.Key] = w.End
					}
				}
			} else if !killedAt.IsZero() {
				res.Refused++
				res.LastErr = w.Err
				if spec.Victim(w.Key) && w.End.After(lastRefusal) {
					lastRefusal = w.End
				}
			}
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	until := func(limit time.Duration, cond func() bool) bool {
		deadline := time.After(limit)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return true
			}
			select {
			case <-changed:
			case <-deadline:
				return false
			case <-ctx.Done():
				return false
			}
		}
	}
	finish := func() error {
		stop()
		werr := wait()
		close(writes)
		<-collected
		return werr
	}

	victims := 0
	for _, k := range spec.Keys {
		if spec.Victim(k) {
			victims++
		}
	}
	if victims == 0 {
		finish()
		return res, errors.New("clients: no key is on the victim's slots")
	}
	if !until(30*time.Second, func() bool { return len(acked) == len(spec.Keys) }) {
		werr := finish()
		return res, fmt.Errorf("%s: only %d of %d keys took a write before the kill (last error %q) %v", lib.Name, len(acked), len(spec.Keys), res.LastErr, werr)
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := spec.Kill(); err != nil {
		finish()
		return res, err
	}
	res.Recovered = until(spec.Limit, func() bool { return len(recovered) == victims })
	if err := finish(); err != nil {
		return res, err
	}
	for _, at := range recovered {
		d := at.Sub(killedAt)
		if res.First == 0 || d < res.First {
			res.First = d
		}
		res.AllKeys = max(res.AllKeys, d)
	}
	res.Outage = max(res.First, lastRefusal.Sub(killedAt))
	if !res.Recovered {
		res.AllKeys, res.Outage = spec.Limit, max(res.Outage, spec.Limit)
	}
	for key, want := range acked {
		v, err := spec.Read(ctx, key)
		got, perr := strconv.ParseInt(v, 10, 64)
		if err != nil || perr != nil || got < want {
			res.Lost = append(res.Lost, fmt.Sprintf("%s: %q (%v), last acknowledged %d", key, v, err, want))
		}
	}
	return res, nil
}
