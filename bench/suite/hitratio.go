package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// The seeds of the two passes of the hit-ratio phase: the same streams
// for every system and policy.
const (
	hitWarmSeed    = 1
	hitMeasureSeed = 2
)

// hitPolicies are the maxmemory policies the hit-ratio phase accepts:
// those that may evict any key (the workload sets no TTLs).
var hitPolicies = []string{"allkeys-lru", "allkeys-lfu", "allkeys-random"}

// hitResult is one policy of the hit-ratio phase: Redis and ringcache.
type hitResult struct {
	policy string
	sides  [2]hitSide // Redis, ringcache
}

// hitSide is one system's two passes and its state at the end.
type hitSide struct {
	name          string
	warm, measure passResult
	// keys (DBSIZE), used_memory and evicted_keys after the measured pass;
	// -1 where the server did not tell. rssKiB is the process's VmRSS then.
	keys, usedMemory, evicted int64
	rssKiB                    int64
	// bound is the probability mass of the keys most popular keys.
	bound float64
}

// passResult counts one pass of the cache-aside workload.
type passResult struct {
	requests, hits, misses int64
	// repeatMisses are misses of a key that had already missed earlier
	// in the same batch (its SET had not been sent yet): a client doing
	// one request at a time would have found it.
	repeatMisses int64
	// sets were acknowledged with OK; setErrors, getErrors are error
	// replies; wrong are replies that were neither (a GET that returned
	// another value, a SET that answered something else than OK).
	sets, setErrors, getErrors, wrong int64
	lastError                         string
	took                              time.Duration
}

func (p passResult) ratio() float64 { return float64(p.hits) / float64(p.requests) }

// estHitRatio guesses the phase's seconds at about 300k requests a second
// (one connection, pipelined; Redis about twice as fast as ringcache),
// plus starting each server, and 20k a second one request at a time.
func estHitRatio(c *config) float64 {
	rate := 300000.0
	if c.hitBatch == 1 {
		rate = 20000
	}
	return float64(len(c.hitPolicies)) * 2 * (3 + 2*float64(c.hitRequests)/rate)
}

// hitRatioPhase runs the cache-aside workload against a fresh redis-server
// and a fresh ringcache node per policy, both limited to -hit-maxmemory.
func (e *env) hitRatioPhase(ctx context.Context, res *results) error {
	c := e.cfg
	e.p.logf("hit ratio: Zipf distribution over %d keys, exponent %g", c.hitKeys, c.hitZipf)
	z := newZipf(c.hitKeys, c.hitZipf)
	value := strings.Repeat("v", c.hitValueLen)
	for _, policy := range c.hitPolicies {
		hr := &hitResult{policy: policy}
		for i, name := range []string{"redis", "ringcache"} {
			label := fmt.Sprintf("hit ratio %s, %s", policy, name)
			e.p.logf("%s: starting with maxmemory %s", label, c.hitMaxmemory)
			flags := []string{"--maxmemory", c.hitMaxmemory, "--maxmemory-policy", policy}
			dir := "hitratio/" + policy + "/" + name
			var d *deployment
			var err error
			if name == "redis" {
				d, err = e.startRedis(ctx, dir, flags...)
			} else {
				d, err = e.startRingcache(ctx, dir, 1, flags...)
			}
			if err != nil {
				if d != nil {
					d.stop()
				}
				return fmt.Errorf("%s: %w", label, err)
			}
			side, err := e.hitSide(ctx, d, label, z, value, policy)
			d.stop()
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			side.name = name
			hr.sides[i] = side
			e.p.step(estHitRatio(c) / float64(2*len(c.hitPolicies)))
		}
		res.hit = append(res.hit, hr)
		r, rc := hr.sides[0], hr.sides[1]
		e.p.logf("hit ratio %s: Redis %.4f with %d keys, ringcache %.4f with %d keys; bound (top-K mass) %.4f for K = Redis's keys, %.4f for K = ringcache's",
			policy, r.measure.ratio(), r.keys, rc.measure.ratio(), rc.keys, r.bound, rc.bound)
	}
	return nil
}

// hitSide checks that the server runs with the limit and policy asked
// for, runs the two passes and reads what the server holds at the end.
func (e *env) hitSide(ctx context.Context, d *deployment, label string, z *zipf, value, policy string) (hitSide, error) {
	addr := d.nodes[0].Addr()
	mem, err := info(ctx, addr, "memory")
	if err != nil {
		return hitSide{}, err
	}
	if got := mem["maxmemory_policy"]; got != policy {
		return hitSide{}, fmt.Errorf("INFO maxmemory_policy is %q, want %q", got, policy)
	}
	if mem["maxmemory"] == "" || mem["maxmemory"] == "0" {
		return hitSide{}, fmt.Errorf("INFO maxmemory is %q: the limit was not applied", mem["maxmemory"])
	}
	var s hitSide
	for pass, seed := range []uint64{hitWarmSeed, hitMeasureSeed} {
		what := [2]string{"warm-up", "measured"}[pass]
		e.p.logf("%s: %s pass, %d requests (seed %d)", label, what, e.cfg.hitRequests, seed)
		pr, err := cacheAside(ctx, addr, newZipfStream(z, seed), e.cfg.hitRequests, e.cfg.hitBatch, value)
		if err != nil {
			if aerr := d.checkAlive(); aerr != nil {
				return s, aerr
			}
			return s, err
		}
		e.p.logf("%s: %s pass: hit ratio %.4f (%d misses, %d of them repeats within a batch), %d SETs, %d errors, %d wrong replies, %.1fs (%s requests/s)%s",
			label, what, pr.ratio(), pr.misses, pr.repeatMisses, pr.sets, pr.getErrors+pr.setErrors, pr.wrong, pr.took.Seconds(),
			harness.FormatOps(float64(pr.requests)/pr.took.Seconds()), lastErrNote(pr.lastError))
		if pass == 0 {
			s.warm = pr
		} else {
			s.measure = pr
		}
	}
	if err := d.checkAlive(); err != nil {
		return s, err
	}
	s.keys, s.usedMemory, s.evicted, s.rssKiB = -1, -1, -1, -1
	if m, err := d.nodes[0].Mem(); err == nil {
		s.rssKiB = m.RSSKiB
	}
	if v, err := harness.Command(ctx, addr, "DBSIZE"); err == nil {
		s.keys, _ = strconv.ParseInt(v, 10, 64)
	}
	if mem, err := info(ctx, addr, "memory"); err == nil {
		if v, err := strconv.ParseInt(mem["used_memory"], 10, 64); err == nil {
			s.usedMemory = v
		}
	}
	if st, err := info(ctx, addr, "stats"); err == nil {
		if v, err := strconv.ParseInt(st["evicted_keys"], 10, 64); err == nil {
			s.evicted = v
		}
	}
	s.bound = math.NaN()
	if s.keys >= 0 {
		s.bound = z.mass(int(s.keys))
	}
	return s, nil
}

func lastErrNote(s string) string {
	if s == "" {
		return ""
	}
	return "; last error: " + s
}

// cacheAside runs requests requests of st against addr over one
// connection: GET key, and on a miss SET key value. The GETs go in
// pipelined batches of batch; the SETs for a batch's misses (once per
// distinct key) are sent together with the next batch's GETs, so the
// server sees every SET before any later GET. Within a batch, though, a
// key that misses twice misses both times (its SET follows the batch):
// counted in repeatMisses.
func cacheAside(ctx context.Context, addr string, st *zipfStream, requests, batch int, value string) (passResult, error) {
	var r passResult
	c, err := harness.Dial(ctx, addr, 2*time.Second)
	if err != nil {
		return r, err
	}
	defer c.Close()
	keys := make([]string, 0, batch)
	missed := make(map[string]struct{}, batch)
	var toSet []string // SETs sent with the next batch
	began := time.Now()
	readSets := func() error {
		for range toSet {
			v, err := c.Receive()
			var re *harness.ReplyError
			switch {
			case errors.As(err, &re):
				r.setErrors++
				r.lastError = "SET: " + re.Msg
			case err != nil:
				return err
			case v == "OK":
				r.sets++
			default:
				r.wrong++
				r.lastError = fmt.Sprintf("SET answered %v", v)
			}
		}
		toSet = toSet[:0]
		return nil
	}
	for done := 0; done < requests; {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		keys = keys[:0]
		for range min(batch, requests-done) {
			keys = append(keys, "key:"+strconv.Itoa(st.next()-1))
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		for _, k := range keys {
			c.Send("GET", k)
		}
		if err := c.Flush(); err != nil {
			return r, err
		}
		if err := readSets(); err != nil {
			return r, err
		}
		clear(missed)
		for _, k := range keys {
			v, err := c.Receive()
			var re *harness.ReplyError
			switch {
			case errors.As(err, &re):
				r.getErrors++
				r.lastError = "GET: " + re.Msg
				continue
			case err != nil:
				return r, err
			}
			switch v := v.(type) {
			case nil:
				r.misses++
				if _, dup := missed[k]; dup {
					r.repeatMisses++
					continue
				}
				missed[k] = struct{}{}
				toSet = append(toSet, k)
				c.Send("SET", k, value)
			case string:
				if v == value {
					r.hits++
				} else {
					r.wrong++
					r.lastError = fmt.Sprintf("GET %s returned %d bytes, not the %d written", k, len(v), len(value))
				}
			default:
				r.wrong++
				r.lastError = fmt.Sprintf("GET %s returned %T", k, v)
			}
		}
		r.requests += int64(len(keys))
		done += len(keys)
	}
	// The last batch's SETs.
	if len(toSet) > 0 {
		if err := c.Flush(); err != nil {
			return r, err
		}
		if err := readSets(); err != nil {
			return r, err
		}
	}
	r.took = time.Since(began)
	return r, nil
}
