package server

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/storage"
)

// Client-side caching as Redis 6+ serves it (CLIENT TRACKING): the node
// remembers which connection read which key and tells it, with an
// "invalidate" push (RESP3) or a message on __redis__:invalidate to the
// connection it redirects to (RESP2), when the key may have changed. The
// changes come from the store's change handler, which runs in the
// committer after a batch is applied and before its writes are
// acknowledged, so every cached copy is told before anyone learns of the
// new value: writes from any client, writes applied as a replica, expiry,
// eviction, FLUSHALL (a null invalidation), and slots this node stops
// serving (failover, join, leave), checked at each placement change.
//
// A key's reader is recorded before the key is read, so that a write
// between the two still invalidates. The invalidation of a key read in a
// pipeline waits for that pipeline's replies (pushConn), so the reply
// with the old value never arrives after its invalidation. Reads this
// node forwards to another are not tracked there: the node invalidates
// them right after their reply, so a client that does not follow
// redirects caches nothing it would not be told about.

// trackingShards is how many locks the table of tracked keys is cut into.
const trackingShards = 64

// defaultTrackingMaxKeys is tracking-table-max-keys's default, Redis's.
const defaultTrackingMaxKeys = 1_000_000

// trackingTable holds the keys read by tracking connections.
type trackingTable struct {
	shards  [trackingShards]trackingShard
	total   atomic.Int64 // keys in the table
	maxKeys atomic.Int64 // tracking-table-max-keys; 0: no limit
	clients atomic.Int64 // connections with tracking on

	bmu   sync.RWMutex
	bcast map[*client][]string // BCAST connections and their prefixes
}

type trackingShard struct {
	mu   sync.Mutex
	keys map[string]*trackedKey
}

type trackedKey struct {
	slot    uint16
	readers map[*client]struct{}
}

// trackOpts is a connection's tracking mode, replaced as a whole by
// CLIENT TRACKING, read by whoever sends it invalidations.
type trackOpts struct {
	bcast, optin, optout, noloop bool
	redirect                     int64
	prefixes                     []string
}

// caching values of CLIENT CACHING.
const (
	cachingNone int8 = iota
	cachingYes
	cachingNo
)

// tracksRead reports whether a read by c now is tracked.
func (c *client) tracksRead() bool {
	o := c.tracking.Load()
	switch {
	case o == nil || o.bcast:
		return false
	case o.optin:
		return c.cachingNow == cachingYes
	case o.optout:
		return c.cachingNow != cachingNo
	}
	return true
}

// beginCommand moves the CLIENT CACHING choice to the command it is for:
// the next one, or with MULTI the whole transaction.
func (c *client) beginCommand(cmd *Command) {
	if cmd.Name == "client" || c.multi != nil || c.inExec {
		return
	}
	c.cachingNow, c.cachingNext = c.cachingNext, cachingNone
}

// trackKeys records c as a reader of the command's keys, before it reads
// them.
func (s *Server) trackKeys(c *client, cmd *Command, args [][]byte) {
	cmd.keyPositions(args, func(i int) {
		s.tracking.track(c, cluster.KeySlot(args[i]), args[i])
	})
}

func (t *trackingTable) track(c *client, slot uint16, key []byte) {
	sh := &t.shards[slot%trackingShards]
	sh.mu.Lock()
	if sh.keys == nil {
		sh.keys = map[string]*trackedKey{}
	}
	tk := sh.keys[string(key)]
	if tk == nil {
		tk = &trackedKey{slot: slot, readers: map[*client]struct{}{}}
		sh.keys[string(key)] = tk
		t.total.Add(1)
	}
	tk.readers[c] = struct{}{}
	var evicted []evictedKey
	if max := t.maxKeys.Load(); max > 0 && t.total.Load() > max {
		// Over tracking-table-max-keys: forget some other keys of the
		// shard, invalidating them, as Redis does.
		for k, other := range sh.keys {
			if k == string(key) {
				continue
			}
			delete(sh.keys, k)
			t.total.Add(-1)
			evicted = append(evicted, evictedKey{k, other})
			if t.total.Load() <= max || len(evicted) >= 16 {
				break
			}
		}
	}
	sh.mu.Unlock()
	for _, e := range evicted {
		for r := range e.tk.readers {
			r.srv.invalidate(r, []byte(e.key), 0)
		}
	}
}

type evictedKey struct {
	key string
	tk  *trackedKey
}

// keysChanged is the store's change handler: it publishes the batch's
// keyspace notifications (notify.go) and invalidates the keys it changed.
func (s *Server) keysChanged(ch storage.Change) {
	s.notifyChanged(ch)
	t := &s.tracking
	if t.clients.Load() == 0 {
		return
	}
	if ch.Cause == storage.CauseFlushed {
		if ch.Slot < 0 {
			s.invalidateAll()
		} else {
			s.invalidateSlots(func(slot uint16) bool { return int(slot) == ch.Slot })
		}
		return
	}
	t.bmu.RLock()
	bcast := len(t.bcast) > 0
	t.bmu.RUnlock()
	for i := range ch.Muts {
		m := &ch.Muts[i]
		sh := &t.shards[m.Slot%trackingShards]
		sh.mu.Lock()
		tk := sh.keys[string(m.Key)]
		if tk != nil {
			delete(sh.keys, string(m.Key))
			t.total.Add(-1)
		}
		sh.mu.Unlock()
		if tk != nil {
			for r := range tk.readers {
				s.invalidate(r, m.Key, ch.Origin)
			}
		}
		if bcast {
			s.invalidateBroadcast(m.Key, ch.Origin)
		}
	}
}

func (s *Server) invalidateBroadcast(key []byte, origin int64) {
	t := &s.tracking
	t.bmu.RLock()
	defer t.bmu.RUnlock()
	for c, prefixes := range t.bcast {
		for _, p := range prefixes {
			if strings.HasPrefix(string(key), p) {
				s.invalidate(c, key, origin)
				break
			}
		}
	}
}

// invalidateAll tells every tracking connection that everything changed
// (a null invalidation) and empties the table: a FLUSHALL.
func (s *Server) invalidateAll() {
	t := &s.tracking
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		t.total.Add(-int64(len(sh.keys)))
		sh.keys = nil
		sh.mu.Unlock()
	}
	s.clientsMu.Lock()
	var targets []*client
	for _, c := range s.clients {
		if c.tracking.Load() != nil {
			targets = append(targets, c)
		}
	}
	s.clientsMu.Unlock()
	for _, c := range targets {
		s.invalidate(c, nil, 0)
	}
}

// invalidateSlots invalidates every tracked key of the slots gone says
// are no longer this node's to serve.
func (s *Server) invalidateSlots(gone func(slot uint16) bool) {
	t := &s.tracking
	if t.total.Load() == 0 {
		return
	}
	var drops []evictedKey
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, tk := range sh.keys {
			if gone(tk.slot) {
				delete(sh.keys, k)
				t.total.Add(-1)
				drops = append(drops, evictedKey{k, tk})
			}
		}
		sh.mu.Unlock()
	}
	for _, d := range drops {
		for r := range d.tk.readers {
			s.invalidate(r, []byte(d.key), 0)
		}
	}
}

// invalidateMovedSlots invalidates the keys tracked in slots this node
// no longer serves to the connections that read them.
func (s *Server) invalidateMovedSlots() {
	if s.repl == nil {
		return
	}
	// Keys read as a replica (READONLY) of a slot the node still holds
	// are invalidated too: more than needed, never less.
	s.invalidateSlots(func(slot uint16) bool {
		_, ok, _, _ := s.repl.Route(slot)
		return !ok
	})
}

// invalidate tells c (or the connection it redirects to) that key (nil:
// every key) may have changed, unless c asked not to hear of its own
// writes (NOLOOP) and origin is c.
func (s *Server) invalidate(c *client, key []byte, origin int64) {
	o := c.tracking.Load()
	if o == nil || (o.noloop && origin == c.id) {
		return
	}
	target := c
	if o.redirect != 0 {
		s.clientsMu.Lock()
		target = s.clients[o.redirect]
		s.clientsMu.Unlock()
		if target == nil {
			if !c.redirBroken.Swap(true) && c.shownProto.Load() >= 3 {
				c.pushEncoded(&encodedPush{v: resp.Push(resp.BulkString("tracking-redir-broken"), resp.Int(o.redirect))})
			}
			return
		}
	}
	keys := resp.Null
	if key != nil {
		keys = resp.Array(resp.Bulk(key))
	}
	var msg resp.Value
	switch {
	case target.shownProto.Load() >= 3:
		msg = resp.Push(resp.BulkString("invalidate"), keys)
	case target.subscribed.Load():
		msg = resp.Push(resp.BulkString("message"), resp.BulkString("__redis__:invalidate"), keys)
	default:
		return // RESP2 without a subscribed redirect: nowhere to say it.
	}
	target.pushEncoded(&encodedPush{v: msg})
}

// stopTracking turns tracking off for c (CLIENT TRACKING OFF, RESET, its
// connection closing). Its keys stay in the table until they change, as
// in Redis; nothing more is sent to it.
func (s *Server) stopTracking(c *client) {
	o := c.tracking.Swap(nil)
	if o == nil {
		return
	}
	s.tracking.clients.Add(-1)
	if o.bcast {
		s.tracking.bmu.Lock()
		delete(s.tracking.bcast, c)
		s.tracking.bmu.Unlock()
	}
	c.cachingNow, c.cachingNext = cachingNone, cachingNone
	c.redirBroken.Store(false)
}

// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN]
// [OPTOUT] [NOLOOP]
func clientTrackingCmd(ctx *Ctx) (resp.Value, error) {
	s, c, args := ctx.srv, ctx.c, ctx.Args
	var on bool
	switch {
	case is(args[2], "ON"):
		on = true
	case is(args[2], "OFF"):
	default:
		return resp.Value{}, resp.ErrSyntax
	}
	o := &trackOpts{}
	for i := 3; i < len(args); i++ {
		more := i+1 < len(args)
		switch {
		case is(args[i], "REDIRECT") && more:
			i++
			id, err := intArg(args[i])
			if err != nil {
				return resp.Value{}, err
			}
			o.redirect = id
		case is(args[i], "PREFIX") && more:
			i++
			o.prefixes = append(o.prefixes, string(args[i]))
		case is(args[i], "BCAST"):
			o.bcast = true
		case is(args[i], "OPTIN"):
			o.optin = true
		case is(args[i], "OPTOUT"):
			o.optout = true
		case is(args[i], "NOLOOP"):
			o.noloop = true
		default:
			return resp.Value{}, resp.ErrSyntax
		}
	}
	if !on {
		s.stopTracking(c)
		return resp.OK, nil
	}
	old := c.tracking.Load()
	switch {
	case old != nil && old.bcast != o.bcast:
		return resp.Value{}, resp.Error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
	case len(o.prefixes) > 0 && !o.bcast:
		return resp.Value{}, resp.Error("ERR PREFIX option requires BCAST mode to be enabled")
	case o.optin && o.optout:
		return resp.Value{}, resp.Error("ERR You can't specify both OPTIN mode and OPTOUT mode")
	case o.bcast && (o.optin || o.optout):
		return resp.Value{}, resp.Error("ERR OPTIN and OPTOUT are not compatible with BCAST")
	case old != nil && (old.optin && o.optout || old.optout && o.optin):
		return resp.Value{}, resp.Error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
	}
	if o.redirect != 0 {
		s.clientsMu.Lock()
		_, ok := s.clients[o.redirect]
		s.clientsMu.Unlock()
		if !ok {
			return resp.Value{}, resp.Error("ERR The client ID you want redirect to does not exist")
		}
	}
	if o.bcast {
		if old != nil {
			o.prefixes = append(append([]string(nil), old.prefixes...), o.prefixes...)
		}
		if len(o.prefixes) == 0 {
			o.prefixes = []string{""}
		}
		if err := checkPrefixes(o.prefixes); err != nil {
			return resp.Value{}, err
		}
		slices.Sort(o.prefixes)
		o.prefixes = slices.Compact(o.prefixes)
	}
	c.enablePush()
	if old == nil {
		s.tracking.clients.Add(1)
	}
	c.redirBroken.Store(false)
	c.tracking.Store(o)
	if o.bcast {
		s.tracking.bmu.Lock()
		if s.tracking.bcast == nil {
			s.tracking.bcast = map[*client][]string{}
		}
		s.tracking.bcast[c] = o.prefixes
		s.tracking.bmu.Unlock()
	}
	return resp.OK, nil
}

// checkPrefixes refuses overlapping BCAST prefixes, as Redis does.
func checkPrefixes(ps []string) error {
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a != b && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a)) {
				return resp.Error("ERR Prefix '" + a + "' overlaps with another provided prefix '" + b + "'. Prefixes for a single client must not overlap.")
			}
		}
	}
	return nil
}

// CLIENT CACHING YES|NO
func clientCachingCmd(ctx *Ctx) (resp.Value, error) {
	c := ctx.c
	o := c.tracking.Load()
	yes, no := is(ctx.Args[2], "YES"), is(ctx.Args[2], "NO")
	switch {
	case !yes && !no:
		return resp.Value{}, resp.ErrSyntax
	case o == nil || (!o.optin && !o.optout):
		return resp.Value{}, resp.Error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
	case yes && !o.optin:
		return resp.Value{}, resp.Error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
	case no && !o.optout:
		return resp.Value{}, resp.Error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
	}
	if yes {
		c.cachingNext = cachingYes
	} else {
		c.cachingNext = cachingNo
	}
	return resp.OK, nil
}

// CLIENT GETREDIR: -1 without tracking, 0 without a redirect.
func clientGetRedir(c *client) resp.Value {
	o := c.tracking.Load()
	if o == nil {
		return resp.Int(-1)
	}
	return resp.Int(o.redirect)
}

// CLIENT TRACKINGINFO
func clientTrackingInfo(c *client) resp.Value {
	o := c.tracking.Load()
	if o == nil {
		return resp.Map(resp.BulkString("flags"), resp.Set(resp.BulkString("off")),
			resp.BulkString("redirect"), resp.Int(-1),
			resp.BulkString("prefixes"), resp.Array())
	}
	flags := []resp.Value{resp.BulkString("on")}
	add := func(ok bool, name string) {
		if ok {
			flags = append(flags, resp.BulkString(name))
		}
	}
	add(o.bcast, "bcast")
	add(o.optin, "optin")
	add(o.optout, "optout")
	add(c.cachingNext == cachingYes, "caching-yes")
	add(c.cachingNext == cachingNo, "caching-no")
	add(o.noloop, "noloop")
	add(c.redirBroken.Load(), "broken_redirect")
	var prefixes []resp.Value
	if o.bcast {
		for _, p := range o.prefixes {
			prefixes = append(prefixes, resp.BulkString(p))
		}
	}
	return resp.Map(resp.BulkString("flags"), resp.Set(flags...),
		resp.BulkString("redirect"), resp.Int(o.redirect),
		resp.BulkString("prefixes"), resp.Array(prefixes...))
}

// trackingMaxKeysParam is CONFIG's tracking-table-max-keys.
func trackingMaxKeysParam() configParam {
	return configParam{name: "tracking-table-max-keys",
		get: func(s *Server) string { return itoa(s.tracking.maxKeys.Load()) },
		set: func(s *Server, v []byte) error {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 {
				return errConfigSet("tracking-table-max-keys", "argument couldn't be parsed into an integer")
			}
			s.tracking.maxKeys.Store(n)
			return nil
		}}
}
