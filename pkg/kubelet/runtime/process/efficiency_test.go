package process

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
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

func TestCappedBufferReadFrom(t *testing.T) {
	for _, tc := range []struct {
		in  string
		max int
	}{
		{"", 10},
		{"hello", 10},
		{strings.Repeat("x", 5000), 100000},
		{strings.Repeat("abcdefgh", 3000), 1000},
	} {
		b := CappedBuffer{Max: tc.max}
		n, err := io.Copy(&b, iotest.OneByteReader(strings.NewReader(tc.in)))
		if err != nil || n != int64(len(tc.in)) {
			t.Errorf("%d bytes, max %d: copied %d, %v", len(tc.in), tc.max, n, err)
		}
		want := tc.in
		if len(want) > tc.max {
			want = want[:tc.max]
		}
		if string(b.Bytes()) != want {
			t.Errorf("%d bytes, max %d: kept %d bytes, want %d", len(tc.in), tc.max, len(b.Bytes()), len(want))
		}
		// A Write after ReadFrom still respects the cap.
		_, _ = b.Write([]byte(strings.Repeat("y", tc.max)))
		if len(b.Bytes()) > tc.max {
			t.Errorf("max %d: %d bytes after Write", tc.max, len(b.Bytes()))
		}
	}
}

// readMemory's statm figures are status's VmRSS and RssAnon.
func TestReadMemoryMatchesStatus(t *testing.T) {
	rss, anon, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "RssAnon:") {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			want[f[0]] = n << 10
		}
	}
	near := func(a, b uint64) bool { return a+1<<20 >= b && b+1<<20 >= a } // read a moment apart
	if !near(rss, want["VmRSS:"]) || !near(anon, want["RssAnon:"]) || anon == 0 || anon > rss {
		t.Errorf("statm: rss %d anon %d; status: %v", rss, anon, want)
	}
}
