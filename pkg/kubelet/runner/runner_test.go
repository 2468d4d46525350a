package runner

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoRunsAndWaits(t *testing.T) {
	var p Pool
	ran := false
	p.Do(func() { ran = true })
	if !ran {
		t.Fatal("Do returned before f ran")
	}
}

// Sequential work reuses one goroutine; concurrent work gets as many as
// run at once.
func TestGoroutinesReused(t *testing.T) {
	var p Pool
	ids := map[uint64]bool{}
	var mu sync.Mutex
	for range 50 {
		p.Do(func() {
			mu.Lock()
			ids[goid()] = true
			mu.Unlock()
		})
	}
	if len(ids) != 1 {
		t.Errorf("50 jobs one after the other ran on %d goroutines", len(ids))
	}

	var running, most atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Do(func() {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
			})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for most.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if most.Load() != 5 {
		t.Errorf("5 concurrent jobs: at most %d ran at once", most.Load())
	}
}

// Idle goroutines exit.
func TestIdleGoroutinesExit(t *testing.T) {
	p := Pool{Idle: 10 * time.Millisecond}
	before := runtime.NumGoroutine()
	p.Do(func() {})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the idle time, %d before", n, before)
	}
}

// goid reads the running goroutine's id from its stack trace header.
func goid() uint64 {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	var id uint64
	for _, c := range b[len("goroutine "):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
