package server

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// Topology is what the server needs of the cluster: the ring, this node,
// and the members to describe.
type Topology interface {
	Ring() *cluster.Ring
	Self() cluster.Meta
	Epoch() uint64
	Members() []cluster.Meta
}

func clusterCommands() []*Command {
	return []*Command{{Name: "cluster", Arity: -2, Flags: FlagKeyless | FlagLoading | FlagStale, ACL: []string{"@admin"}, Read: clusterCmd}}
}

// Redirect-like errors clients retry on.
var (
	errClusterDown = resp.Error("CLUSTERDOWN Hash slot not served")
	errTryAgain    = resp.Error("TRYAGAIN Slot is being taken over after a failover, try again")
)

// moved is the redirect to the owner of slot.
func moved(slot uint16, addr string) error {
	return resp.Error("MOVED " + strconv.Itoa(int(slot)) + " " + addr)
}

// CLUSTER SLOTS | SHARDS | NODES | INFO | MYID | KEYSLOT key |
// COUNTKEYSINSLOT slot | GETKEYSINSLOT slot count
func clusterCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	args := ctx.Args
	sub := strings.ToLower(string(args[1]))
	arity := func(n int) error { return subArity(args, n, "cluster", sub) }
	topo := s.topo
	switch sub {
	case "slots", "shards", "nodes":
		// A client that asks for the topology follows redirects.
		ctx.c.markFollows()
	}
	switch sub {
	case "slots":
		return clusterSlots(topo.Ring()), arity(2)
	case "shards":
		return clusterShards(topo), arity(2)
	case "nodes":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return resp.Verbatim(clusterNodes(topo)), nil
	case "info":
		if err := arity(2); err != nil {
			return resp.Value{}, err
		}
		return resp.Verbatim(clusterInfo(topo)), nil
	case "myid":
		return resp.BulkString(topo.Self().ID), arity(2)
	case "myshardid":
		return resp.BulkString(topo.Self().ID), arity(2)
	case "keyslot":
		if err := arity(3); err != nil {
			return resp.Value{}, err
		}
		return resp.Int(int64(cluster.KeySlot(args[2]))), nil
	case "countkeysinslot":
		if err := arity(3); err != nil {
			return resp.Value{}, err
		}
		slot, err := slotArg(args[2])
		if err != nil {
			return resp.Value{}, err
		}
		return resp.Int(s.store.CountSlot(slot)), nil
	case "getkeysinslot":
		if err := arity(4); err != nil {
			return resp.Value{}, err
		}
		slot, err := slotArg(args[2])
		if err != nil {
			return resp.Value{}, err
		}
		n, ok := parseInt(args[3])
		if !ok || n < 0 {
			return resp.Value{}, resp.Error("ERR Invalid number of keys")
		}
		keys := []resp.Value{}
		err = s.store.ScanSlot(slot, nil, func(key []byte, _ storage.Record) bool {
			if int64(len(keys)) >= n {
				return false
			}
			keys = append(keys, resp.BulkString(string(key)))
			return true
		})
		return resp.Array(keys...), err
	case "help":
		return resp.BulkStrings(
			"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"SLOTS", "SHARDS", "NODES", "INFO", "MYID", "KEYSLOT <key>",
			"COUNTKEYSINSLOT <slot>", "GETKEYSINSLOT <slot> <count>",
		), nil
	case "meet", "addslots", "addslotsrange", "delslots", "delslotsrange", "setslot", "forget", "replicate", "failover", "reset", "flushslots":
		return resp.Value{}, resp.Error("ERR CLUSTER " + strings.ToUpper(sub) + " is not supported: ringcache places slots on its consistent-hash ring by itself")
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("cluster", string(args[1]))
}

func slotArg(b []byte) (uint16, error) {
	n, ok := parseInt(b)
	if !ok || n < 0 || n >= cluster.SlotCount {
		return 0, resp.Error("ERR Invalid or out of range slot")
	}
	return uint16(n), nil
}

// splitAddr splits ip:port, for replies that carry them apart.
func splitAddr(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// clusterSlots is CLUSTER SLOTS: ascending ranges, each with its nodes as
// [ip, port, id, {}], primary first.
func clusterSlots(r *cluster.Ring) resp.Value {
	var out []resp.Value
	for _, rg := range r.Ranges() {
		if len(rg.Nodes) == 0 {
			continue // Not served: Redis leaves such slots out.
		}
		entry := []resp.Value{resp.Int(int64(rg.Start)), resp.Int(int64(rg.End))}
		for _, m := range rg.Nodes {
			ip, port := splitAddr(m.Addr)
			entry = append(entry, resp.Array(resp.BulkString(ip), resp.Int(int64(port)), resp.BulkString(m.ID), resp.Map()))
		}
		out = append(out, resp.Array(entry...))
	}
	return resp.Array(out...)
}

// clusterShards is CLUSTER SHARDS: one shard per primary, with its slot
// ranges as start/end pairs.
func clusterShards(topo Topology) resp.Value {
	r := topo.Ring()
	var out []resp.Value
	for _, m := range r.Members() {
		var slots []resp.Value
		for _, rg := range r.PrimarySlots(m.ID) {
			slots = append(slots, resp.Int(int64(rg.Start)), resp.Int(int64(rg.End)))
		}
		ip, port := splitAddr(m.Addr)
		node := resp.Map(
			resp.BulkString("id"), resp.BulkString(m.ID),
			resp.BulkString("port"), resp.Int(int64(port)),
			resp.BulkString("ip"), resp.BulkString(ip),
			resp.BulkString("endpoint"), resp.BulkString(ip),
			resp.BulkString("role"), resp.BulkString("master"),
			resp.BulkString("replication-offset"), resp.Int(0),
			resp.BulkString("health"), resp.BulkString("online"),
		)
		out = append(out, resp.Map(
			resp.BulkString("slots"), resp.Array(slots...),
			resp.BulkString("nodes"), resp.Array(node),
		))
	}
	return resp.Array(out...)
}

// clusterNodes is CLUSTER NODES: a master line per ring member with its
// primary ranges, "myself" on this node's own line.
func clusterNodes(topo Topology) string {
	r := topo.Ring()
	self := topo.Self()
	alive := map[string]bool{}
	for _, m := range topo.Members() {
		alive[m.ID] = true
	}
	var sb strings.Builder
	for i, m := range r.Members() {
		// Config epochs must be distinct per master and the same on every
		// node: the member's rank on the ring is both.
		epoch := i + 1
		flags, link := "master", "connected"
		switch {
		case m.ID == self.ID:
			flags = "myself,master"
		case !alive[m.ID]:
			// Failed, and kept on the ring for its grace period.
			flags, link = "master,fail", "disconnected"
		}
		fmt.Fprintf(&sb, "%s %s@%d %s - 0 0 %d %s", m.ID, m.Addr, m.Bus, flags, epoch, link)
		for _, rg := range r.PrimarySlots(m.ID) {
			if rg.Start == rg.End {
				fmt.Fprintf(&sb, " %d", rg.Start)
			} else {
				fmt.Fprintf(&sb, " %d-%d", rg.Start, rg.End)
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// myEpoch is the config epoch CLUSTER NODES gives node id.
func myEpoch(r *cluster.Ring, id string) int {
	for i, m := range r.Members() {
		if m.ID == id {
			return i + 1
		}
	}
	return 0
}

func clusterInfo(topo Topology) string {
	r := topo.Ring()
	assigned := 0
	for _, rg := range r.Ranges() {
		if len(rg.Nodes) > 0 {
			assigned += int(rg.End-rg.Start) + 1
		}
	}
	state := "ok"
	if assigned < cluster.SlotCount {
		state = "fail"
	}
	n := r.Len()
	lines := []string{
		"cluster_state:" + state,
		"cluster_slots_assigned:" + strconv.Itoa(assigned),
		"cluster_slots_ok:" + strconv.Itoa(assigned),
		"cluster_slots_pfail:0",
		"cluster_slots_fail:0",
		"cluster_known_nodes:" + strconv.Itoa(len(topo.Members())),
		"cluster_size:" + strconv.Itoa(n),
		"cluster_current_epoch:" + strconv.Itoa(n),
		"cluster_my_epoch:" + strconv.Itoa(myEpoch(r, topo.Self().ID)),
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}
