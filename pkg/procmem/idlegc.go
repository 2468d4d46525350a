package procmem

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"k8s.io/klog/v2"
)

// IdleGC lowers the garbage collector's target while the process allocates
// little and restores it as soon as it allocates more.
//
// GOGC=100 lets the heap grow to twice what is live before collecting.
// The server (~55 MB live) collects at +50 % when busy (a burst of 1,000
// creates: 102 MB of anonymous memory instead of 124, for ~5 % fewer
// creates per second) and at +25 % idle (a few hundred kB allocated per
// second by leases, status updates and resyncs: a collection a minute or
// so); the busy target is back within one sample.
type IdleGC struct {
	Busy, Idle int // GOGC percentages
	// IdleBelow: allocation rate (bytes/s) under which a sample is idle.
	IdleBelow float64
	// IdleAfter: consecutive idle samples before switching to Idle.
	IdleAfter int
	Every     time.Duration
	// OnIdle, if set, runs when the process goes idle after a busy spell
	// (after the collection at the idle target).
	OnIdle func()
}

// DefaultIdleGC is the server's (which adds an OnIdle).
var DefaultIdleGC = IdleGC{Busy: 50, Idle: 25, IdleBelow: 2 << 20, IdleAfter: 3, Every: 5 * time.Second}

// idleState is IdleGC's decision state, apart from the runtime for tests.
type idleState struct {
	cfg      IdleGC
	idleRuns int
	percent  int
}

// next takes one sample's allocation rate and returns the GOGC to use.
func (s *idleState) next(rate float64) int {
	if rate < s.cfg.IdleBelow {
		s.idleRuns++
	} else {
		s.idleRuns = 0
	}
	if s.idleRuns >= s.cfg.IdleAfter {
		s.percent = s.cfg.Idle
	} else if s.idleRuns == 0 {
		s.percent = s.cfg.Busy
	}
	return s.percent
}

// Run tunes GOGC until ctx ends. It does nothing when $GOGC is set (the
// user's choice wins).
func (c IdleGC) Run(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	debug.SetGCPercent(c.Busy)
	s := idleState{cfg: c, percent: c.Busy}
	t := time.NewTicker(c.Every)
	defer t.Stop()
	last, lastAt := read(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := read()
			rate := float64(cur-last) / now.Sub(lastAt).Seconds()
			last, lastAt = cur, now
			before := s.percent
			if p := s.next(rate); p != before {
				debug.SetGCPercent(p)
				klog.V(4).InfoS("GC target changed", "gogc", p, "allocBytesPerSecond", int64(rate))
				if p == c.Idle {
					// Gone idle after a busy spell: collect at the
					// idle target now and hand the heap the busy
					// target had let grow back to the OS, rather
					// than wait for the next collection (a minute
					// idle) and the scavenger's pace.
					debug.FreeOSMemory()
					if c.OnIdle != nil {
						c.OnIdle()
					}
				}
			}
		}
	}
}
