package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ModulePath is the import path of the module the benchmarks build.
const ModulePath = "github.com/ringcache/ringcache"

// ModuleRoot returns the directory of the ringcache module containing the
// current directory, as reported by `go env GOMOD`. It refuses to return a
// different module, because building ./cmd/ringcache there would silently
// benchmark the wrong thing.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; run from the ringcache repository")
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if got := modulePath(data); got != ModulePath {
		return "", fmt.Errorf("%s declares module %q, not %s; run from the ringcache repository", gomod, got, ModulePath)
	}
	return filepath.Dir(gomod), nil
}

// modulePath returns the path from the module directive of a go.mod file,
// or "" if there is none.
func modulePath(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], "\"`")
		}
	}
	return ""
}

// BuildRingcache builds ./cmd/ringcache of the module at root into out.
// The compiler's output is returned in the error so a broken tree is easy
// to diagnose.
func BuildRingcache(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/ringcache")
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/ringcache: %w\n%s", err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// GitDescribe returns `git describe --always --dirty` for dir, or "" if
// that fails (e.g. no git), so reports can say which tree was measured.
func GitDescribe(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// RedisArgs returns the redis-server arguments for a benchmark baseline:
// loopback only, no RDB snapshots and no AOF, so persistence never competes
// with the benchmark for CPU or disk, and in the foreground so the harness
// owns the process.
func RedisArgs(port int) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
	}
}

// RedisClusterArgs returns RedisArgs plus Redis Cluster mode, with the
// cluster's state file nodes.conf in the working directory and the
// cluster bus on busPort.
//
// The bus port is passed explicitly because Redis's default, port+10000,
// is out of range for the ephemeral ports above 55535 that FreePort may
// return, and may be taken by something else.
func RedisClusterArgs(port, busPort int) []string {
	return append(RedisArgs(port),
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(busPort),
	)
}

// RingcacheArgs returns the arguments for a ringcache node serving
// clients on 127.0.0.1:port and gossiping on 127.0.0.1:gossipPort, with
// its data in dir, joining the node whose gossip address is join (empty
// for the first node), followed by extra.
//
// The gossip port is passed explicitly, also for a single node, because
// ringcache's default, port+10000, is out of range for the ephemeral ports
// above 55535 that FreePort may return. extra comes last so that a
// repeated flag in it overrides these (Go's flag package keeps the last).
func RingcacheArgs(port, gossipPort int, dir, join string, extra []string) []string {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--cluster-port", strconv.Itoa(gossipPort),
		"--dir", dir,
	}
	if join != "" {
		args = append(args, "--join", join)
	}
	return append(args, extra...)
}

// SplitArgs splits s into words the way a POSIX shell would for simple
// cases: whitespace separates words, single quotes quote literally, double
// quotes quote with backslash escapes for \" and \\, and a backslash
// outside quotes escapes the next character. It exists so a flag like
// -ringcache-args "--save ” --maxmemory 1gb" can carry an empty argument.
// Variables, globs and other shell features are not supported.
func SplitArgs(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool // distinguishes an empty quoted word from no word
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && r != '"' && r != '\\' {
				// Inside double quotes only \" and \\ are escapes.
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if escaped {
		return nil, fmt.Errorf("trailing backslash in %q", s)
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
