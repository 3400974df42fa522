package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadSpec describes a bulk load of distinct keys.
type LoadSpec struct {
	Keys      int // how many keys: key i is KeyName(i, KeyLen)
	KeyLen    int // bytes per key (at least 8)
	ValueLen  int // bytes per value
	ConnsEach int // parallel connections per node
	Batch     int // SETs per pipelined round trip
}

// KeyName returns key i of a bulk load, exactly n bytes long: "key:"
// followed by i zero-padded.
func KeyName(i, n int) string {
	digits := strconv.Itoa(i)
	pad := n - 4 - len(digits)
	if pad < 0 {
		return ("key:" + digits)[:n]
	}
	return "key:" + strings.Repeat("0", pad) + digits
}

// Load SETs spec.Keys distinct keys. With slots nil everything goes to
// addrs[0]; otherwise each key goes to its slot's primary, as a cluster
// client would send it. Every reply must be OK.
func Load(ctx context.Context, addrs []string, slots *SlotMap, spec LoadSpec) error {
	if spec.KeyLen < 8 {
		return fmt.Errorf("key length %d: want at least 8", spec.KeyLen)
	}
	spec.ConnsEach = max(spec.ConnsEach, 1)
	spec.Batch = max(spec.Batch, 1)
	byAddr := map[string][]int32{}
	for i := range spec.Keys {
		a := addrs[0]
		if slots != nil {
			a = slots[KeySlot(KeyName(i, spec.KeyLen))]
		}
		byAddr[a] = append(byAddr[a], int32(i))
	}
	value := strings.Repeat("v", spec.ValueLen)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for addr, keys := range byAddr {
		per := (len(keys) + spec.ConnsEach - 1) / spec.ConnsEach
		for lo := 0; lo < len(keys); lo += per {
			part := keys[lo:min(lo+per, len(keys))]
			wg.Go(func() {
				if err := loadPart(ctx, addr, part, value, spec); err != nil {
					cancel(err)
				}
			})
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func loadPart(ctx context.Context, addr string, keys []int32, value string, spec LoadSpec) error {
	c, err := Dial(ctx, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	for lo := 0; lo < len(keys); lo += spec.Batch {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batch := keys[lo:min(lo+spec.Batch, len(keys))]
		c.SetDeadline(time.Now().Add(30 * time.Second))
		for _, k := range batch {
			c.Send("SET", KeyName(int(k), spec.KeyLen), value)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("loading %s: %w", addr, err)
		}
		for range batch {
			v, err := c.Receive()
			if err != nil {
				return fmt.Errorf("loading %s: %w", addr, err)
			}
			if v != "OK" {
				return fmt.Errorf("loading %s: SET answered %v", addr, v)
			}
		}
	}
	return nil
}

// ProbeResult is the outcome of ProbeWrite.
type ProbeResult struct {
	// After is the time from since to the first OK.
	After time.Duration
	// By is the address that answered OK.
	By string
	// Refusals counts the replies that were not OK (MOVED, TRYAGAIN,
	// CLUSTERDOWN, connection errors, timeouts) before it.
	Refusals int
	// LastRefusal is the last of them, for the report.
	LastRefusal string
}

// ProbeWrite sends SET key to each of addrs in turn, every interval, until
// one answers OK, and returns how long after since that was. Redirects
// are not followed: the first node that accepts the write itself ends the
// probe. It gives up after limit.
func ProbeWrite(ctx context.Context, addrs []string, key string, since time.Time, interval, limit time.Duration) (ProbeResult, error) {
	conns := make([]*Conn, len(addrs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var res ProbeResult
	for {
		for i, a := range addrs {
			if conns[i] == nil {
				c, err := Dial(ctx, a, 200*time.Millisecond)
				if err != nil {
					res.Refusals++
					res.LastRefusal = err.Error()
					continue
				}
				conns[i] = c
			}
			v, err := conns[i].Do(time.Second, "SET", key, "probe")
			if err == nil && v == "OK" {
				res.After, res.By = time.Since(since), a
				return res, nil
			}
			res.Refusals++
			var re *ReplyError
			switch {
			case errors.As(err, &re):
				res.LastRefusal = re.Msg
			case err != nil:
				res.LastRefusal = err.Error()
				conns[i].Close()
				conns[i] = nil
			default:
				res.LastRefusal = fmt.Sprint(v)
			}
		}
		if time.Since(since) > limit {
			return res, fmt.Errorf("no node accepted SET %s within %v (last refusal: %s)", key, limit, res.LastRefusal)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		case <-t.C:
		}
	}
}

// Background is a write load running in the background; see StartLoad.
type Background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
}

// StartLoad runs workers goroutines that SET random keys of a keyspace of
// keyspace keys, each sent to its slot's primary by slots and re-routed
// on MOVED, as a cluster client would. Errors (a dead node, TRYAGAIN) are
// counted and the worker carries on after a short pause.
func StartLoad(ctx context.Context, slots *SlotMap, workers, keyspace int) *Background {
	ctx, cancel := context.WithCancel(ctx)
	b := &Background{cancel: cancel}
	var mu sync.Mutex
	route := *slots
	for w := range workers {
		b.wg.Go(func() {
			conns := map[string]*Conn{}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				key := "load:" + strconv.Itoa(rng.IntN(keyspace))
				slot := KeySlot(key)
				mu.Lock()
				addr := route[slot]
				mu.Unlock()
				c := conns[addr]
				if c == nil {
					var err error
					if c, err = Dial(ctx, addr, 200*time.Millisecond); err != nil {
						b.failed.Add(1)
						sleepCtx(ctx, 10*time.Millisecond)
						continue
					}
					conns[addr] = c
				}
				_, err := c.Do(2*time.Second, "SET", key, "x")
				if err == nil {
					b.ok.Add(1)
					continue
				}
				b.failed.Add(1)
				var re *ReplyError
				if errors.As(err, &re) {
					if f := strings.Fields(re.Msg); len(f) == 3 && f[0] == "MOVED" {
						mu.Lock()
						route[slot] = f[2]
						mu.Unlock()
						continue
					}
				} else {
					c.Close()
					delete(conns, addr)
				}
				sleepCtx(ctx, 10*time.Millisecond)
			}
		})
	}
	return b
}

// Stop ends the load and returns how many writes succeeded and failed.
func (b *Background) Stop() (ok, failed int64) {
	b.cancel()
	b.wg.Wait()
	return b.ok.Load(), b.failed.Load()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
