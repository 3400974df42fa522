package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/bench/clients"
	"github.com/ringcache/ringcache/bench/harness"
)

// clientResult is one client library's failover trials: how long after
// kill -9 of a primary its writes to the primary's slots kept failing.
type clientResult struct {
	lib, version, options string
	times, allKeys        []time.Duration
	lost                  int
	skipped               string // why the library did not run
}

func estClients(c *config) float64 { return float64(c.clientTrials*len(clients.Libs)) * 8 }

// clientsPhase measures failover as each client library sees it, with its
// default options, each trial on a fresh ringcache cluster.
func (e *env) clientsPhase(ctx context.Context, res *results) error {
	dir, err := e.ws.Dir("clients")
	if err != nil {
		return err
	}
	env := clients.Env{NodeModules: e.cfg.nodeModules, Dir: dir}
	if abs, err := filepath.Abs(env.NodeModules); err == nil {
		env.NodeModules = abs
	}
	for _, lib := range clients.Libs {
		cr := &clientResult{lib: lib.Name, options: lib.Options}
		res.clients = append(res.clients, cr)
		if cr.skipped = lib.Missing(env); cr.skipped != "" {
			e.p.logf("client failover, %s: skipped: %s", lib.Name, cr.skipped)
			e.p.step(estClients(e.cfg) / float64(len(clients.Libs)))
			continue
		}
		cr.version = clients.Version(lib, env)
		for trial := range e.cfg.clientTrials {
			label := fmt.Sprintf("client failover %s, trial %d/%d", lib.Name, trial+1, e.cfg.clientTrials)
			d, err := e.startRingcache(ctx, fmt.Sprintf("clients/%d-%d", len(res.clients), trial+1), e.cfg.nodes)
			if err != nil {
				if d != nil {
					d.stop()
				}
				return fmt.Errorf("%s: %w", label, err)
			}
			r, err := clientTrial(ctx, lib, env, d, trial)
			d.stop()
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			cr.times = append(cr.times, r.Outage)
			cr.allKeys = append(cr.allKeys, r.AllKeys)
			cr.lost += len(r.Lost)
			e.p.logf("%s: writes to the killed primary's slots failed for %v after kill -9 (every key written again after %v; %d refused, last %q; %d lost)",
				label, r.Outage.Round(time.Millisecond), r.AllKeys.Round(time.Millisecond), r.Refused, r.LastErr, len(r.Lost))
			e.p.step(estClients(e.cfg) / float64(len(clients.Libs)*e.cfg.clientTrials))
		}
	}
	return nil
}

// clientTrial kills a primary (rotating, never the first node, which
// redis-cli starts from) under lib's writers.
func clientTrial(ctx context.Context, lib clients.Lib, env clients.Env, d *deployment, trial int) (clients.FailoverResult, error) {
	slots, err := harness.FetchSlots(ctx, d.nodes[0].Addr())
	if err != nil {
		return clients.FailoverResult{}, err
	}
	victim := d.nodes[1+trial%(len(d.nodes)-1)]
	seeds := []string{d.nodes[0].Addr()}
	for _, n := range d.nodes[1:] {
		if n != victim {
			seeds = append(seeds, n.Addr())
		}
	}
	reader := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
	defer reader.Close()
	var keys []string
	for i := range 120 {
		keys = append(keys, fmt.Sprintf("failover:%d", i))
	}
	return clients.MeasureFailover(ctx, lib, env, clients.FailoverSpec{
		Seeds:   append(seeds, victim.Addr()),
		Keys:    keys,
		Victim:  func(key string) bool { return slots[harness.KeySlot(key)] == victim.Addr() },
		Kill:    victim.Kill,
		Workers: 8,
		Limit:   90 * time.Second,
		Read:    func(ctx context.Context, key string) (string, error) { return reader.Get(ctx, key).Result() },
	})
}
