package nice

import (
	"testing"

	"golang.org/x/sys/unix"
)

// nice reads the calling thread's nice value.
func nice(t *testing.T) int {
	t.Helper()
	// getpriority returns 20 - nice for PRIO_PROCESS (the raw syscall).
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

func TestRun(t *testing.T) {
	before := nice(t)
	var inside, tid int
	Run(func() { inside, tid = nice(t), unix.Gettid() })
	if inside != Value {
		t.Errorf("nice inside = %d, want %d", inside, Value)
	}
	if tid == unix.Gettid() || nice(t) != before {
		t.Errorf("ran on the caller's thread, or changed its priority (%d → %d)", before, nice(t))
	}
}

// A panic in f reaches Run's caller.
func TestRunPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want boom", r)
		}
	}()
	Run(func() { panic("boom") })
	t.Error("Run returned")
}
