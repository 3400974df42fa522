package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// progress prints what the run is doing and estimates the time left from
// a plan of steps with estimated durations, scaled by how the finished
// steps compared with their estimates.
type progress struct {
	mu      sync.Mutex
	start   time.Time
	planned float64 // estimated seconds of all steps
	done    float64 // estimated seconds of the finished steps
	now     func() time.Time
	out     func(string)
}

func newProgress(planned float64) *progress {
	return &progress{start: time.Now(), planned: planned, now: time.Now,
		out: func(s string) { fmt.Fprintln(os.Stderr, s) }}
}

// step records that a step estimated at est seconds has finished.
func (p *progress) step(est float64) {
	p.mu.Lock()
	p.done += est
	p.mu.Unlock()
}

// skip removes est seconds from the plan (a phase that will not run).
func (p *progress) skip(est float64) {
	p.mu.Lock()
	p.planned -= est
	p.mu.Unlock()
}

// left estimates the time still needed: the estimate of the steps not yet
// done, times the ratio of time spent to estimate so far.
func (p *progress) left() time.Duration {
	elapsed := p.now().Sub(p.start).Seconds()
	rest := max(p.planned-p.done, 0)
	pace := 1.0
	if p.done > 0 {
		pace = min(max(elapsed/p.done, 0.5), 3)
	}
	return time.Duration(rest * pace * float64(time.Second)).Round(time.Second)
}

// logf prints one progress line: elapsed time, estimated time left, and
// the message.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := p.now().Sub(p.start).Round(time.Second)
	p.out(fmt.Sprintf("[%6s | ~%s left] %s", elapsed, fmtLeft(p.left()), fmt.Sprintf(format, args...)))
}

func fmtLeft(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
