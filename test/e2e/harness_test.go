// Package e2e runs the real k1s binary and real kubectl, scenario by
// scenario. One server is shared by the tests (each test works in its own
// namespace); tests that restart or kill a server start their own.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binary string
	shared *Server
)

func TestMain(m *testing.M) {
	binary = os.Getenv("K1S_BINARY")
	if binary == "" {
		dir, err := os.MkdirTemp("", "k1s-bin")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "k1s")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/k1s")
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building k1s:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, s := range []*Server{shared, ociShared} {
		if s == nil {
			continue
		}
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping a shared server:", err)
			code = 1
		}
	}
	if ociReg != nil {
		ociReg.Close()
	}
	if ociWork != "" {
		if leftovers := mountsUnder(ociWork); len(leftovers) > 0 {
			fmt.Fprintln(os.Stderr, "mounts left by the oci server:", leftovers)
			code = 1
		} else {
			os.RemoveAll(ociWork)
		}
	}
	os.Exit(code)
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// Server is one running `k1s server`.
type Server struct {
	DataDir    string
	Kubeconfig string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	logMu      *sync.Mutex
	done       chan struct{}
	args       []string
}

var sharedOnce sync.Once

// SharedServer starts (once) the server most tests use.
func SharedServer(t *testing.T) *Server {
	t.Helper()
	var err error
	sharedOnce.Do(func() {
		dir, e := os.MkdirTemp("", "k1s-e2e")
		if e != nil {
			err = e
			return
		}
		shared, err = StartServer(dir)
	})
	if err != nil || shared == nil {
		t.Fatalf("starting shared server: %v", err)
	}
	return shared
}

// StartServer runs `k1s server --data-dir dir --https-port 0` and waits until
// kubectl can talk to it.
func StartServer(dir string, extra ...string) (*Server, error) {
	// chosen once: a restarted server keeps its ranges
	s := &Server{DataDir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), args: append(networkArgs(extra), extra...)}
	return s, s.start()
}

// defaultRuntimeArgs keeps the tests written for the host runtime on it
// (their images are only names there) unless the test chooses a default
// runtime itself: oci is the default only where the machine can run it.
func defaultRuntimeArgs(extra []string) []string {
	for _, e := range extra {
		if strings.HasPrefix(e, "--default-runtime") {
			return nil
		}
	}
	return []string{"--default-runtime", "host"}
}

// netSlots are the network ranges this test process holds: a lock file
// per slot, held until the process exits, so that test processes running
// at the same time (e2e, fidelity, benchmarks) never share a range.
var (
	netSlotsMu sync.Mutex
	netSlots   []*os.File
)

// networkArgs gives every test server pod and Service ranges of its own:
// several clusters share this machine (and its kernel's routes and
// nftables) while the tests run, each with its own bridge and proxy table.
func networkArgs(extra []string) []string {
	for _, e := range extra {
		if strings.HasPrefix(e, "--cluster-cidr") || strings.HasPrefix(e, "--service-cidr") {
			return nil
		}
	}
	netSlotsMu.Lock()
	defer netSlotsMu.Unlock()
	start := os.Getpid() % 50
	for i := 0; i < 50; i++ {
		n := (start + i) % 50
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("k1s-e2e-net-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		netSlots = append(netSlots, f) // held until the process exits
		return []string{"--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+n), "--service-cidr", fmt.Sprintf("10.%d.0.0/16", 150+n)}
	}
	panic("no free network range for a test server (50 in use)")
}

// networkFlags are the server's --cluster-cidr and --service-cidr, for
// the agents that join it.
func (s *Server) networkFlags() []string {
	var out []string
	for i, a := range s.args {
		if (a == "--cluster-cidr" || a == "--service-cidr") && i+1 < len(s.args) {
			out = append(out, a, s.args[i+1])
		}
	}
	return out
}

func (s *Server) start() error {
	// --stop-pods-on-exit: a test run leaves no containers behind.
	args := []string{"server", "--data-dir", s.DataDir, "--https-port", "0", "--stop-pods-on-exit"}
	args = append(append(args, defaultRuntimeArgs(s.args)...), s.args...)
	s.cmd = exec.Command(binary, args...)
	s.log, s.logMu = &bytes.Buffer{}, &sync.Mutex{}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	pw.Close()
	ready := make(chan struct{})
	s.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			if strings.Contains(line, "k1s API ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { s.cmd.Wait(); close(s.done) }()
	select {
	case <-ready:
		return nil
	case <-s.done:
		return fmt.Errorf("k1s server exited: %s", s.Log())
	case <-time.After(90 * time.Second):
		s.Kill()
		return fmt.Errorf("k1s server not ready after 90s: %s", s.Log())
	}
}

// Log is what the server printed so far.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// Stop sends SIGTERM and waits (the server must stop within 10 s).
func (s *Server) Stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(15 * time.Second):
		s.Kill()
		return fmt.Errorf("server did not stop within 15s after SIGTERM")
	}
}

// Kill sends SIGKILL to the server alone (its containers' shims survive).
func (s *Server) Kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Restart starts the server again on the same data dir.
func (s *Server) Restart() error { return s.start() }

// Result of one kubectl run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Kubectl runs kubectl (from PATH, or $KUBECTL) against the server.
func (s *Server) Kubectl(t *testing.T, args ...string) Result {
	t.Helper()
	return s.KubectlWith(t, os.Getenv("KUBECTL"), "", args...)
}

// KubectlIn runs kubectl with stdin.
func (s *Server) KubectlIn(t *testing.T, stdin string, args ...string) Result {
	t.Helper()
	return s.KubectlWith(t, os.Getenv("KUBECTL"), stdin, args...)
}

// KubectlWith runs a given kubectl binary.
func (s *Server) KubectlWith(t *testing.T, kubectl, stdin string, args ...string) Result {
	t.Helper()
	if kubectl == "" {
		kubectl = "kubectl"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// MustKubectl fails the test unless kubectl exits 0; returns stdout.
func (s *Server) MustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := s.Kubectl(t, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// MustApply pipes a manifest to `kubectl apply -f -`.
func (s *Server) MustApply(t *testing.T, ns, manifest string, extra ...string) string {
	t.Helper()
	args := append([]string{"apply", "-n", ns, "-f", "-"}, extra...)
	r := s.KubectlIn(t, manifest, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl apply: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Namespace creates a fresh namespace for the test and deletes it after.
func (s *Server) Namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	s.MustKubectl(t, "create", "namespace", name)
	t.Cleanup(func() {
		if !t.Failed() || os.Getenv("K1S_E2E_KEEP") == "" {
			s.Kubectl(t, "delete", "namespace", name, "--wait=false")
		}
	})
	return name
}

// Eventually polls cond until it returns true or the timeout passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Contains fails unless s contains every sub.
func Contains(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("output lacks %q:\n%s", sub, s)
		}
	}
}

// MatchLines fails unless some line of s matches each regexp.
func MatchLines(t *testing.T, s string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile("(?m)" + re).MatchString(s) {
			t.Errorf("no line matches %q in:\n%s", re, s)
		}
	}
}
