// Package runner runs short pieces of work (a probe, a step of a pod's
// sync) on a few long-lived goroutines for the node agent's many parked
// ones.
//
// The agent parks a goroutine per pod worker and per probe worker (upstream's
// design: ~1,500 of them at 500 pods). A probe or a sync grows a stack to
// 16–32 kB; done on the parked goroutine, that stack stays (and the GC only
// halves it now and then), ~10 MB at 500 pods. Done on a new goroutine, it
// starts small and is grown and copied on every run (runtime.copystack and
// its frame walk: ~8 % of the agent's CPU at 1,000 probes/s). A Pool keeps
// as many goroutines as there are pieces running at once, each with the
// stack its work grew, and lets one go after it has been idle a while.
package runner

import (
	"sync"
	"time"
)

// DefaultIdle is how long a goroutine of a Pool waits for work before it
// exits.
const DefaultIdle = 10 * time.Second

// Pool runs functions on pooled goroutines. Its zero value is ready to use
// (with DefaultIdle).
type Pool struct {
	// Idle, if set, replaces DefaultIdle.
	Idle time.Duration

	mu   sync.Mutex
	idle []*worker // waiting for work, the most recent last
}

type worker struct {
	jobs chan job // buffered: Do never waits on a worker it took
}

type job struct {
	f    func()
	done chan struct{}
}

// Do runs f on a goroutine of the pool, starting one if none is idle, and
// returns when f has returned. A panic in f is f's to recover: it ends
// the process as it would on any goroutine.
func (p *Pool) Do(f func()) {
	j := job{f: f, done: make(chan struct{})}
	p.mu.Lock()
	var w *worker
	if n := len(p.idle); n > 0 {
		w, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if w != nil {
		w.jobs <- j
	} else {
		w = &worker{jobs: make(chan job, 1)}
		go p.loop(w, j)
	}
	<-j.done
}

func (p *Pool) loop(w *worker, j job) {
	idle := p.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		j.f()
		// idle again before the caller returns: its next Do finds us
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		close(j.done)
		t.Reset(idle)
		select {
		case j = <-w.jobs:
			continue
		case <-t.C:
		}
		p.mu.Lock()
		taken := true
		for i, x := range p.idle {
			if x == w {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				taken = false
				break
			}
		}
		p.mu.Unlock()
		if !taken {
			return
		}
		j = <-w.jobs // a Do took us just as the timer fired
	}
}
