package process

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWaitChildReaps(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waitChild(cmd)
	// Reaped: no zombie is left for wait4 to find.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Fatalf("wait4 after waitChild: %v, want ECHILD", err)
	}
}

func TestWaitExitEndsOnDone(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	returned := make(chan struct{})
	go func() { waitExit(cmd.Process.Pid, st.StartTime, done); close(returned) }()
	select {
	case <-returned:
		t.Fatal("waitExit returned while the process runs")
	case <-time.After(50 * time.Millisecond):
	}
	close(done)
	<-returned
}

func TestWaitExitSeesExit(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() { waitExit(cmd.Process.Pid, st.StartTime, nil); close(returned) }()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	<-returned
}
