package app

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mainEnv makes the test binary run Main with the arguments in its value
// (space separated), to test signal handling in a real process.
const mainEnv = "K1S_APP_TEST_MAIN"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainEnv); ok {
		os.Exit(Main(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// startApp runs `k1s app args` as a process and waits until it serves.
func startApp(t *testing.T, args string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), mainEnv+"="+args, "HOSTNAME=pod1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "k1s app pod1: serving HTTP") {
		t.Fatalf("first line %q, %v", line, err)
	}
	go func() { _, _ = bufio.NewReader(out).WriteTo(nopWriter{}) }()
	return cmd
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestSIGTERMExitsZero(t *testing.T) {
	cmd := startApp(t, "--port 0")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want code 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("app did not exit on SIGTERM")
	}
}

func TestIgnoreSIGTERM(t *testing.T) {
	cmd := startApp(t, "--port 0 --ignore-sigterm")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("app exited on SIGTERM with --ignore-sigterm: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Kill()
	<-done
}
