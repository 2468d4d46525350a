package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestReadCPUSelf(t *testing.T) {
	c0, err := ReadCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Burn some CPU until the counter moves (10 ms ticks).
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			x += i
		}
		c1, err := ReadCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if c1.Self > c0.Self {
			if c1.Children < c0.Children {
				t.Errorf("children CPU went back: %v → %v", c0.Children, c1.Children)
			}
			return
		}
	}
	t.Errorf("CPU did not move in 5s of work (%d)", x)
}

func TestPercent(t *testing.T) {
	tests := []struct {
		cpu, wall time.Duration
		want      string
	}{
		{250 * time.Millisecond, time.Second, "25.0 %"},
		{3 * time.Second, 2 * time.Second, "150.0 %"},
		{time.Second, 0, "n/a"},
	}
	for _, tt := range tests {
		if got := Percent(tt.cpu, tt.wall); got != tt.want {
			t.Errorf("Percent(%v, %v) = %q, want %q", tt.cpu, tt.wall, got, tt.want)
		}
	}
}

// A recorded container whose process is alive and still the one recorded is
// killed; one whose start time differs (a reused PID) is not.
func TestKillLeftoverContainers(t *testing.T) {
	dir := t.TempDir()
	start := func() *exec.Cmd {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	mine, other := start(), start()
	write := func(id string, pid int, st uint64) {
		d := filepath.Join(dir, "agent", "runtime", "host", "containers", id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "state.json"), []byte(fmt.Sprintf(`{"status":"running","pid":%d,"pidStart":%d}`, pid, st)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := startTime(mine.Process.Pid)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	write("a", mine.Process.Pid, st)
	write("b", other.Process.Pid, st+12345)
	write("c", 0, 0)
	if n := KillLeftoverContainers(dir); n != 1 {
		t.Errorf("killed %d, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- mine.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the recorded process was not killed")
	}
	if _, err := startTime(other.Process.Pid); err != nil {
		t.Errorf("the other process is gone: %v", err)
	}
}

func TestExpect(t *testing.T) {
	var e Expect[int]
	big := e.Add(func(v int) bool { return v > 10 })
	even := e.Add(func(v int) bool { return v%2 == 0 })
	t0 := time.Unix(100, 0)
	e.Observe(3, t0)
	if big.Met() || even.Met() {
		t.Fatal("met too early")
	}
	e.Observe(4, t0.Add(time.Second))
	e.Observe(12, t0.Add(2*time.Second))
	if !even.Met() || !even.At.Equal(t0.Add(time.Second)) {
		t.Errorf("even met %v at %v", even.Met(), even.At)
	}
	if !big.Wait(context.Background(), time.Second) || !big.At.Equal(t0.Add(2*time.Second)) {
		t.Errorf("big at %v", big.At)
	}
	never := e.Add(func(v int) bool { return v < 0 })
	if never.Wait(context.Background(), 10*time.Millisecond) {
		t.Error("never met")
	}
}

func TestKillProcessesIn(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "containers", "x", "rootfs")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	in := exec.Command("sleep", "60")
	in.Dir = sub
	out := exec.Command("sleep", "60")
	out.Dir = os.TempDir()
	for _, c := range []*exec.Cmd{in, out} {
		if err := c.Start(); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	if n := KillProcessesIn(dir); n != 1 {
		t.Errorf("killed %d, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- in.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the process under dir was not killed")
	}
	if _, err := startTime(out.Process.Pid); err != nil {
		t.Errorf("the process elsewhere is gone: %v", err)
	}
}
