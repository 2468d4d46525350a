package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// sandbox is a pod sandbox: a directory with its record. Every sandbox of
// the host runtime uses the host network.
type sandbox struct {
	rec sandboxRecord
}

func (r *Runtime) sandboxStatus(sb *sandbox) *runtime.SandboxStatus {
	cfg := sb.rec.Config
	return &runtime.SandboxStatus{
		ID:          sb.rec.ID,
		UID:         cfg.UID,
		Name:        cfg.Name,
		Namespace:   cfg.Namespace,
		Attempt:     cfg.Attempt,
		State:       sb.rec.State,
		CreatedAt:   sb.rec.CreatedAt,
		IP:          r.opts.HostIP,
		Labels:      copyMap(cfg.Labels),
		Annotations: copyMap(cfg.Annotations),
	}
}

// RunPodSandbox implements runtime.Runtime.
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtime.PodSandboxConfig) (string, error) {
	if cfg == nil {
		return "", fmt.Errorf("%w: sandbox config is nil", runtime.ErrInvalidConfig)
	}
	rec := sandboxRecord{
		ID:        newID(),
		Config:    *cfg,
		CreatedAt: r.clock.Now(),
		State:     runtime.SandboxReady,
	}
	rec.Config.Labels = copyMap(cfg.Labels)
	rec.Config.Annotations = copyMap(cfg.Annotations)
	rec.Config.Ports = append([]runtime.PortMapping(nil), cfg.Ports...)
	dir := r.sandboxDir(rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := writeJSON(filepath.Join(dir, sandboxFile), &rec); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	r.mu.Lock()
	r.sandboxes[rec.ID] = &sandbox{rec: rec}
	r.mu.Unlock()
	return rec.ID, nil
}

// StopPodSandbox kills the sandbox's containers (as containerd does, with
// no grace: the kubelet stops them gracefully first) and marks it NotReady.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	r.mu.Lock()
	sb := r.sandboxes[id]
	r.mu.Unlock()
	if sb == nil {
		return nil
	}
	for _, c := range r.sandboxContainers(id) {
		if err := r.StopContainer(ctx, c, 0); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sb.rec.State == runtime.SandboxNotReady {
		return nil
	}
	rec := sb.rec
	rec.State = runtime.SandboxNotReady
	if err := writeJSON(filepath.Join(r.sandboxDir(id), sandboxFile), &rec); err != nil {
		return err
	}
	sb.rec = rec
	return nil
}

// RemovePodSandbox removes the sandbox's containers (killing running ones)
// and the sandbox.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	for _, c := range r.sandboxContainers(id) {
		if err := r.RemoveContainer(ctx, c); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sandboxes[id]; !ok {
		return nil
	}
	if err := os.RemoveAll(r.sandboxDir(id)); err != nil {
		return err
	}
	delete(r.sandboxes, id)
	return nil
}

// PodSandboxStatus implements runtime.Runtime.
func (r *Runtime) PodSandboxStatus(ctx context.Context, id string) (*runtime.SandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[id]
	if sb == nil {
		return nil, fmt.Errorf("pod sandbox %q: %w", id, runtime.ErrNotFound)
	}
	return r.sandboxStatus(sb), nil
}

// ListPodSandboxes implements runtime.Runtime.
func (r *Runtime) ListPodSandboxes(ctx context.Context) ([]*runtime.SandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*runtime.SandboxStatus, 0, len(r.sandboxes))
	for _, sb := range r.sandboxes {
		out = append(out, r.sandboxStatus(sb))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// sandboxContainers lists the ids of the sandbox's containers.
func (r *Runtime) sandboxContainers(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for cid, c := range r.containers {
		if c.rec.SandboxID == id {
			ids = append(ids, cid)
		}
	}
	return ids
}
