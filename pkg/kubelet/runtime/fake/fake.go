// Package fake is an in-memory runtime.Runtime for the kubelet's tests.
//
// Containers do nothing by themselves: a test decides when they exit (Exit,
// or a Behavior registered per container name that exits them as soon as
// they start). Time comes from the injected clock, so statuses carry
// deterministic timestamps. Every call is recorded for assertions.
package fake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k8s.io/utils/clock"
)

// Behavior makes containers with a given name act by themselves.
type Behavior struct {
	// ExitOnStart: the container exits with ExitCode as soon as it starts.
	ExitOnStart bool
	ExitCode    int32
	// Output is written to the container's log file (CRI format) on start.
	Output []string
	// IgnoreTerm: StopContainer ends it with SIGKILL (exit 137) instead of
	// SIGTERM (exit 143), as a shell that ignores SIGTERM would.
	IgnoreTerm bool
	// CreateError makes CreateContainer fail, StartError StartContainer.
	CreateError error
	StartError  error
}

// Runtime is the fake. The zero value is not usable: call New.
type Runtime struct {
	name  string
	clock clock.Clock

	mu         sync.Mutex
	seq        int
	sandboxes  map[string]*runtime.SandboxStatus
	containers map[string]*runtime.ContainerStatus
	configs    map[string]*runtime.ContainerConfig
	behaviors  map[string]Behavior
	calls      []string
	execFunc   func(id string, cmd []string) (stdout, stderr []byte, code int, err error)
	images     map[string]*runtime.ImageStatus
	pullErr    map[string]error
	events     chan runtime.ContainerEvent
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a fake runtime named name ("host" in most tests).
func New(name string, c clock.Clock) *Runtime {
	return &Runtime{
		name:       name,
		clock:      c,
		sandboxes:  map[string]*runtime.SandboxStatus{},
		containers: map[string]*runtime.ContainerStatus{},
		configs:    map[string]*runtime.ContainerConfig{},
		behaviors:  map[string]Behavior{},
		events:     make(chan runtime.ContainerEvent, 4096),
	}
}

// SetBehavior registers how containers named name behave from now on.
func (r *Runtime) SetBehavior(name string, b Behavior) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.behaviors[name] = b
}

// SetExec installs the ExecSync implementation (default: exit 0, no output).
func (r *Runtime) SetExec(f func(id string, cmd []string) ([]byte, []byte, int, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execFunc = f
}

// SetImagePresent marks an image present (ImageStatus finds it).
func (r *Runtime) SetImagePresent(image string, present bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.images == nil {
		r.images = map[string]*runtime.ImageStatus{}
	}
	if present {
		r.images[image] = &runtime.ImageStatus{Ref: image, ID: "sha256:" + image, SizeBytes: 1000}
	} else {
		delete(r.images, image)
	}
}

// SetPullError makes PullImage of image fail.
func (r *Runtime) SetPullError(image string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pullErr == nil {
		r.pullErr = map[string]error{}
	}
	r.pullErr[image] = err
}

// Calls returns the recorded calls ("CreateContainer app", "StopContainer app", ...).
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Config returns the config a container was created with.
func (r *Runtime) Config(id string) *runtime.ContainerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.configs[id]
}

func (r *Runtime) record(format string, args ...any) {
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *Runtime) emit(ev runtime.ContainerEvent) {
	select {
	case r.events <- ev:
	default:
	}
}

func (r *Runtime) Name() string { return r.name }

func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtime.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	id := fmt.Sprintf("s%d", r.seq)
	r.sandboxes[id] = &runtime.SandboxStatus{
		ID: id, UID: cfg.UID, Name: cfg.Name, Namespace: cfg.Namespace, Attempt: cfg.Attempt,
		State: runtime.SandboxReady, CreatedAt: r.clock.Now(),
		Labels: copyMap(cfg.Labels), Annotations: copyMap(cfg.Annotations),
	}
	r.record("RunPodSandbox %s", cfg.Name)
	return id, nil
}

func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	r.mu.Lock()
	s, ok := r.sandboxes[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	var evs []runtime.ContainerEvent
	for _, c := range r.containers {
		if c.SandboxID == id && c.State == runtime.ContainerRunning {
			r.exitLocked(c, 137, 9)
			evs = append(evs, runtime.ContainerEvent{ContainerID: c.ID, SandboxID: id, Type: runtime.ContainerStoppedEvent, Time: r.clock.Now()})
		}
	}
	s.State = runtime.SandboxNotReady
	r.record("StopPodSandbox %s", s.Name)
	r.mu.Unlock()
	for _, ev := range evs {
		r.emit(ev)
	}
	return nil
}

func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil
	}
	for cid, c := range r.containers {
		if c.SandboxID == id {
			delete(r.containers, cid)
		}
	}
	delete(r.sandboxes, id)
	r.record("RemovePodSandbox %s", s.Name)
	return nil
}

func (r *Runtime) PodSandboxStatus(ctx context.Context, id string) (*runtime.SandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %s: %w", id, runtime.ErrNotFound)
	}
	c := *s
	return &c, nil
}

func (r *Runtime) ListPodSandboxes(ctx context.Context) ([]*runtime.SandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtime.SandboxStatus
	for _, s := range r.sandboxes {
		c := *s
		c.Labels, c.Annotations = copyMap(s.Labels), copyMap(s.Annotations)
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r *Runtime) ImageStatus(ctx context.Context, image string) (*runtime.ImageStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.images == nil { // every image is present unless the test manages images
		return &runtime.ImageStatus{Ref: image, ID: "sha256:" + image, SizeBytes: 1000}, nil
	}
	if s, ok := r.images[image]; ok {
		c := *s
		return &c, nil
	}
	return nil, fmt.Errorf("image %s: %w", image, runtime.ErrNotFound)
}

func (r *Runtime) PullImage(ctx context.Context, image string, auth []runtime.RegistryAuth) (*runtime.ImageStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("PullImage %s", image)
	if err := r.pullErr[image]; err != nil {
		return nil, err
	}
	s := &runtime.ImageStatus{Ref: image, ID: "sha256:" + image, SizeBytes: 1000}
	if r.images != nil {
		r.images[image] = s
	}
	c := *s
	return &c, nil
}

func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtime.ContainerConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sandboxes[sandboxID]; !ok {
		return "", fmt.Errorf("sandbox %s: %w", sandboxID, runtime.ErrNotFound)
	}
	if err := r.behaviors[cfg.Name].CreateError; err != nil {
		return "", err
	}
	r.seq++
	id := fmt.Sprintf("c%d", r.seq)
	cc := *cfg
	r.configs[id] = &cc
	r.containers[id] = &runtime.ContainerStatus{
		ID: id, SandboxID: sandboxID, Name: cfg.Name, Attempt: cfg.Attempt,
		State: runtime.ContainerCreated, CreatedAt: r.clock.Now(),
		Image: cfg.Image, ImageRef: "sha256:" + cfg.Image, LogPath: cfg.LogPath,
		Labels: copyMap(cfg.Labels), Annotations: copyMap(cfg.Annotations),
	}
	r.record("CreateContainer %s", cfg.Name)
	return id, nil
}

func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	b := r.behaviors[c.Name]
	r.record("StartContainer %s", c.Name)
	if b.StartError != nil {
		r.exitLocked(c, 128, 0)
		c.Reason = "StartError"
		r.mu.Unlock()
		return b.StartError
	}
	now := r.clock.Now()
	c.State = runtime.ContainerRunning
	c.StartedAt = now
	if len(b.Output) > 0 && c.LogPath != "" {
		writeLog(c.LogPath, now, b.Output)
	}
	evs := []runtime.ContainerEvent{{ContainerID: id, SandboxID: c.SandboxID, Type: runtime.ContainerStartedEvent, Time: now}}
	if b.ExitOnStart {
		r.exitLocked(c, b.ExitCode, 0)
		evs = append(evs, runtime.ContainerEvent{ContainerID: id, SandboxID: c.SandboxID, Type: runtime.ContainerStoppedEvent, Time: now})
	}
	r.mu.Unlock()
	for _, ev := range evs {
		r.emit(ev)
	}
	return nil
}

func (r *Runtime) exitLocked(c *runtime.ContainerStatus, code, signal int32) {
	c.State = runtime.ContainerExited
	c.ExitCode = code
	c.Signal = signal
	c.FinishedAt = r.clock.Now()
	if code == 0 {
		c.Reason = "Completed"
	} else {
		c.Reason = "Error"
	}
}

// Exit ends a running container with code, as if its process exited.
func (r *Runtime) Exit(id string, code int32) {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok || c.State != runtime.ContainerRunning {
		r.mu.Unlock()
		return
	}
	r.exitLocked(c, code, 0)
	ev := runtime.ContainerEvent{ContainerID: id, SandboxID: c.SandboxID, Type: runtime.ContainerStoppedEvent, Time: r.clock.Now()}
	r.mu.Unlock()
	r.emit(ev)
}

// Running returns the ids of running containers named name, newest first.
func (r *Runtime) Running(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cs []*runtime.ContainerStatus
	for _, c := range r.containers {
		if c.Name == name && c.State == runtime.ContainerRunning {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID > cs[j].ID })
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	r.record("StopContainer %s %s", c.Name, timeout)
	if c.State != runtime.ContainerRunning {
		if c.State == runtime.ContainerCreated {
			r.exitLocked(c, 0, 0)
		}
		r.mu.Unlock()
		return nil
	}
	if r.behaviors[c.Name].IgnoreTerm {
		r.exitLocked(c, 137, 9)
	} else {
		r.exitLocked(c, 143, 15)
	}
	ev := runtime.ContainerEvent{ContainerID: id, SandboxID: c.SandboxID, Type: runtime.ContainerStoppedEvent, Time: r.clock.Now()}
	r.mu.Unlock()
	r.emit(ev)
	return nil
}

// RemoveContainer removes a container and, as the host runtime does,
// emits a ContainerDeletedEvent.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if ok {
		r.record("RemoveContainer %s", c.Name)
		delete(r.containers, id)
	}
	r.mu.Unlock()
	if ok {
		r.emit(runtime.ContainerEvent{ContainerID: id, SandboxID: c.SandboxID, Type: runtime.ContainerDeletedEvent, Time: r.clock.Now()})
	}
	return nil
}

func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return copyStatus(c), nil
}

func (r *Runtime) ListContainers(ctx context.Context, f runtime.ContainerFilter) ([]*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtime.ContainerStatus
	for _, c := range r.containers {
		if f.SandboxID != "" && c.SandboxID != f.SandboxID {
			continue
		}
		if f.State != nil && c.State != *f.State {
			continue
		}
		match := true
		for k, v := range f.Labels {
			if c.Labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, copyStatus(c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	r.mu.Lock()
	f := r.execFunc
	_, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return nil, nil, 0, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if f == nil {
		return nil, nil, 0, nil
	}
	return f(id, cmd)
}

func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, s runtime.Streams) error {
	stdout, stderr, code, err := r.ExecSync(ctx, id, cmd, 0)
	if err != nil {
		return err
	}
	if s.Stdout != nil {
		s.Stdout.Write(stdout)
	}
	if s.Stderr != nil {
		s.Stderr.Write(stderr)
	}
	if code != 0 {
		return &runtime.ExitError{Code: code}
	}
	return nil
}

func (r *Runtime) Attach(ctx context.Context, id string, s runtime.Streams) error {
	return fmt.Errorf("attach: %w", runtime.ErrInvalidConfig)
}

func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	_, err := io.Copy(stream, stream) // echo
	return err
}

func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtime.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.containers[id]; !ok {
		return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return &runtime.ContainerStats{Timestamp: r.clock.Now(), CPUUsageNanoSeconds: 1e6, MemoryWorkingSetBytes: 1 << 20, MemoryRSSBytes: 1 << 20}, nil
}

// ListContainerStats implements runtime.ContainerStatsLister.
func (r *Runtime) ListContainerStats(ctx context.Context, ids []string) (map[string]*runtime.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("ListContainerStats %d", len(ids))
	out := make(map[string]*runtime.ContainerStats, len(ids))
	for _, id := range ids {
		if _, ok := r.containers[id]; ok {
			out[id] = &runtime.ContainerStats{Timestamp: r.clock.Now(), CPUUsageNanoSeconds: 1e6, MemoryWorkingSetBytes: 1 << 20, MemoryRSSBytes: 1 << 20}
		}
	}
	return out, nil
}

func (r *Runtime) Events() <-chan runtime.ContainerEvent { return r.events }

func copyStatus(c *runtime.ContainerStatus) *runtime.ContainerStatus {
	cc := *c
	cc.Labels, cc.Annotations = copyMap(c.Labels), copyMap(c.Annotations)
	return &cc
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func writeLog(path string, t time.Time, lines []string) {
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintf(f, "%s stdout F %s\n", t.UTC().Format(time.RFC3339Nano), l)
	}
}
