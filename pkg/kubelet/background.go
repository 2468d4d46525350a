package kubelet

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// backgroundNice is the CPU priority of the agent's background passes.
const backgroundNice = 19

// onBackgroundThread runs f on an OS thread of its own at the lowest CPU
// priority and waits for it. The stats pass behind a metrics scrape reads
// /proc for every process of every container (~50–90 ms of a core at 500
// pods, every 10 s); at normal priority that burst delayed ~10–20 pods'
// probe requests at once by more than 15 ms. At nice 19 the probes, the
// containers and their shims go first, and the pass takes the idle time.
func onBackgroundThread(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread ends with this goroutine, its
		// priority with it, and no other goroutine ever runs on it.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice)
		f()
	}()
	<-done
}
