package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClusterSlots is the number of hash slots in a Redis Cluster.
const ClusterSlots = 16384

// CreateRedisCluster joins the redis-server nodes at addrs (host:port,
// each started with RedisClusterArgs) into one cluster with replicas
// replicas per master (0: masters only), the slots split evenly over
// len(addrs)/(replicas+1) masters, using
//
//	redis-cli --cluster create addrs... --cluster-replicas N --cluster-yes
//
// The command is killed if ctx ends or timeout passes; redis-cli waits for
// the nodes to agree with no bound of its own. Its output (colour codes
// removed) is included in the error on failure.
func CreateRedisCluster(ctx context.Context, redisCLI string, addrs []string, replicas int, timeout time.Duration) error {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	cmd := exec.CommandContext(runCtx, redisCLI, args...)
	// Same process handling as redis-benchmark: its own group, killed as a
	// group, and gone if the harness dies.
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { killGroup(cmd.Process); return nil }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		if runCtx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return fmt.Errorf("%s %s: %v\n%s", redisCLI, strings.Join(args, " "), err, indent(stripANSI(out.String())))
	}
	return nil
}

// ansiRE matches the terminal colour sequences redis-cli --cluster prints.
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// indent prefixes every line of s with two spaces, for nesting command
// output in error messages.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (no output)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// ParseClusterInfo parses the "key:value" lines of CLUSTER INFO.
func ParseClusterInfo(s string) map[string]string {
	m := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID    string
	Addr  string // host:port for clients, without "@bus" or ",hostname"
	Flags []string
	// Slots is how many slots the node serves; the "[slot->-id]" and
	// "[slot-<-id]" markers of slots being migrated are not counted.
	Slots int
}

// ParseClusterNodes parses a CLUSTER NODES reply: one node per line,
//
//	<id> <ip:port@bus[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> [slot | from-to]...
func ParseClusterNodes(s string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line has %d fields, want at least 8: %q", len(f), line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n := ClusterNode{ID: f[0], Addr: addr, Flags: strings.Split(f[2], ",")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a < 0 || b < a || b >= ClusterSlots {
				return nil, fmt.Errorf("CLUSTER NODES: node %s has bad slot range %q", n.ID, r)
			}
			n.Slots += b - a + 1
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// CheckClusterView checks one node's CLUSTER INFO and CLUSTER NODES
// replies against a cluster of masters at the addresses want, and returns
// the node IDs it lists, sorted, so that callers can check that all nodes
// see the same cluster.
//
// It requires cluster_state:ok, cluster_known_nodes equal to len(want),
// and exactly one master per wanted address, each serving slots, with all
// ClusterSlots slots served. That is what redis-benchmark --cluster needs:
// it reads CLUSTER NODES once from the first node and silently skips a
// master that has no slots yet.
func CheckClusterView(info, nodes string, want []string) ([]string, error) {
	im := ParseClusterInfo(info)
	if st := im["cluster_state"]; st != "ok" {
		return nil, fmt.Errorf("cluster_state:%s", st)
	}
	if k := im["cluster_known_nodes"]; k != strconv.Itoa(len(want)) {
		return nil, fmt.Errorf("cluster_known_nodes:%s, want %d", k, len(want))
	}
	ns, err := ParseClusterNodes(nodes)
	if err != nil {
		return nil, err
	}
	if len(ns) != len(want) {
		return nil, fmt.Errorf("CLUSTER NODES lists %d nodes, want %d", len(ns), len(want))
	}
	seen := map[string]bool{}
	var ids []string
	total := 0
	for _, n := range ns {
		switch {
		case !slices.Contains(want, n.Addr):
			return nil, fmt.Errorf("CLUSTER NODES lists unexpected address %s (node %s)", n.Addr, n.ID)
		case seen[n.Addr]:
			return nil, fmt.Errorf("CLUSTER NODES lists %s twice", n.Addr)
		case !slices.Contains(n.Flags, "master"):
			return nil, fmt.Errorf("node %s (%s) is not a master: flags %s", n.Addr, n.ID, strings.Join(n.Flags, ","))
		case n.Slots == 0:
			return nil, fmt.Errorf("node %s (%s) has no slots", n.Addr, n.ID)
		}
		// Transitional states right after CLUSTER MEET or a failure.
		for _, bad := range []string{"handshake", "noaddr", "fail", "fail?"} {
			if slices.Contains(n.Flags, bad) {
				return nil, fmt.Errorf("node %s (%s) is flagged %s", n.Addr, n.ID, bad)
			}
		}
		seen[n.Addr] = true
		ids = append(ids, n.ID)
		total += n.Slots
	}
	if total != ClusterSlots {
		return nil, fmt.Errorf("CLUSTER NODES assigns %d slots, want %d", total, ClusterSlots)
	}
	slices.Sort(ids)
	return ids, nil
}

// WaitCluster polls every node with CLUSTER INFO and CLUSTER NODES until
// each passes CheckClusterView for the nodes' addresses and all list the
// same node IDs, a node exits, ctx is cancelled or timeout passes.
//
// All nodes must pass in the same pass, so a node that regresses (say,
// marks a peer as failing) restarts the wait. Polling backs off from 10ms
// to 250ms, as WaitReady does.
func WaitCluster(ctx context.Context, nodes []*Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.Addr()
	}
	delay := 10 * time.Millisecond
	var lastErr error
	var lastNode *Server
	for {
		for _, n := range nodes {
			if err := n.CheckAlive(); err != nil {
				return err
			}
		}
		node, err := clusterFormed(ctx, nodes, want)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			// An error caused by our own deadline says nothing about the
			// cluster; keep the previous, more telling one.
			lastErr, lastNode = err, node
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
			tail := ""
			if lastNode != nil {
				tail = "\n" + lastNode.LogTail(20)
			}
			return fmt.Errorf("%d-node %s cluster not formed after %v (last problem: %v)%s",
				len(nodes), nodes[0].Spec.Name, timeout, lastErr, tail)
		case <-t.C:
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// clusterFormed checks every node once; on failure it returns the node
// at fault with the error.
func clusterFormed(ctx context.Context, nodes []*Server, want []string) (*Server, error) {
	var first []string
	for _, n := range nodes {
		info, err := Command(ctx, n.Addr(), "CLUSTER", "INFO")
		if err != nil {
			return n, fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr(), err)
		}
		list, err := Command(ctx, n.Addr(), "CLUSTER", "NODES")
		if err != nil {
			return n, fmt.Errorf("%s: CLUSTER NODES: %w", n.Addr(), err)
		}
		ids, err := CheckClusterView(info, list, want)
		if err != nil {
			return n, fmt.Errorf("%s: %w", n.Addr(), err)
		}
		if first == nil {
			first = ids
		} else if !slices.Equal(ids, first) {
			return n, fmt.Errorf("%s lists node IDs %v, %s lists %v", n.Addr(), ids, nodes[0].Addr(), first)
		}
	}
	return nil, nil
}

// SumMem returns the summed current and peak RSS of servers, for a
// cluster's footprint. The peak is the sum of each process's own peak,
// which may exceed the largest total the processes ever had at once.
func SumMem(servers []*Server) (MemStat, error) {
	var total MemStat
	for _, s := range servers {
		m, err := s.Mem()
		if err != nil {
			return MemStat{}, fmt.Errorf("%s %s: %w", s.Spec.Name, s.Addr(), err)
		}
		total.RSSKiB += m.RSSKiB
		total.HWMKiB += m.HWMKiB
	}
	return total, nil
}

// InfoFields parses the "key:value" lines of an INFO reply (section
// headers and blank lines are skipped).
func InfoFields(s string) map[string]string { return ParseClusterInfo(s) }

// CheckReplicatedView checks one node's CLUSTER INFO and CLUSTER NODES
// replies against a Redis Cluster of masters masters with replicas
// (every address in want listed once, none failing or in handshake,
// masters masters covering all slots, the rest replicas).
func CheckReplicatedView(info, nodes string, want []string, masters int) error {
	im := ParseClusterInfo(info)
	if st := im["cluster_state"]; st != "ok" {
		return fmt.Errorf("cluster_state:%s", st)
	}
	if k := im["cluster_known_nodes"]; k != strconv.Itoa(len(want)) {
		return fmt.Errorf("cluster_known_nodes:%s, want %d", k, len(want))
	}
	ns, err := ParseClusterNodes(nodes)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	nm, total := 0, 0
	for _, n := range ns {
		if !slices.Contains(want, n.Addr) || seen[n.Addr] {
			return fmt.Errorf("CLUSTER NODES lists unexpected or repeated address %s", n.Addr)
		}
		seen[n.Addr] = true
		for _, bad := range []string{"handshake", "noaddr", "fail", "fail?"} {
			if slices.Contains(n.Flags, bad) {
				return fmt.Errorf("node %s is flagged %s", n.Addr, bad)
			}
		}
		if slices.Contains(n.Flags, "master") && n.Slots > 0 {
			nm++
			total += n.Slots
		}
	}
	switch {
	case len(seen) != len(want):
		return fmt.Errorf("CLUSTER NODES lists %d nodes, want %d", len(seen), len(want))
	case nm != masters:
		return fmt.Errorf("%d masters with slots, want %d", nm, masters)
	case total != ClusterSlots:
		return fmt.Errorf("masters serve %d slots, want %d", total, ClusterSlots)
	}
	return nil
}

// WaitReplicated polls until a cluster is ready to fail over: for a Redis
// Cluster (masters > 0) every node passes CheckReplicatedView and every
// replica reports master_link_status:up; for a ringcache cluster
// (masters == 0) WaitCluster's checks pass and every node is active with
// all its primary slots in sync on their replicas.
func WaitReplicated(ctx context.Context, nodes []*Server, masters int, timeout time.Duration) error {
	if masters == 0 {
		if err := WaitCluster(ctx, nodes, timeout); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.Addr()
	}
	var last error
	for {
		last = replicatedOnce(ctx, nodes, want, masters)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("cluster not ready for failover after %v: %v", timeout, last)
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func replicatedOnce(ctx context.Context, nodes []*Server, want []string, masters int) error {
	for _, n := range nodes {
		if err := n.CheckAlive(); err != nil {
			return err
		}
		if masters > 0 {
			info, err := Command(ctx, n.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			list, err := Command(ctx, n.Addr(), "CLUSTER", "NODES")
			if err != nil {
				return err
			}
			if err := CheckReplicatedView(info, list, want, masters); err != nil {
				return fmt.Errorf("%s: %w", n.Addr(), err)
			}
		}
		repl, err := Command(ctx, n.Addr(), "INFO", "replication")
		if err != nil {
			return err
		}
		f := InfoFields(repl)
		switch {
		case f["role"] == "slave" && f["master_link_status"] != "up":
			return fmt.Errorf("%s: replica link %s", n.Addr(), f["master_link_status"])
		case masters == 0 && f["ringcache_state"] != "active":
			return fmt.Errorf("%s: ringcache_state %s", n.Addr(), f["ringcache_state"])
		case masters == 0 && f["ringcache_primary_slots_all_in_sync"] != f["ringcache_primary_slots"]:
			return fmt.Errorf("%s: %s of %s primary slots in sync", n.Addr(), f["ringcache_primary_slots_all_in_sync"], f["ringcache_primary_slots"])
		}
	}
	return nil
}
