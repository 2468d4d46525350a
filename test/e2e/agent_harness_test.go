package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A server with a second node: `k1s agent` processes on the same machine,
// each with its own data dir and kubelet port.

// NodeAgent is one running `k1s agent`.
type NodeAgent struct {
	Name    string
	DataDir string
	args    []string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   sync.Mutex
	done    chan struct{}
}

var (
	graceFlagOnce sync.Once
	graceFlagOK   bool
)

// nodesServer starts a server of the test's own that stops its pods on
// exit. With shortGrace, and when the server has the flag, nodes are marked
// NotReady after 20 s without a Lease renewal instead of upstream's 50 s.
func nodesServer(t *testing.T, shortGrace bool) *Server {
	t.Helper()
	var args []string // StartServer always adds --stop-pods-on-exit
	if shortGrace && serverHasGraceFlag() {
		args = append(args, "--node-monitor-grace-period=20s")
	}
	s, err := StartServer(t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("server log (tail):\n%s", tail(s.Log(), 60))
		}
	})
	return s
}

func serverHasGraceFlag() bool {
	graceFlagOnce.Do(func() {
		out, _ := exec.Command(binary, "server", "--help").CombinedOutput()
		graceFlagOK = strings.Contains(string(out), "--node-monitor-grace-period")
	})
	return graceFlagOK
}

// serverURL is the API address of the server's kubeconfig.
func serverURL(t *testing.T, s *Server) string {
	t.Helper()
	return s.MustKubectl(t, "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")
}

// nodeToken is the server's DATA_DIR/node-token.
func nodeToken(t *testing.T, s *Server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "node-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// fullToken is K10<sha256 of the server's CA>::<node-token>.
func fullToken(t *testing.T, s *Server) string {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(s.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca)
	return "K10" + hex.EncodeToString(sum[:]) + "::" + nodeToken(t, s)
}

// StartNodeAgent runs `k1s agent` joining s as node name (with the bare
// node token unless extra has --token) and waits until the node is Ready.
// The agent is stopped, its pods with it, when the test ends.
func StartNodeAgent(t *testing.T, s *Server, name string, extra ...string) *NodeAgent {
	t.Helper()
	a := &NodeAgent{Name: name, DataDir: t.TempDir()}
	a.args = []string{"agent", "--server", serverURL(t, s), "--data-dir", a.DataDir,
		"--node-name", name, "--kubelet-port", "0", "--stop-pods-on-exit"}
	a.args = append(a.args, defaultRuntimeArgs(extra)...)
	a.args = append(a.args, s.networkFlags()...) // the server's ranges
	hasToken := false
	for _, e := range extra {
		hasToken = hasToken || strings.HasPrefix(e, "--token")
	}
	if !hasToken {
		a.args = append(a.args, "--token", nodeToken(t, s))
	}
	a.args = append(a.args, extra...)
	t.Cleanup(func() {
		a.Stop(t)
		killShims(a.DataDir)
		if t.Failed() {
			t.Logf("agent %s log (tail):\n%s", name, tail(a.Log(), 60))
		}
	})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitNodeReady(t, s, name, "True", 60*time.Second)
	return a
}

// Start starts the agent process (again).
func (a *NodeAgent) Start() error {
	a.cmd = exec.Command(binary, a.args...)
	a.logMu.Lock()
	if a.log == nil {
		a.log = &bytes.Buffer{}
	}
	a.logMu.Unlock()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	a.cmd.Stdout, a.cmd.Stderr = pw, pw
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	pw.Close()
	a.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			a.logMu.Lock()
			a.log.WriteString(sc.Text() + "\n")
			a.logMu.Unlock()
		}
	}()
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(a.cmd, a.done)
	return nil
}

// Log is what the agent printed so far (all its runs).
func (a *NodeAgent) Log() string {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	return a.log.String()
}

// Running says whether the agent process is alive.
func (a *NodeAgent) Running() bool {
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the agent alone: its containers keep running, as a
// kubelet's do when it dies.
func (a *NodeAgent) Kill() {
	if !a.Running() {
		return
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// Stop sends SIGTERM (the agent stops its pods) and waits.
func (a *NodeAgent) Stop(t *testing.T) {
	if !a.Running() {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(40 * time.Second):
		t.Logf("agent %s did not stop within 40s after SIGTERM", a.Name)
		a.Kill()
	}
}

// Wait waits for the agent to exit on its own and returns its exit code.
func (a *NodeAgent) Wait(timeout time.Duration) (int, bool) {
	select {
	case <-a.done:
		return a.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// killShims ends the sessions of containers left running by a killed agent
// whose data dir is dir (each shim leads its container's session).
func killShims(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(filepath.Join(dir, "runtime")+"/")) {
			continue
		}
		if sid, err := unix.Getsid(pid); err == nil && sid == pid {
			killSession(sid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func killSession(sid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sid {
			continue
		}
		if s, err := unix.Getsid(pid); err == nil && s == sid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitNodeReady waits until the node's Ready condition has status.
func waitNodeReady(t *testing.T, s *Server, node, status string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("node %s Ready=%s", node, status), func() (bool, string) {
		got := s.Kubectl(t, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).Stdout
		return got == status, got
	})
}

// localNode is the server's own node: the one that is not an agent's.
func localNode(t *testing.T, s *Server, agents ...*NodeAgent) string {
	t.Helper()
	names := strings.Fields(s.MustKubectl(t, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
next:
	for _, n := range names {
		for _, a := range agents {
			if a.Name == n {
				continue next
			}
		}
		return n
	}
	t.Fatalf("no local node among %v", names)
	return ""
}

// podNodes maps the pods of ns matching selector to their nodes.
func podNodes(t *testing.T, s *Server, ns, selector string) map[string]string {
	t.Helper()
	args := []string{"get", "pods", "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}={.status.phase}={.metadata.deletionTimestamp}{"\n"}{end}`}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s.MustKubectl(t, args...)), "\n") {
		f := strings.Split(line, "=")
		if len(f) != 4 {
			continue
		}
		state := f[1] + "/" + f[2]
		if f[3] != "" {
			state += "/Terminating"
		}
		m[f[0]] = state
	}
	return m
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
