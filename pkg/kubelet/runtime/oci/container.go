package oci

import (
	"context"
	"errors"
	"fmt"
	"github.com/moby/sys/mountinfo"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// Files of containers/<id>/ (the OCI bundle).
const (
	containerFile = "container.json"
	configFile    = "config.json"
	rootfsDir     = "rootfs"
	upperDir      = "upper"
	workDir       = "work"
)

// containerRecord is containers/<id>/container.json.
type containerRecord struct {
	ID        string
	ShimID    string // the host runtime's container holding `runc run`
	SandboxID string
	ImageID   string
	// ImageRef is the container status's imageID: the image's repo
	// digest (<repository>@sha256:...) as containerd reports it, else
	// its ID.
	ImageRef string   `json:",omitempty"`
	Layers   []string // diff ids, base first
	Argv0    string
	Env      []string
	Cwd      string
	Mounts   []runtime.Mount
	// StartError is set when the start was refused before runc ran (e.g.
	// the executable does not exist): the container is Exited with it.
	StartError *startError `json:",omitempty"`
	// Cgroup is the container's cgroup (cgroupfs path) inside PodCgroup;
	// empty in records from before pod cgroups: <CgroupParent>/<ID>.
	Cgroup    string         `json:",omitempty"`
	PodCgroup *podCgroupSpec `json:",omitempty"`
	// OOMChecked: the exited container's OOM counter was read (OOMKilled
	// is the answer), before RemoveContainer deletes its cgroup.
	OOMChecked bool `json:",omitempty"`
	OOMKilled  bool `json:",omitempty"`
}

type startError struct {
	At      time.Time
	Message string
}

type container struct {
	rec     containerRecord
	dir     string
	removed bool
}

// exitCodeStartError and reasonStartError: as containerd reports a
// container whose process could not be started.
const (
	exitCodeStartError = 128
	reasonStartError   = "StartError"
	reasonOOMKilled    = "OOMKilled"
)

func notFound(id string) error {
	return fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
}

func (r *Runtime) get(id string) *container {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.containers[id]
}

// CreateContainer implements runtime.Runtime: it mounts the rootfs
// (overlayfs of the image's layers and a writable upper dir), writes the
// OCI bundle and creates the shim's container that will `runc run` it.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtime.ContainerConfig) (string, error) {
	if cfg == nil {
		return "", fmt.Errorf("%w: container config is nil", runtime.ErrInvalidConfig)
	}
	if cfg.LogPath != "" && !filepath.IsAbs(cfg.LogPath) {
		return "", fmt.Errorf("%w: log path %q is not absolute", runtime.ErrInvalidConfig, cfg.LogPath)
	}
	r.mu.Lock()
	sb := r.sandboxes[sandboxID]
	r.mu.Unlock()
	if sb == nil {
		return "", fmt.Errorf("pod sandbox %q: %w", sandboxID, runtime.ErrNotFound)
	}
	img, err := r.images.Get(cfg.Image)
	switch {
	case errors.Is(err, image.ErrInvalidName):
		return "", fmt.Errorf("%w: %v", runtime.ErrInvalidConfig, err)
	case errors.Is(err, image.ErrNotFound):
		return "", fmt.Errorf("failed to get image %q: %w", cfg.Image, runtime.ErrNotFound)
	case err != nil:
		return "", err
	}

	id := newID()
	dir := r.containerDir(id)
	rootfs := filepath.Join(dir, rootfsDir)
	cleanup := func() {
		_ = unix.Unmount(rootfs, unix.MNT_DETACH)
		_ = r.images.Release(id)
		_ = os.RemoveAll(dir)
	}
	for _, d := range []string{rootfsDir, upperDir, workDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			cleanup()
			return "", err
		}
	}
	if err := r.images.Lease(id, img.ID); err != nil {
		cleanup()
		return "", err
	}
	rec := containerRecord{ID: id, SandboxID: sandboxID, ImageID: img.ID, ImageRef: img.ID, Layers: img.Layers, Mounts: cfg.Mounts}
	rec.ImageRef = repoDigestFor(img, cfg.Image)
	if err := r.mountRootfs(dir, rec.Layers); err != nil {
		cleanup()
		return "", err
	}
	podCg := podCgroupFor(r.opts.CgroupParent, r.podUID(ctx, sandboxID), cfg)
	rec.PodCgroup, rec.Cgroup = &podCg, filepath.Join(podCg.Path, id)
	cgroups := hostCgroups()
	spec, err := buildSpec(specInput{
		id: id, rootfs: rootfs, hostname: sb.Hostname, sandbox: r.sandboxDir(sandboxID),
		cfg: cfg, img: img, cgroup: rec.Cgroup, netns: sb.NetNSPath,
		allCaps: allCaps(), cgroupV2: cgroups.v2,
	})
	if err != nil {
		cleanup()
		return "", err
	}
	cleanupAll := func() {
		cleanup()
		r.releasePodCgroup(&podCg)
	}
	if err := cgroups.ensurePod(r.opts.CgroupParent, podCg); err != nil {
		cleanupAll()
		return "", err
	}
	rec.Argv0, rec.Env, rec.Cwd = spec.Process.Args[0], spec.Process.Env, spec.Process.Cwd
	// runc creates a missing working directory; so does containerd.
	if real, err := resolveInRoot(rootfs, filepath.Dir(spec.Process.Cwd)); err == nil {
		_ = os.MkdirAll(filepath.Join(real, filepath.Base(spec.Process.Cwd)), 0o755)
	}
	if err := writeJSON(filepath.Join(dir, configFile), spec); err != nil {
		cleanupAll()
		return "", err
	}
	shimCfg := &runtime.ContainerConfig{
		Name:    cfg.Name,
		Attempt: cfg.Attempt,
		Image:   cfg.Image,
		// --keep: the exited container's cgroup stays (its OOM counter is
		// read then) until RemoveContainer's `runc delete`.
		Command:     []string{r.opts.Runc, "--root", filepath.Join(r.opts.RootDir, "runc"), "run", "--keep", "--bundle", dir, id},
		WorkingDir:  dir,
		LogPath:     cfg.LogPath,
		Stdin:       cfg.Stdin,
		StdinOnce:   cfg.StdinOnce,
		TTY:         cfg.TTY,
		Labels:      cfg.Labels,
		Annotations: cfg.Annotations,
	}
	c := &container{rec: rec, dir: dir}
	shimID, err := r.shims.CreateContainer(ctx, sandboxID, shimCfg)
	if err != nil {
		cleanupAll()
		return "", err
	}
	c.rec.ShimID = shimID
	if err := writeJSON(filepath.Join(dir, containerFile), &c.rec); err != nil {
		_ = r.shims.RemoveContainer(ctx, shimID)
		cleanupAll()
		return "", err
	}
	r.mu.Lock()
	r.containers[id] = c
	r.byShim[shimID] = id
	r.mu.Unlock()
	return id, nil
}

// mountRootfs mounts the overlay of layers (top first) and the bundle's
// upper dir on the bundle's rootfs, unless it is mounted already.
func (r *Runtime) mountRootfs(dir string, layers []string) error {
	rootfs := filepath.Join(dir, rootfsDir)
	if mounted(rootfs) {
		return nil
	}
	var lower []string
	for i := len(layers) - 1; i >= 0; i-- {
		lower = append(lower, r.images.LayerDir(layers[i]))
	}
	if len(lower) == 0 {
		empty := filepath.Join(dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lower = []string{empty}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"),
		filepath.Join(dir, upperDir), filepath.Join(dir, workDir))
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	return nil
}

// mounted reports whether something is mounted at path.
func mounted(path string) bool {
	m, err := mountinfo.Mounted(path)
	return err == nil && m
}

// StartContainer implements runtime.Runtime. An executable missing from
// the image fails here, before runc runs, as StartError (exit 128).
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	c := r.get(id)
	if c == nil {
		return notFound(id)
	}
	if c.rec.StartError != nil {
		return fmt.Errorf("container %q is in CONTAINER_EXITED state", id)
	}
	st, err := r.shims.ContainerStatus(ctx, c.rec.ShimID)
	if err != nil {
		return err
	}
	if st.State != runtime.ContainerCreated {
		return fmt.Errorf("container %q is in %s state", id, criState(st.State))
	}
	if err := r.mountRootfs(c.dir, c.rec.Layers); err != nil {
		return r.failStart(c, err.Error())
	}
	if _, err := lookExec(filepath.Join(c.dir, rootfsDir), c.rec.Argv0, c.rec.Cwd, c.rec.Env, c.rec.Mounts); err != nil {
		return r.failStart(c, "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "+err.Error()+": unknown")
	}
	// Again: the last sibling's removal may have taken the pod cgroup
	// since CreateContainer.
	if c.rec.PodCgroup != nil {
		if err := hostCgroups().ensurePod(r.opts.CgroupParent, *c.rec.PodCgroup); err != nil {
			return err
		}
	}
	if err := r.shims.StartContainer(ctx, c.rec.ShimID); err != nil {
		return err
	}
	// runc runs; the container exists for exec once runc wrote its state.
	state := filepath.Join(r.opts.RootDir, "runc", id, "state.json")
	for i := 0; i < 1000; i++ {
		if _, err := os.Stat(state); err == nil {
			return nil
		}
		if st, err := r.shims.ContainerStatus(ctx, c.rec.ShimID); err != nil || st.State != runtime.ContainerRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (r *Runtime) failStart(c *container, msg string) error {
	r.mu.Lock()
	c.rec.StartError = &startError{At: r.clock.Now(), Message: msg}
	rec := c.rec
	r.mu.Unlock()
	_ = writeJSON(filepath.Join(c.dir, containerFile), &rec)
	r.emit(runtime.ContainerStartedEvent, c)
	r.emit(runtime.ContainerStoppedEvent, c)
	return errors.New(msg)
}

func criState(s runtime.ContainerState) string {
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

// repoDigestFor is the imageID a container of ref reports: the image's
// repo digest in ref's repository (one image may be known under several),
// else its first repo digest, else its ID.
func repoDigestFor(img *image.Image, ref string) string {
	if norm, err := image.Normalize(ref); err == nil {
		repo := norm
		if i := strings.LastIndex(repo, "@"); i >= 0 {
			repo = repo[:i]
		} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		for _, d := range img.RepoDigests {
			if strings.HasPrefix(d, repo+"@") {
				return d
			}
		}
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// status merges the shim's view of the container with ours.
func (r *Runtime) status(ctx context.Context, c *container) (*runtime.ContainerStatus, error) {
	st, err := r.shims.ContainerStatus(ctx, c.rec.ShimID)
	if err != nil {
		return nil, notFound(c.rec.ID)
	}
	st.ID = c.rec.ID
	st.ImageRef = c.rec.ImageID
	if c.rec.ImageRef != "" {
		st.ImageRef = c.rec.ImageRef
	}
	r.mu.Lock()
	se := c.rec.StartError
	r.mu.Unlock()
	if se != nil && st.State == runtime.ContainerCreated {
		st.State = runtime.ContainerExited
		st.StartedAt, st.FinishedAt = time.Time{}, se.At
		st.ExitCode, st.Reason, st.Message = exitCodeStartError, reasonStartError, se.Message
	}
	if se == nil && st.State == runtime.ContainerExited && r.oomKilled(c) {
		st.Reason = reasonOOMKilled
	}
	return st, nil
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtime.ContainerStatus, error) {
	c := r.get(id)
	if c == nil {
		return nil, notFound(id)
	}
	return r.status(ctx, c)
}

// ListContainers implements runtime.Runtime, oldest first.
func (r *Runtime) ListContainers(ctx context.Context, filter runtime.ContainerFilter) ([]*runtime.ContainerStatus, error) {
	r.mu.Lock()
	cs := make([]*container, 0, len(r.containers))
	for _, c := range r.containers {
		if filter.SandboxID == "" || c.rec.SandboxID == filter.SandboxID {
			cs = append(cs, c)
		}
	}
	r.mu.Unlock()
	var out []*runtime.ContainerStatus
	for _, c := range cs {
		st, err := r.status(ctx, c)
		if err != nil {
			continue // removed meanwhile
		}
		if filter.State != nil && st.State != *filter.State {
			continue
		}
		if !labelsMatch(st.Labels, filter.Labels) {
			continue
		}
		out = append(out, st)
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

// StopContainer implements runtime.Runtime: runc kill SIGTERM (PID 1 of
// the container's PID namespace: ignored unless it handles it, as on
// every runtime), then SIGKILL after timeout.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c := r.get(id)
	if c == nil {
		return nil
	}
	st, err := r.status(ctx, c)
	if err != nil || st.State != runtime.ContainerRunning {
		return nil
	}
	if timeout > 0 {
		_ = r.runc(ctx, "kill", id, "TERM")
		if r.waitExited(ctx, c, timeout) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	_ = r.runc(ctx, "kill", "--all", id, "KILL")
	if r.waitExited(ctx, c, 3*time.Second) {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// runc itself is stuck (or was never told): the shim's SIGKILL of its
	// process group ends it, and the shim kills what it leaves behind.
	kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.shims.StopContainer(kctx, c.rec.ShimID, 0); err != nil {
		return fmt.Errorf("container %q did not stop: %w", id, err)
	}
	return nil
}

// waitExited polls until the container is no longer running.
func (r *Runtime) waitExited(ctx context.Context, c *container, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		st, err := r.shims.ContainerStatus(ctx, c.rec.ShimID)
		if err != nil || st.State != runtime.ContainerRunning {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// RemoveContainer kills the container if it runs, deletes it from runc,
// unmounts its rootfs and removes its bundle.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c := r.get(id)
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
	c.removed = true
	r.mu.Unlock()
	_ = r.runc(ctx, "delete", "--force", id)
	if err := r.shims.RemoveContainer(ctx, c.rec.ShimID); err != nil {
		r.mu.Lock()
		c.removed = false
		r.mu.Unlock()
		return err
	}
	rootfs := filepath.Join(c.dir, rootfsDir)
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", rootfs, err)
	}
	r.mu.Lock()
	delete(r.containers, id)
	r.mu.Unlock()
	r.releasePodCgroup(c.rec.PodCgroup)
	_ = r.images.Release(id)
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	r.emit(runtime.ContainerDeletedEvent, c)
	return nil
}
