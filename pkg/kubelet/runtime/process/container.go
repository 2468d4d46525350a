package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// container is the runtime's view of one container. rec and spec never
// change; state and the flags are guarded by Runtime.mu.
type container struct {
	rec  containerRecord
	spec processSpec
	dir  string

	state    *shimState // nil while Created
	starting bool
	removed  bool

	exited   chan struct{} // closed once the exit is known
	exitOnce sync.Once
}

func newContainer(rec containerRecord, spec processSpec, dir string) *container {
	return &container{rec: rec, spec: spec, dir: dir, exited: make(chan struct{})}
}

func (c *container) markExited() { c.exitOnce.Do(func() { close(c.exited) }) }

func (c *container) runtimeState() runtime.ContainerState {
	switch {
	case c.state == nil:
		return runtime.ContainerCreated
	case c.state.Status == statusRunning:
		return runtime.ContainerRunning
	case c.state.Status == statusExited:
		return runtime.ContainerExited
	}
	return runtime.ContainerUnknown
}

// criStateName is the CRI name of a state, used in error messages the way
// containerd words them.
func criStateName(s runtime.ContainerState) string {
	switch s {
	case runtime.ContainerCreated:
		return "CONTAINER_CREATED"
	case runtime.ContainerRunning:
		return "CONTAINER_RUNNING"
	case runtime.ContainerExited:
		return "CONTAINER_EXITED"
	}
	return "CONTAINER_UNKNOWN"
}

func (c *container) status() *runtime.ContainerStatus {
	cfg := &c.rec.Config
	s := &runtime.ContainerStatus{
		ID:          c.rec.ID,
		SandboxID:   c.rec.SandboxID,
		Name:        cfg.Name,
		Attempt:     cfg.Attempt,
		State:       c.runtimeState(),
		CreatedAt:   c.rec.CreatedAt,
		Image:       cfg.Image,
		ImageRef:    c.rec.ImageRef,
		LogPath:     cfg.LogPath,
		Labels:      copyMap(cfg.Labels),
		Annotations: copyMap(cfg.Annotations),
	}
	if st := c.state; st != nil {
		s.StartedAt = st.StartedAt
		if st.Status == statusExited {
			s.FinishedAt = st.FinishedAt
			s.ExitCode = st.ExitCode
			s.Signal = st.Signal
			s.Reason = st.Reason
			s.Message = st.Message
		}
	}
	return s
}

func (r *Runtime) getContainer(id string) *container {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.containers[id]
}

func notFound(id string) error {
	return fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
}

// CreateContainer implements runtime.Runtime. Command and Args both empty
// is runtime.ErrInvalidConfig: the host runtime has no image entrypoint.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtime.ContainerConfig) (string, error) {
	if cfg == nil {
		return "", fmt.Errorf("%w: container config is nil", runtime.ErrInvalidConfig)
	}
	args := append(append([]string(nil), cfg.Command...), cfg.Args...)
	if len(args) == 0 {
		return "", fmt.Errorf("%w: no command specified: the host runtime has no image entrypoint, set command or args", runtime.ErrInvalidConfig)
	}
	if cfg.LogPath != "" && !filepath.IsAbs(cfg.LogPath) {
		return "", fmt.Errorf("%w: log path %q is not absolute", runtime.ErrInvalidConfig, cfg.LogPath)
	}
	imageRef, err := normalizeImage(cfg.Image)
	if err != nil && cfg.Image != "" {
		return "", err
	}

	r.mu.Lock()
	sb := r.sandboxes[sandboxID]
	if sb == nil {
		r.mu.Unlock()
		return "", fmt.Errorf("pod sandbox %q: %w", sandboxID, runtime.ErrNotFound)
	}
	if sb.rec.State != runtime.SandboxReady {
		r.mu.Unlock()
		return "", fmt.Errorf("sandbox container %q is not running", sandboxID)
	}
	for _, c := range r.containers {
		if c.rec.SandboxID == sandboxID && c.rec.Config.Name == cfg.Name && c.rec.Config.Attempt == cfg.Attempt {
			r.mu.Unlock()
			return "", fmt.Errorf("container name %q attempt %d is reserved for %q", cfg.Name, cfg.Attempt, c.rec.ID)
		}
	}
	sbCfg := sb.rec.Config
	r.mu.Unlock()

	id := newID()
	dir := r.containerDir(id)
	rec := containerRecord{ID: id, SandboxID: sandboxID, CreatedAt: r.clock.Now(), Config: copyConfig(cfg), ImageRef: imageRef}
	spec := processSpec{
		Args:      args,
		Env:       containerEnv(&sbCfg, cfg),
		Dir:       cfg.WorkingDir,
		LogPath:   cfg.LogPath,
		Stdin:     cfg.Stdin,
		StdinOnce: cfg.StdinOnce,
		TTY:       cfg.TTY,
		HostPath:  hostPath(),
	}
	if spec.LogPath == "" {
		spec.LogPath = os.DevNull
	}
	if spec.Dir == "" {
		spec.Dir = filepath.Join(dir, rootfsDir)
	}
	if err := r.writeContainer(dir, &rec, &spec); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	c := newContainer(rec, spec, dir)
	r.mu.Lock()
	r.containers[id] = c
	r.mu.Unlock()
	r.emit(runtime.ContainerCreatedEvent, c)
	return id, nil
}

func (r *Runtime) writeContainer(dir string, rec *containerRecord, spec *processSpec) error {
	if err := os.MkdirAll(filepath.Join(dir, rootfsDir), 0o755); err != nil {
		return err
	}
	if rec.Config.WorkingDir != "" {
		// Like a runtime creating the working dir in the rootfs; if it
		// cannot be made the start fails with the chdir error.
		_ = os.MkdirAll(rec.Config.WorkingDir, 0o755)
	}
	if err := writeJSON(filepath.Join(dir, specFile), spec); err != nil {
		return err
	}
	// container.json last: load() skips directories without it.
	return writeJSON(filepath.Join(dir, containerFile), rec)
}

func copyConfig(cfg *runtime.ContainerConfig) runtime.ContainerConfig {
	out := *cfg
	out.Command = append([]string(nil), cfg.Command...)
	out.Args = append([]string(nil), cfg.Args...)
	out.Env = append([]runtime.KeyValue(nil), cfg.Env...)
	out.Mounts = append([]runtime.Mount(nil), cfg.Mounts...)
	out.Labels = copyMap(cfg.Labels)
	out.Annotations = copyMap(cfg.Annotations)
	if cfg.Resources != nil {
		res := *cfg.Resources
		out.Resources = &res
	}
	if cfg.RunAsUser != nil {
		v := *cfg.RunAsUser
		out.RunAsUser = &v
	}
	if cfg.RunAsGroup != nil {
		v := *cfg.RunAsGroup
		out.RunAsGroup = &v
	}
	return out
}

// StartContainer starts the container's shim and returns once the process
// runs (or failed to start: the container is then Exited with reason
// StartError and the error is returned).
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	c := r.containers[id]
	if c == nil {
		r.mu.Unlock()
		return notFound(id)
	}
	if c.state != nil || c.starting {
		s := c.runtimeState()
		r.mu.Unlock()
		return fmt.Errorf("container %q is in %s state", id, criStateName(s))
	}
	c.starting = true
	r.mu.Unlock()

	st, release, err := r.runShim(ctx, c)

	r.mu.Lock()
	c.starting = false
	c.state = &st
	r.mu.Unlock()
	if st.Status == statusExited {
		c.markExited()
		r.emit(runtime.ContainerStoppedEvent, c)
	} else {
		r.emit(runtime.ContainerStartedEvent, c)
	}
	// Only now may the shim's exit be processed: Started comes first.
	release()
	return err
}

// runShim spawns the shim and reads its start report. The returned state
// is what the container is now; err is set when it did not start. The
// shim's exit is not processed before release is called.
func (r *Runtime) runShim(ctx context.Context, c *container) (_ shimState, release func(), _ error) {
	reported := make(chan struct{})
	release = sync.OnceFunc(func() { close(reported) })
	fail := func(msg string) (shimState, func(), error) {
		st := shimState{
			Status:     statusExited,
			FinishedAt: time.Now(),
			ExitCode:   exitCodeStart,
			Reason:     reasonStartError,
			Message:    msg,
		}
		_ = writeJSON(filepath.Join(c.dir, stateFile), &st)
		return st, release, errors.New(msg)
	}
	if err := writeShimSpec(c.dir, &c.spec); err != nil {
		return fail(fmt.Sprintf("failed to start container process: %v", err))
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(fmt.Sprintf("failed to start shim: %v", err))
	}
	defer pr.Close()
	shimLog, err := os.OpenFile(filepath.Join(c.dir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		pw.Close()
		return fail(fmt.Sprintf("failed to start shim: %v", err))
	}
	args := append(append([]string(nil), r.opts.ShimArgs...), "--dir", c.dir, "--report-fd", "3")
	cmd := exec.Command(r.opts.ShimBinary, args...)
	// K1S_SHIM=1 (last, so it wins) makes the C shim run before Go starts.
	cmd.Env = append(append(os.Environ(), r.opts.ShimEnv...), shimMarkerEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdout = shimLog
	cmd.Stderr = shimLog
	cmd.ExtraFiles = []*os.File{pw}
	// Its own session: the shim outlives the agent and its terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	shimLog.Close()
	if err != nil {
		return fail(fmt.Sprintf("failed to start shim %s: %v", r.opts.ShimBinary, err))
	}

	go func() {
		waitChild(cmd)
		<-reported
		r.shimGone(c)
	}()

	type result struct {
		st  shimState
		err error
	}
	res := make(chan result, 1)
	go func() {
		var st shimState
		err := json.NewDecoder(pr).Decode(&st)
		res <- result{st, err}
	}()
	select {
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return fail(fmt.Sprintf("failed to start container: %v", ctx.Err()))
	case rr := <-res:
		if rr.err != nil {
			return fail(fmt.Sprintf("shim exited before starting the container: %s", r.shimLogTail(c)))
		}
		if rr.st.Status == statusExited {
			return rr.st, release, errors.New(rr.st.Message)
		}
		return rr.st, release, nil
	}
}

// shimLogTail is the end of the shim's diagnostics, for error messages.
func (r *Runtime) shimLogTail(c *container) string {
	data, err := os.ReadFile(filepath.Join(c.dir, shimLogFile))
	if err != nil || len(data) == 0 {
		return "no diagnostics"
	}
	if len(data) > 512 {
		data = data[len(data)-512:]
	}
	return string(bytes.TrimSpace(data))
}

// shimGone runs when a running container's shim has exited: it records the
// exit the shim wrote, or, if the shim died without writing it, kills what
// is left and records the exit as containerd does after a dead shim.
func (r *Runtime) shimGone(c *container) {
	if r.isClosed() {
		return
	}
	r.mu.Lock()
	known := c.removed || (c.state != nil && c.state.Status == statusExited)
	r.mu.Unlock()
	if known {
		return
	}
	var st shimState
	if err := readJSON(filepath.Join(c.dir, stateFile), &st); err != nil || st.Status != statusExited {
		st = r.afterDeadShim(c, st)
		if err := writeJSON(filepath.Join(c.dir, stateFile), &st); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "process runtime: record exit of %s: %v\n", c.rec.ID, err)
		}
	}
	r.mu.Lock()
	if c.removed {
		r.mu.Unlock()
		return
	}
	c.state = &st
	r.mu.Unlock()
	c.markExited()
	r.emit(runtime.ContainerStoppedEvent, c)
}

// afterDeadShim computes the exit of a container whose shim vanished.
func (r *Runtime) afterDeadShim(c *container, st shimState) shimState {
	st.Status = statusExited
	st.FinishedAt = time.Now()
	if alive(st.PID, st.PIDStart) {
		_ = unix.Kill(-st.PID, unix.SIGKILL)
		for i := 0; i < 50 && alive(st.PID, st.PIDStart); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		st.ExitCode = 128 + int32(unix.SIGKILL)
		st.Signal = int32(unix.SIGKILL)
		st.Reason = reasonError
		st.Message = "the container's shim exited unexpectedly; the container was killed"
		return st
	}
	st.ExitCode = exitCodeUnknown
	st.Reason = reasonUnknown
	st.Message = "the container's shim exited unexpectedly; its exit status is unknown"
	return st
}

// StopContainer implements runtime.Runtime; see the package documentation
// for which processes get SIGTERM. Stopping a container that is not
// running (or unknown) is a no-op.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	r.mu.Lock()
	c := r.containers[id]
	var st shimState
	running := c != nil && c.state != nil && c.state.Status == statusRunning
	if running {
		st = *c.state
	}
	r.mu.Unlock()
	if !running {
		return nil
	}
	if timeout > 0 {
		r.signalStop(st)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-c.exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if alive(st.PID, st.PIDStart) {
		_ = unix.Kill(-st.PID, unix.SIGKILL)
	}
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// signalStop sends SIGTERM the way a container's PID 1 would receive it
// (or to the whole group with SignalProcessGroup).
func (r *Runtime) signalStop(st shimState) {
	if !alive(st.PID, st.PIDStart) {
		return
	}
	if r.opts.SignalProcessGroup {
		_ = unix.Kill(-st.PID, unix.SIGTERM)
		return
	}
	if catchesSignal(st.PID, unix.SIGTERM) {
		_ = unix.Kill(st.PID, unix.SIGTERM)
	}
}

// RemoveContainer kills the container if it runs and removes its state.
// Removing an unknown container is a no-op.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c := r.getContainer(id)
	if c == nil {
		return nil
	}
	if err := r.StopContainer(ctx, id, 0); err != nil {
		return err
	}
	r.mu.Lock()
	if c.removed {
		r.mu.Unlock()
		return nil
	}
	if c.starting {
		r.mu.Unlock()
		return fmt.Errorf("container %q is starting", id)
	}
	c.removed = true
	delete(r.containers, id)
	r.mu.Unlock()
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	r.emit(runtime.ContainerDeletedEvent, c)
	return nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	if c == nil {
		return nil, notFound(id)
	}
	return c.status(), nil
}

// ListContainers implements runtime.Runtime, oldest first.
func (r *Runtime) ListContainers(ctx context.Context, filter runtime.ContainerFilter) ([]*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtime.ContainerStatus
	for _, c := range r.containers {
		if filter.SandboxID != "" && c.rec.SandboxID != filter.SandboxID {
			continue
		}
		if filter.State != nil && c.runtimeState() != *filter.State {
			continue
		}
		if !labelsMatch(c.rec.Config.Labels, filter.Labels) {
			continue
		}
		out = append(out, c.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func labelsMatch(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ReopenContainerLog makes the shim reopen the container's log file (CRI
// ReopenContainerLog, for log rotation: rename the file, then call this).
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	r.mu.Lock()
	c := r.containers[id]
	var st shimState
	running := c != nil && c.state != nil && c.state.Status == statusRunning
	if running {
		st = *c.state
	}
	r.mu.Unlock()
	if c == nil {
		return notFound(id)
	}
	if !running || !alive(st.ShimPID, st.ShimStart) {
		return fmt.Errorf("container %q is not running", id)
	}
	if err := unix.Kill(st.ShimPID, unix.SIGUSR1); err != nil {
		return err
	}
	// The shim reopens asynchronously; wait until the file exists again.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(c.spec.LogPath); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("container %q: log %s was not reopened", id, c.spec.LogPath)
}

// runningState returns the state of a running container or an error
// worded like containerd's.
func (r *Runtime) runningState(id string) (*container, shimState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	if c == nil {
		return nil, shimState{}, notFound(id)
	}
	if s := c.runtimeState(); s != runtime.ContainerRunning {
		return nil, shimState{}, fmt.Errorf("container %q is in %s state", id, criStateName(s))
	}
	return c, *c.state, nil
}
