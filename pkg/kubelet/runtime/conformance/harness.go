// Package conformance is a scenario suite every runtime.Runtime must pass
// (the host runtime, later oci and a remote CRI client). A runtime package
// runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		conformance.RunSuite(t, func(t *testing.T) runtime.Runtime { return newRuntime(t) })
//	}
//
// Containers run busybox-level shell commands (sh, echo, cat, sleep, stty,
// trap), so the same scenarios hold for host processes and for images.
// PortForward uses a host-network sandbox and a listener in the test
// process, which every runtime can reach.
package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// Suite configures a run of the scenarios.
type Suite struct {
	// NewRuntime returns a fresh runtime for one scenario; it registers
	// its own cleanup with t.
	NewRuntime func(t *testing.T) runtime.Runtime
	// Image of every container; default "busybox". The host runtime
	// ignores it.
	Image string
	// Timeout bounds every wait for a state; default 10s.
	Timeout time.Duration
}

// RunSuite runs every scenario against the runtimes newRuntime returns.
func RunSuite(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime) {
	Run(t, Suite{NewRuntime: newRuntime})
}

// Run runs every scenario with the given configuration.
func Run(t *testing.T, s Suite) {
	if s.Image == "" {
		s.Image = "busybox"
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(t, newHarness(t, s))
		})
	}
}

type scenario struct {
	name string
	run  func(t *testing.T, h *harness)
}

// idleCmd runs until SIGTERM, then exits 0 promptly (even as PID 1: it
// installs a handler). It logs "ready" once the handler is in place.
const idleCmd = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"

// harness wraps one runtime for one scenario.
type harness struct {
	t       *testing.T
	s       Suite
	rt      runtime.Runtime
	ctx     context.Context
	logRoot string

	evMu   sync.Mutex
	events []runtime.ContainerEvent
}

func newHarness(t *testing.T, s Suite) *harness {
	rt := s.NewRuntime(t)
	h := &harness{t: t, s: s, rt: rt, ctx: context.Background(), logRoot: t.TempDir()}
	stop := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case <-stop:
				return
			case ev := <-rt.Events():
				h.evMu.Lock()
				h.events = append(h.events, ev)
				h.evMu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-collected
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sbs, err := rt.ListPodSandboxes(ctx)
		if err != nil {
			t.Errorf("cleanup: ListPodSandboxes: %v", err)
			return
		}
		for _, sb := range sbs {
			if err := rt.RemovePodSandbox(ctx, sb.ID); err != nil {
				t.Errorf("cleanup: RemovePodSandbox(%s): %v", sb.ID, err)
			}
		}
	})
	return h
}

func randomUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sandboxConfig is a host-network pod sandbox config named name.
func (h *harness) sandboxConfig(name string) *runtime.PodSandboxConfig {
	uid := randomUID()
	return &runtime.PodSandboxConfig{
		UID:          uid,
		Name:         name,
		Namespace:    "conformance",
		Hostname:     name,
		LogDirectory: filepath.Join(h.logRoot, "conformance_"+name+"_"+uid),
		HostNetwork:  true,
		Labels:       map[string]string{"io.kubernetes.pod.name": name},
		Annotations:  map[string]string{"note": "conformance"},
	}
}

func (h *harness) sandbox(name string) string {
	h.t.Helper()
	cfg := h.sandboxConfig(name)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		h.t.Fatal(err)
	}
	id, err := h.rt.RunPodSandbox(h.ctx, cfg)
	if err != nil {
		h.t.Fatalf("RunPodSandbox: %v", err)
	}
	return id
}

// containerConfig runs `sh -c script`, logging to the sandbox's log dir.
func (h *harness) containerConfig(sandboxID, name, script string) *runtime.ContainerConfig {
	h.t.Helper()
	sb, err := h.rt.PodSandboxStatus(h.ctx, sandboxID)
	if err != nil {
		h.t.Fatalf("PodSandboxStatus: %v", err)
	}
	logDir := filepath.Join(h.logRoot, "conformance_"+sb.Name+"_"+sb.UID, name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	return &runtime.ContainerConfig{
		Name:        name,
		Image:       h.s.Image,
		Command:     []string{"sh", "-c"},
		Args:        []string{script},
		LogPath:     filepath.Join(logDir, "0.log"),
		Labels:      map[string]string{"io.kubernetes.container.name": name},
		Annotations: map[string]string{"io.kubernetes.container.restartCount": "0"},
	}
}

func (h *harness) create(sandboxID string, cfg *runtime.ContainerConfig) string {
	h.t.Helper()
	id, err := h.rt.CreateContainer(h.ctx, sandboxID, cfg)
	if err != nil {
		h.t.Fatalf("CreateContainer(%s): %v", cfg.Name, err)
	}
	return id
}

func (h *harness) start(id string) {
	h.t.Helper()
	if err := h.rt.StartContainer(h.ctx, id); err != nil {
		h.t.Fatalf("StartContainer: %v", err)
	}
}

// run creates and starts `sh -c script`.
func (h *harness) run(sandboxID, name, script string, mutate ...func(*runtime.ContainerConfig)) (string, *runtime.ContainerConfig) {
	h.t.Helper()
	cfg := h.containerConfig(sandboxID, name, script)
	for _, m := range mutate {
		m(cfg)
	}
	id := h.create(sandboxID, cfg)
	h.start(id)
	return id, cfg
}

// runIdle runs idleCmd and waits until its SIGTERM handler is installed.
func (h *harness) runIdle(sandboxID, name string, mutate ...func(*runtime.ContainerConfig)) string {
	h.t.Helper()
	id, cfg := h.run(sandboxID, name, idleCmd, mutate...)
	h.waitLog(cfg.LogPath, "ready")
	return id
}

// waitLog waits until the log at path has an entry with content.
func (h *harness) waitLog(path, content string) {
	h.t.Helper()
	h.eventually("log line "+content, func() bool {
		entries, _ := readLog(path)
		for _, e := range entries {
			if e.Content == content {
				return true
			}
		}
		return false
	})
}

func (h *harness) status(id string) *runtime.ContainerStatus {
	h.t.Helper()
	st, err := h.rt.ContainerStatus(h.ctx, id)
	if err != nil {
		h.t.Fatalf("ContainerStatus: %v", err)
	}
	return st
}

// waitState polls until the container is in state.
func (h *harness) waitState(id string, state runtime.ContainerState) *runtime.ContainerStatus {
	h.t.Helper()
	deadline := time.Now().Add(h.s.Timeout)
	for {
		st := h.status(id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("container %s is %v after %v, want %v", st.Name, st.State, h.s.Timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond until it holds.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(h.s.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", h.s.Timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventsFor returns the event types seen so far for container id.
func (h *harness) eventsFor(id string) []runtime.ContainerEventType {
	h.evMu.Lock()
	defer h.evMu.Unlock()
	var out []runtime.ContainerEventType
	for _, ev := range h.events {
		if ev.ContainerID == id {
			out = append(out, ev.Type)
		}
	}
	return out
}

// logEntry is one line of a CRI log file.
type logEntry struct {
	Time    time.Time
	Stream  string
	Tag     string
	Content string
}

// readLog parses a CRI log file strictly: "<RFC3339Nano> <stdout|stderr>
// <F|P> <content>\n" per line.
func readLog(path string) ([]logEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("log does not end with a newline")
	}
	var out []logEntry
	for _, line := range bytes.Split(data[:len(data)-1], []byte{'\n'}) {
		parts := strings.SplitN(string(line), " ", 4)
		if len(parts) != 4 {
			return nil, fmt.Errorf("malformed log line %q", line)
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			return nil, fmt.Errorf("log line %q: %v", line, err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" {
			return nil, fmt.Errorf("log line %q: stream %q", line, parts[1])
		}
		if parts[2] != "F" && parts[2] != "P" {
			return nil, fmt.Errorf("log line %q: tag %q", line, parts[2])
		}
		out = append(out, logEntry{Time: ts, Stream: parts[1], Tag: parts[2], Content: parts[3]})
	}
	return out, nil
}

// syncBuffer is a WriteCloser safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Close() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
