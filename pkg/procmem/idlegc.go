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
// GOGC=100 lets the heap grow to twice what is live before collecting:
// right for throughput under load, but an idle server (~85 MB live, a few
// hundred kB allocated per second by leases, status updates and resyncs)
// then grows towards ~170 MB of heap. Idle, collecting at +25 % costs one
// collection a minute or so; busy, the normal target is back within one
// sample.
type IdleGC struct {
	Busy, Idle int // GOGC percentages
	// IdleBelow: allocation rate (bytes/s) under which a sample is idle.
	IdleBelow float64
	// IdleAfter: consecutive idle samples before switching to Idle.
	IdleAfter int
	Every     time.Duration
}

// DefaultIdleGC is the server's.
var DefaultIdleGC = IdleGC{Busy: 100, Idle: 25, IdleBelow: 2 << 20, IdleAfter: 3, Every: 5 * time.Second}

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
			}
		}
	}
}
