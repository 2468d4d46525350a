// Package nice runs background passes of a k1s process at the lowest CPU
// priority, so that they take idle time instead of delaying what users
// time (probes, containers, API requests).
package nice

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Value is the nice value Run gives its thread.
const Value = 19

// Run runs f on an OS thread of its own at nice 19 and waits for it. The
// node agent's stats pass behind a metrics scrape (every 15 s) is such a
// pass: it reads /proc for every process of every container, ~50–90 ms of
// a core at 500 pods, and its burst delayed 10–20 pods' probe requests at
// once by more than 15 ms. For system-call-heavy work only: while the
// thread is in the kernel Go hands its P to others, but a niced thread
// running Go code keeps its P while the kernel makes it wait.
func Run(f func()) {
	var p any
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A panic in f is the caller's, as if f had run on its goroutine
		// (an HTTP handler's panic stays the server's to recover).
		defer func() { p = recover() }()
		// Never unlocked: the thread ends with this goroutine, its
		// priority with it, and no other goroutine ever runs on it.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), Value)
		f()
	}()
	<-done
	if p != nil {
		panic(p)
	}
}
