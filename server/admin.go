package server

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

func serverCommands() []*Command {
	srv := func(name string, arity int, flags Flag, h ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagKeyless, ACL: []string{"@admin"}, Read: h}
	}
	return []*Command{
		srv("info", -1, FlagLoading|FlagStale, infoCmd),
		srv("config", -2, FlagAdmin|FlagLoading|FlagStale, configCmd),
		srv("command", -1, FlagLoading|FlagStale, commandCmd),
		srv("time", 1, FlagLoading|FlagStale|FlagFast, timeCmd),
		srv("wait", 3, 0, waitCmd),
	}
}

// TIME
func timeCmd(*Ctx) (resp.Value, error) {
	now := time.Now()
	return resp.BulkStrings(strconv.FormatInt(now.Unix(), 10), strconv.Itoa(now.Nanosecond()/1000)), nil
}

// WAIT numreplicas timeout
func waitCmd(ctx *Ctx) (resp.Value, error) {
	if _, err := intArg(ctx.Args[1]); err != nil {
		return resp.Value{}, err
	}
	t, err := intArg(ctx.Args[2])
	if err != nil {
		return resp.Value{}, err
	}
	if t < 0 {
		return resp.Value{}, resp.Error("ERR timeout is negative")
	}
	// Writes are acknowledged only once the in-sync replicas hold them, so
	// there is nothing to wait for: the count is known.
	return resp.Int(int64(ctx.c.replicaAcks)), nil
}

// INFO [section ...]
func infoCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	want := map[string]bool{}
	for _, a := range ctx.Args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := want["all"] || want["everything"]
	if len(want) == 0 || want["default"] {
		all = true
	}
	var sb strings.Builder
	for _, sec := range s.infoSections() {
		if !all && !want[strings.ToLower(sec.name)] {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString("\r\n")
		}
		sb.WriteString("# " + sec.name + "\r\n")
		for _, f := range sec.fields {
			sb.WriteString(f[0] + ":" + f[1] + "\r\n")
		}
	}
	return resp.Verbatim(sb.String()), nil
}

type infoSection struct {
	name   string
	fields [][2]string
}

func (s *Server) infoSections() []infoSection {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	uptime := time.Since(s.started)
	s.clientsMu.Lock()
	nclients := len(s.clients)
	s.clientsMu.Unlock()
	exe, _ := os.Executable()
	port := s.cfg.Port
	if s.ln != nil {
		port = s.Addr().Port
	}
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	keys := s.store.Len()
	totals := s.totals()
	sections := []infoSection{
		{"Server", [][2]string{
			{"redis_version", Version},
			{"ringcache_version", "0.1.0"},
			{"redis_mode", "cluster"},
			{"os", runtime.GOOS + " " + runtime.GOARCH},
			{"arch_bits", "64"},
			{"multiplexing_api", "goroutines"},
			{"go_version", runtime.Version()},
			{"process_id", i(int64(os.Getpid()))},
			{"run_id", s.runID},
			{"tcp_port", i(int64(port))},
			{"server_time_usec", i(time.Now().UnixMicro())},
			{"uptime_in_seconds", i(int64(uptime.Seconds()))},
			{"uptime_in_days", i(int64(uptime.Hours() / 24))},
			{"executable", exe},
			{"config_file", s.cfg.ConfigFile},
		}},
		{"Clients", [][2]string{
			{"connected_clients", i(int64(nclients))},
			{"maxclients", i(s.maxClients.Load())},
			{"blocked_clients", "0"},
			{"tracking_clients", i(s.tracking.clients.Load())},
		}},
		{"Memory", s.memoryInfo(&ms)},
		{"Persistence", [][2]string{
			{"loading", "0"},
			{"storage_engine", "badger"},
			{"storage_in_memory", boolInt(s.cfg.InMemory)},
			{"appendfsync", s.cfg.AppendFsync},
			{"rdb_bgsave_in_progress", "0"},
			{"aof_enabled", "0"},
		}},
		{"Stats", [][2]string{
			{"total_connections_received", i(s.stats.connections.Load())},
			{"total_commands_processed", i(totals[0])},
			{"rejected_connections", i(s.stats.rejected.Load())},
			{"expired_keys", i(int64(s.store.Stats().Expired))},
			{"evicted_keys", i(s.store.Evicted())},
			{"keyspace_hits", i(totals[1])},
			{"keyspace_misses", i(totals[2])},
			{"total_error_replies", i(totals[3])},
			{"forwarded_commands", i(totals[4])},
			{"topology_nudges", i(totals[5])},
			{"tracking_total_keys", i(s.tracking.total.Load())},
			{"pubsub_channels", i(int64(s.pubsub.channelCount()))},
			{"pubsub_patterns", i(int64(s.pubsub.patternCount()))},
			{"pubsubshard_channels", i(int64(s.pubsub.shardCount()))},
			{"client_output_buffer_limit_disconnections", i(s.stats.outputLimitDrops.Load())},
		}},
		{"Replication", s.replicationInfo()},
		{"CPU", [][2]string{
			{"used_cpu_sys", fmt.Sprintf("%.6f", tvSeconds(ru.Stime))},
			{"used_cpu_user", fmt.Sprintf("%.6f", tvSeconds(ru.Utime))},
		}},
		{"Cluster", [][2]string{
			{"cluster_enabled", "1"},
		}},
		{"Keyspace", nil},
	}
	if keys > 0 {
		sections[len(sections)-1].fields = [][2]string{{"db0", fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", keys, s.store.ExpiresLen())}}
	}
	return sections
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

func boolInt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	for _, u := range []string{"K", "M", "G", "T"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.2f%s", f, u)
		}
	}
	return fmt.Sprintf("%.2fP", f/unit)
}

// configParam is one CONFIG GET/SET parameter.
type configParam struct {
	name string
	get  func(s *Server) string
	set  func(s *Server, v []byte) error // nil: read-only
}

func configParams() []configParam {
	fixed := func(name, v string) configParam {
		return configParam{name: name, get: func(*Server) string { return v }}
	}
	return []configParam{
		{name: "requirepass", get: func(s *Server) string { return *s.requirePass.Load() },
			set: func(s *Server, v []byte) error { p := string(v); s.requirePass.Store(&p); return nil }},
		{name: "maxclients", get: func(s *Server) string { return itoa(s.maxClients.Load()) },
			set: func(s *Server, v []byte) error {
				n, ok := parseInt(v)
				if !ok || n < 1 {
					return resp.Error("ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be a positive integer")
				}
				s.maxClients.Store(n)
				return nil
			}},
		{name: "proto-max-bulk-len", get: func(s *Server) string { return itoa(s.protoMaxBulkLen.Load()) },
			set: func(s *Server, v []byte) error {
				n, err := parseMemory(string(v))
				if err != nil || n < 1024*1024 {
					return resp.Error("ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be a memory value of at least 1mb")
				}
				s.protoMaxBulkLen.Store(n)
				return nil
			}},
		{name: "port", get: func(s *Server) string { return strconv.Itoa(s.Addr().Port) }},
		{name: "bind", get: func(s *Server) string { return s.cfg.Bind }},
		{name: "dir", get: func(s *Server) string { return s.cfg.Dir }},
		{name: "appendfsync", get: func(s *Server) string { return s.cfg.AppendFsync }},
		fixed("appendonly", "no"),
		fixed("save", ""),
		fixed("databases", "1"),
		fixed("cluster-enabled", "yes"),
		memoryParam("maxmemory", func(m storage.MemoryConfig) string { return itoa(m.MaxMemory) },
			func(m *storage.MemoryConfig, v []byte) error {
				n, err := parseMemory(string(v))
				if err != nil {
					return errConfigSet("maxmemory", "argument must be a memory value")
				}
				m.MaxMemory = n
				return nil
			}),
		memoryParam("maxmemory-policy", func(m storage.MemoryConfig) string { return m.Policy.String() },
			func(m *storage.MemoryConfig, v []byte) error {
				p, err := storage.ParsePolicy(strings.ToLower(string(v)))
				if err != nil {
					return errConfigSet("maxmemory-policy", "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction")
				}
				m.Policy = p
				return nil
			}),
		memoryParam("maxmemory-samples", func(m storage.MemoryConfig) string { return strconv.Itoa(m.Samples) },
			intSetter("maxmemory-samples", 1, func(m *storage.MemoryConfig, n int) { m.Samples = n })),
		memoryParam("lfu-log-factor", func(m storage.MemoryConfig) string { return strconv.Itoa(m.LFULogFactor) },
			intSetter("lfu-log-factor", 0, func(m *storage.MemoryConfig, n int) { m.LFULogFactor = n })),
		memoryParam("lfu-decay-time", func(m storage.MemoryConfig) string { return strconv.Itoa(m.LFUDecayTime) },
			intSetter("lfu-decay-time", 0, func(m *storage.MemoryConfig, n int) { m.LFUDecayTime = n })),
		pubsubLimitParam(),
		trackingMaxKeysParam(),
		notifyParam(),
		fixed("timeout", "0"),
		fixed("tcp-keepalive", "300"),
		fixed("client-query-buffer-limit", "1073741824"),
		fixed("io-threads", "1"),
	}
}

// errConfigSet is Redis's refusal of a CONFIG SET value.
func errConfigSet(name, why string) error {
	return resp.Error("ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + why)
}

// memoryParam is a CONFIG parameter of the store's memory configuration.
func memoryParam(name string, get func(storage.MemoryConfig) string, set func(*storage.MemoryConfig, []byte) error) configParam {
	return configParam{
		name: name,
		get:  func(s *Server) string { return get(s.store.MemoryConfig()) },
		set: func(s *Server, v []byte) error {
			m := s.store.MemoryConfig()
			if err := set(&m, v); err != nil {
				return err
			}
			return s.store.SetMemoryConfig(m)
		},
	}
}

// intSetter parses an integer parameter of at least lo (and at most
// MaxInt32), with Redis's error text.
func intSetter(name string, lo int, set func(*storage.MemoryConfig, int)) func(*storage.MemoryConfig, []byte) error {
	return func(m *storage.MemoryConfig, v []byte) error {
		n, ok := parseInt(v)
		if !ok || n < int64(lo) || n > math.MaxInt32 {
			return errConfigSet(name, fmt.Sprintf("argument must be between %d and 2147483647 inclusive", lo))
		}
		set(m, int(n))
		return nil
	}
}

// memoryFigures are the memory figures INFO and MEMORY STATS report.
type memoryFigures struct {
	used, peak, dataset, rss int64
	stats                    storage.MemoryStats
}

// memory reads the memory figures, and moves the peak.
func (s *Server) memory() memoryFigures {
	m := memoryFigures{used: s.store.UsedMemory(), stats: s.store.MemoryStats(), rss: processRSS()}
	m.dataset = m.stats.Keyspace + m.stats.Expiry
	for {
		p := s.memPeak.Load()
		if m.used <= p || s.memPeak.CompareAndSwap(p, m.used) {
			m.peak = max(p, m.used)
			break
		}
	}
	return m
}

// memoryInfo is INFO's Memory section.
func (s *Server) memoryInfo(ms *runtime.MemStats) [][2]string {
	m := s.memory()
	cfg := s.store.MemoryConfig()
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	h := func(n int64) string { return humanBytes(uint64(max(n, 0))) }
	return [][2]string{
		{"used_memory", i(m.used)},
		{"used_memory_human", h(m.used)},
		{"used_memory_rss", i(m.rss)},
		{"used_memory_rss_human", h(m.rss)},
		{"used_memory_peak", i(m.peak)},
		{"used_memory_peak_human", h(m.peak)},
		{"used_memory_dataset", i(m.dataset)},
		{"total_system_memory", i(systemMemory())},
		{"total_system_memory_human", h(systemMemory())},
		{"maxmemory", i(cfg.MaxMemory)},
		{"maxmemory_human", h(cfg.MaxMemory)},
		{"maxmemory_policy", cfg.Policy.String()},
		{"allocator_frag_ratio", fmt.Sprintf("%.2f", ratio(m.stats.Mapped, m.stats.Keyspace))},
		{"mem_fragmentation_ratio", fmt.Sprintf("%.2f", ratio(m.rss, m.used))},
		{"mem_fragmentation_bytes", i(m.rss - m.used)},
		{"mem_not_counted_for_evict", i(m.stats.Persistence)},
		{"mem_aof_buffer", i(m.stats.Unpersisted)},
		{"mem_allocator", "ringcache-arena"},
		{"ringcache_keyspace_bytes", i(m.stats.Keyspace)},
		{"ringcache_keyspace_mapped", i(m.stats.Mapped)},
		{"ringcache_tombstone_bytes", i(m.stats.Tombstones)},
		{"ringcache_expiry_bytes", i(m.stats.Expiry)},
		{"ringcache_unpersisted_bytes", i(m.stats.Unpersisted)},
		{"ringcache_go_heap_bytes", i(int64(ms.HeapAlloc))},
		{"ringcache_go_sys_bytes", i(int64(ms.Sys))},
	}
}

// CONFIG GET parameter [parameter ...] / CONFIG SET parameter value [...] /
// CONFIG RESETSTAT
func configCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	args := ctx.Args
	sub := strings.ToLower(string(args[1]))
	params := configParams()
	switch sub {
	case "get":
		if len(args) < 3 {
			return resp.Value{}, resp.ErrSubArity("config", "get")
		}
		var out []resp.Value
		for _, p := range params {
			for _, pat := range args[2:] {
				if Match(pat, []byte(p.name), true) {
					out = append(out, resp.BulkString(p.name), resp.BulkString(p.get(s)))
					break
				}
			}
		}
		return resp.Map(out...), nil
	case "set":
		if len(args) < 4 || len(args)%2 != 0 {
			return resp.Value{}, resp.ErrSubArity("config", "set")
		}
		for i := 2; i < len(args); i += 2 {
			name := strings.ToLower(string(args[i]))
			idx := slices.IndexFunc(params, func(p configParam) bool { return p.name == name })
			if idx < 0 || params[idx].set == nil {
				return resp.Value{}, resp.Error("ERR Unknown option or number of arguments for CONFIG SET - '" + string(args[i]) + "'")
			}
			if err := params[idx].set(s, args[i+1]); err != nil {
				return resp.Value{}, err
			}
		}
		return resp.OK, nil
	case "resetstat":
		s.resetStats()
		return resp.OK, nil
	case "rewrite":
		if s.cfg.ConfigFile != "" {
			return resp.Value{}, resp.Error("ERR CONFIG REWRITE is not supported; edit " + s.cfg.ConfigFile)
		}
		return resp.Value{}, resp.Error("ERR The server is running without a config file")
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("config", string(args[1]))
}

// parseMemory parses Redis memory values: 100, 1k, 1kb, 5mb, 1gb.
func parseMemory(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid memory value %q", s)
	}
	return n * mult, nil
}

// ParseMemory is parseMemory for cmd/ringcache's flags.
func ParseMemory(s string) (int64, error) { return parseMemory(s) }

func (s *Server) replicationInfo() [][2]string {
	if s.repl == nil {
		return [][2]string{{"role", "master"}, {"connected_slaves", "0"}}
	}
	return s.repl.Info()
}
