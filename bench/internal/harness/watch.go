package harness

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
)

// WatchLoop opens a watch with open(rv) and calls fn with every event and
// the time it was decoded, re-opening the watch from the last seen
// resourceVersion when the server closes it (from the current state after
// an error event such as 410 Gone), until ctx ends. Start it with
// the resourceVersion of a list taken before the actions it observes.
func WatchLoop(ctx context.Context, rv string, open func(ctx context.Context, rv string) (watch.Interface, error), fn func(ev watch.Event, at time.Time)) {
	for ctx.Err() == nil {
		w, err := open(ctx, rv)
		if err != nil {
			Sleep(ctx, 100*time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			at := time.Now()
			if ev.Type == watch.Error {
				// Most likely 410 Gone: start again from the current
				// state (its objects come as ADDED events).
				rv = ""
				break
			}
			if m, err := meta.Accessor(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			fn(ev, at)
		}
		w.Stop()
	}
}

// WaitFor polls cond every 10 ms until it is true (returns true), timeout
// passes or ctx ends (returns false).
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	return WaitEvery(ctx, 10*time.Millisecond, timeout, cond)
}

// WaitEvery is WaitFor polling every interval (for conditions that cost an
// API request).
func WaitEvery(ctx context.Context, interval, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		Sleep(ctx, interval)
	}
}

// Expect records when watched objects first met conditions registered
// before the action that should bring them about.
type Expect[T any] struct {
	mu      sync.Mutex
	pending []*Cond[T]
}

// Cond is one condition of an Expect; At is when an event first met it.
type Cond[T any] struct {
	fn   func(T) bool
	At   time.Time
	done chan struct{}
}

// Add registers a condition, checked against every later Observe.
func (e *Expect[T]) Add(fn func(T) bool) *Cond[T] {
	c := &Cond[T]{fn: fn, done: make(chan struct{})}
	e.mu.Lock()
	e.pending = append(e.pending, c)
	e.mu.Unlock()
	return c
}

// Observe checks obj (seen at at) against the pending conditions.
func (e *Expect[T]) Observe(obj T, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.pending[:0]
	for _, c := range e.pending {
		if c.fn(obj) {
			c.At = at
			close(c.done)
			continue
		}
		kept = append(kept, c)
	}
	e.pending = kept
}

// Wait waits until the condition was met (true) or timeout (false).
func (c *Cond[T]) Wait(ctx context.Context, timeout time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	case <-ctx.Done():
		return false
	}
}

// Met reports whether the condition was met already.
func (c *Cond[T]) Met() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
