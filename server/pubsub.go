package server

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
)

// Pub/Sub as Redis Cluster serves it: PUBLISH reaches the subscribers of
// every node (the node a client publishes to delivers to its own and
// sends the message to every other node over the forwarding links, in
// order per node); sharded channels (SSUBSCRIBE, SPUBLISH) live with
// their slot, on its primary, which answers MOVED for them to cluster
// clients. For clients that do not follow redirects a node subscribes
// them to a shard channel locally and forwards their SPUBLISH to the
// slot's primary, which delivers to its subscribers and sends the message
// on to the other nodes for theirs (not Redis Cluster's saving of
// traffic, but no lost message for a client that cannot follow MOVED).

// pubsubCmd is the internal command that carries a published message to
// the other nodes: kind ("message" or "smessage"), channel, message.
const pubsubCmd = "ringcache.publish"

// pubsubHub holds a node's subscriptions.
type pubsubHub struct {
	mu       sync.RWMutex
	channels map[string]map[*client]bool
	patterns map[string]map[*client]bool
	shards   map[string]map[*client]bool
}

func (h *pubsubHub) channelCount() int { h.mu.RLock(); defer h.mu.RUnlock(); return len(h.channels) }
func (h *pubsubHub) patternCount() int { h.mu.RLock(); defer h.mu.RUnlock(); return len(h.patterns) }
func (h *pubsubHub) shardCount() int   { h.mu.RLock(); defer h.mu.RUnlock(); return len(h.shards) }

// subscriptions are a client's, touched only by its own goroutine (the
// hub has them too, under its lock, for publishers).
type subscriptions struct {
	channels map[string]struct{}
	patterns map[string]struct{}
	shards   map[string]struct{}
}

func (s *subscriptions) count() int { return len(s.channels) + len(s.patterns) }

func (s *subscriptions) any() bool {
	return len(s.channels)+len(s.patterns)+len(s.shards) > 0
}

// outputLimit is client-output-buffer-limit for pubsub clients: a client
// with more than hard bytes of messages waiting, or more than soft bytes
// for softFor, is disconnected.
type outputLimit struct {
	hard, soft int64
	softFor    time.Duration
}

// defaultPubsubLimit is Redis's: pubsub 32mb 8mb 60.
var defaultPubsubLimit = outputLimit{hard: 32 << 20, soft: 8 << 20, softFor: 60 * time.Second}

func pubsubCommands() []*Command {
	ps := []string{"@pubsub", "@slow"}
	c := func(name string, arity int, flags Flag, h ReadHandler) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagKeyless | FlagLoading | FlagStale, ACL: ps, Read: h}
	}
	shard := func(name string, arity int, last int, h ReadHandler, flags Flag) *Command {
		return &Command{Name: name, Arity: arity, Flags: flags | FlagLoading | FlagStale, FirstKey: 1, LastKey: last, KeyStep: 1, ACL: ps, Read: h}
	}
	return []*Command{
		c("subscribe", -2, 0, subscribeCmd),
		c("psubscribe", -2, 0, psubscribeCmd),
		c("unsubscribe", -1, 0, unsubscribeCmd),
		c("punsubscribe", -1, 0, punsubscribeCmd),
		c("publish", 3, FlagFast, publishCmd),
		c("pubsub", -2, 0, pubsubInfoCmd),
		shard("ssubscribe", -2, -1, ssubscribeCmd, FlagServedHere),
		// SUNSUBSCRIBE takes its channels as keys in Redis too, but with
		// none it leaves every shard channel: route only what it names.
		shard("sunsubscribe", -1, -1, sunsubscribeCmd, FlagServedHere),
		shard("spublish", 3, 1, spublishCmd, FlagFast),
		{Name: pubsubCmd, Arity: 4, Flags: FlagInternal | FlagKeyless | FlagLoading | FlagStale, Read: peerPublishCmd},
	}
}

// subscribedCommands are what a RESP2 connection may send while it has
// subscriptions.
var subscribedCommands = map[string]bool{
	"subscribe": true, "psubscribe": true, "ssubscribe": true,
	"unsubscribe": true, "punsubscribe": true, "sunsubscribe": true,
	"ping": true, "quit": true, "reset": true,
}

// errSubscribedContext is Redis's refusal of other commands in RESP2's
// subscribed state.
func errSubscribedContext(name string) error {
	return resp.Error("ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}

// subscribeKind names a family of subscriptions.
type subscribeKind struct {
	sub, unsub string // the confirmations' names
	hub        func(h *pubsubHub) *map[string]map[*client]bool
	own        func(s *subscriptions) *map[string]struct{}
	shard      bool
}

var (
	channelKind = subscribeKind{"subscribe", "unsubscribe",
		func(h *pubsubHub) *map[string]map[*client]bool { return &h.channels },
		func(s *subscriptions) *map[string]struct{} { return &s.channels }, false}
	patternKind = subscribeKind{"psubscribe", "punsubscribe",
		func(h *pubsubHub) *map[string]map[*client]bool { return &h.patterns },
		func(s *subscriptions) *map[string]struct{} { return &s.patterns }, false}
	shardKind = subscribeKind{"ssubscribe", "sunsubscribe",
		func(h *pubsubHub) *map[string]map[*client]bool { return &h.shards },
		func(s *subscriptions) *map[string]struct{} { return &s.shards }, true}
)

// countFor is the count a confirmation carries: channels and patterns
// together, shard channels on their own, as Redis counts them.
func (c *client) countFor(k subscribeKind) int64 {
	if k.shard {
		return int64(len(c.subs.shards))
	}
	return int64(c.subs.count())
}

// subscribe adds c to names and returns the confirmations.
func (c *client) subscribe(k subscribeKind, names [][]byte) resp.Value {
	h := &c.srv.pubsub
	c.enablePush()
	own := k.own(&c.subs)
	if *own == nil {
		*own = map[string]struct{}{}
	}
	var out []byte
	for _, n := range names {
		name := string(n)
		if _, had := (*own)[name]; !had {
			(*own)[name] = struct{}{}
			h.mu.Lock()
			m := k.hub(h)
			if *m == nil {
				*m = map[string]map[*client]bool{}
			}
			set := (*m)[name]
			if set == nil {
				set = map[*client]bool{}
				(*m)[name] = set
			}
			// Whether the subscription moves with its slot: a cluster
			// client's on the primary (a replica's READONLY subscribers
			// stay, SPUBLISH reaches every node).
			set[c] = k.shard && c.aware && !c.readonly
			h.mu.Unlock()
		}
		out = resp.Append(out, resp.Push(resp.BulkString(k.sub), resp.Bulk(n), resp.Int(c.countFor(k))), c.proto)
	}
	c.subscribed.Store(c.subs.any())
	return resp.Raw(out)
}

// unsubscribe removes c from names (from all with none) and returns the
// confirmations.
func (c *client) unsubscribe(k subscribeKind, names [][]byte) resp.Value {
	own := k.own(&c.subs)
	if len(names) == 0 {
		for name := range *own {
			names = append(names, []byte(name))
		}
		slices.SortFunc(names, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	}
	var out []byte
	if len(names) == 0 {
		return resp.Push(resp.BulkString(k.unsub), resp.Null, resp.Int(c.countFor(k)))
	}
	for _, n := range names {
		c.leave(k, string(n))
		out = resp.Append(out, resp.Push(resp.BulkString(k.unsub), resp.Bulk(n), resp.Int(c.countFor(k))), c.proto)
	}
	return resp.Raw(out)
}

// leave removes one subscription of c.
func (c *client) leave(k subscribeKind, name string) {
	own := k.own(&c.subs)
	if _, had := (*own)[name]; !had {
		return
	}
	delete(*own, name)
	c.subscribed.Store(c.subs.any())
	h := &c.srv.pubsub
	h.mu.Lock()
	m := k.hub(h)
	if set := (*m)[name]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(*m, name)
		}
	}
	h.mu.Unlock()
}

// leaveAll drops every subscription of c (its connection closed, RESET).
func (c *client) leaveAll() {
	for _, k := range []subscribeKind{channelKind, patternKind, shardKind} {
		for name := range *k.own(&c.subs) {
			c.leave(k, name)
		}
	}
}

func subscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.subscribe(channelKind, ctx.Args[1:]), nil
}

func psubscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.subscribe(patternKind, ctx.Args[1:]), nil
}

func ssubscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.subscribe(shardKind, ctx.Args[1:]), nil
}

func unsubscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.unsubscribe(channelKind, ctx.Args[1:]), nil
}

func punsubscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.unsubscribe(patternKind, ctx.Args[1:]), nil
}

func sunsubscribeCmd(ctx *Ctx) (resp.Value, error) {
	return ctx.c.unsubscribe(shardKind, ctx.Args[1:]), nil
}

// PUBLISH channel message: delivered here and sent to every other node.
// The count is this node's receivers, as in Redis Cluster.
func publishCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	n := s.deliver(false, ctx.Args[1], ctx.Args[2])
	s.broadcastMessage("message", ctx.Args[1], ctx.Args[2])
	return resp.Int(n), nil
}

// SPUBLISH shardchannel message, on the slot's primary (route sends it
// there): delivered to its shard subscribers, and to the other nodes' for
// the clients subscribed there that do not follow redirects.
func spublishCmd(ctx *Ctx) (resp.Value, error) {
	s := ctx.srv
	n := s.deliver(true, ctx.Args[1], ctx.Args[2])
	s.broadcastMessage("smessage", ctx.Args[1], ctx.Args[2])
	return resp.Int(n), nil
}

// peerPublishCmd delivers a message another node published.
func peerPublishCmd(ctx *Ctx) (resp.Value, error) {
	n := ctx.srv.deliver(is(ctx.Args[1], "SMESSAGE"), ctx.Args[2], ctx.Args[3])
	return resp.Int(n), nil
}

// broadcastMessage sends a published message to every other active node.
// Nobody waits for the replies: a node that misses it (down, or its link
// broken) misses it, as a Redis Cluster node cut off from the bus does.
func (s *Server) broadcastMessage(kind string, channel, msg []byte) {
	if s.repl == nil {
		return
	}
	args := [][]byte{[]byte(pubsubCmd), []byte(kind), channel, msg}
	for _, m := range s.topo.Ring().Members() {
		if m.ID != s.selfID {
			s.repl.Forward(m, args)
		}
	}
}

// deliver sends a message to this node's subscribers of channel (shard
// subscribers with shard) and returns how many got it.
func (s *Server) deliver(shard bool, channel, msg []byte) int64 {
	h := &s.pubsub
	var enc encodedPush
	var n int64
	h.mu.RLock()
	defer h.mu.RUnlock()
	if shard {
		enc.v = resp.Push(resp.BulkString("smessage"), resp.Bulk(channel), resp.Bulk(msg))
		for c := range h.shards[string(channel)] {
			c.pushEncoded(&enc)
			n++
		}
		return n
	}
	enc.v = resp.Push(resp.BulkString("message"), resp.Bulk(channel), resp.Bulk(msg))
	for c := range h.channels[string(channel)] {
		c.pushEncoded(&enc)
		n++
	}
	for pat, set := range h.patterns {
		if !Match([]byte(pat), channel, false) {
			continue
		}
		pm := encodedPush{v: resp.Push(resp.BulkString("pmessage"), resp.BulkString(pat), resp.Bulk(channel), resp.Bulk(msg))}
		for c := range set {
			c.pushEncoded(&pm)
			n++
		}
	}
	return n
}

// encodedPush is a message encoded once per protocol, for many receivers.
type encodedPush struct {
	v            resp.Value
	resp2, resp3 []byte
}

func (e *encodedPush) bytes(proto int32) []byte {
	if proto >= 3 {
		if e.resp3 == nil {
			e.resp3 = resp.Append(nil, e.v, 3)
		}
		return e.resp3
	}
	if e.resp2 == nil {
		e.resp2 = resp.Append(nil, e.v, 2)
	}
	return e.resp2
}

// enablePush makes c's connection take pushes, from its own pipeline.
func (c *client) enablePush() {
	if c.push != nil {
		c.push.enable(true)
	}
}

// pushEncoded queues a message for c, within its output limit.
func (c *client) pushEncoded(e *encodedPush) {
	if c.push == nil {
		return
	}
	if !c.push.push(e.bytes(c.shownProto.Load()), c.srv.pubsubLimits.Load()) {
		c.srv.stats.outputLimitDrops.Add(1)
	}
}

// PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP: this
// node's subscriptions, as in Redis Cluster.
func pubsubInfoCmd(ctx *Ctx) (resp.Value, error) {
	h := &ctx.srv.pubsub
	args := ctx.Args
	sub := strings.ToLower(string(args[1]))
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := func(m map[string]map[*client]bool) (resp.Value, error) {
		if len(args) > 3 {
			return resp.Value{}, resp.ErrSubArity("pubsub", sub)
		}
		var out []resp.Value
		for name := range m {
			if len(args) == 3 && !Match(args[2], []byte(name), false) {
				continue
			}
			out = append(out, resp.BulkString(name))
		}
		return resp.Array(out...), nil
	}
	counts := func(m map[string]map[*client]bool) (resp.Value, error) {
		out := make([]resp.Value, 0, 2*(len(args)-2))
		for _, name := range args[2:] {
			out = append(out, resp.Bulk(name), resp.Int(int64(len(m[string(name)]))))
		}
		return resp.Array(out...), nil
	}
	switch sub {
	case "channels":
		return names(h.channels)
	case "shardchannels":
		return names(h.shards)
	case "numsub":
		return counts(h.channels)
	case "shardnumsub":
		return counts(h.shards)
	case "numpat":
		if len(args) != 2 {
			return resp.Value{}, resp.ErrSubArity("pubsub", sub)
		}
		return resp.Int(int64(len(h.patterns))), nil
	case "help":
		return resp.BulkStrings(
			"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"CHANNELS [<pattern>]", "    Return the currently active channels matching a <pattern> (default: '*').",
			"NUMPAT", "    Return number of subscriptions to patterns.",
			"NUMSUB [<channel> ...]", "    Return the number of subscribers for the specified channels, excluding",
			"    pattern subscriptions(default: no channels).",
			"SHARDCHANNELS [<pattern>]", "    Return the currently active shard level channels matching a <pattern> (default: '*').",
			"SHARDNUMSUB [<shardchannel> ...]", "    Return the number of subscribers for the specified shard level channel(s)",
		), nil
	}
	return resp.Value{}, resp.ErrUnknownSubcommand("pubsub", string(args[1]))
}

// dropMovedShardSubscriptions tells the clients that follow redirects and
// are subscribed to shard channels of slots this node no longer serves
// that they are unsubscribed (a "sunsubscribe" push, as Redis 7 sends
// when a slot moves), so they subscribe again on the new primary.
func (s *Server) dropMovedShardSubscriptions() {
	if s.repl == nil {
		return
	}
	h := &s.pubsub
	type drop struct {
		c    *client
		name string
	}
	var drops []drop
	h.mu.Lock()
	for name, set := range h.shards {
		if _, ok, _, _ := s.repl.Route(cluster.KeySlot([]byte(name))); ok {
			continue
		}
		for c, moves := range set {
			if moves {
				delete(set, c)
				drops = append(drops, drop{c, name})
			}
		}
		if len(set) == 0 {
			delete(h.shards, name)
		}
	}
	h.mu.Unlock()
	for _, d := range drops {
		// The client's own map is its goroutine's: it learns of the drop
		// from the push and the hub no longer delivers to it; its next
		// SSUBSCRIBE or SUNSUBSCRIBE of the name fixes its own map.
		enc := encodedPush{v: resp.Push(resp.BulkString("sunsubscribe"), resp.BulkString(d.name), resp.Int(0))}
		d.c.pushEncoded(&enc)
	}
}

// pubsubLimitParam is CONFIG's client-output-buffer-limit: only the
// pubsub class applies (normal clients are bounded by their pipeline,
// replicas by the replication link's own window).
func pubsubLimitParam() configParam {
	return configParam{name: "client-output-buffer-limit",
		get: func(s *Server) string {
			l := s.pubsubLimits.Load()
			return "normal 0 0 0 slave 268435456 67108864 60 pubsub " + itoa(l.hard) + " " + itoa(l.soft) + " " + itoa(int64(l.softFor/time.Second))
		},
		set: func(s *Server, v []byte) error {
			f := strings.Fields(string(v))
			if len(f)%4 != 0 || len(f) == 0 {
				return errConfigSet("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration.")
			}
			l := *s.pubsubLimits.Load()
			for i := 0; i < len(f); i += 4 {
				class := strings.ToLower(f[i])
				hard, err1 := parseMemory(f[i+1])
				soft, err2 := parseMemory(f[i+2])
				secs, err3 := strconv.ParseInt(f[i+3], 10, 64)
				switch {
				case class != "normal" && class != "slave" && class != "replica" && class != "pubsub":
					return errConfigSet("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration.")
				case err1 != nil || err2 != nil || err3 != nil || secs < 0:
					return errConfigSet("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration.")
				case class == "pubsub":
					l = outputLimit{hard: hard, soft: soft, softFor: time.Duration(secs) * time.Second}
				}
			}
			s.pubsubLimits.Store(&l)
			return nil
		}}
}
