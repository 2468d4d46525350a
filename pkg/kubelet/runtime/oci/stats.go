package oci

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// ContainerStats reads the container's cgroup (cgroup v1 and v2).
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtime.ContainerStats, error) {
	c := r.get(id)
	if c == nil {
		return nil, notFound(id)
	}
	st, err := r.status(ctx, c)
	if err != nil {
		return nil, err
	}
	if st.State != runtime.ContainerRunning {
		return nil, fmt.Errorf("container %q is in %s state", id, criState(st.State))
	}
	cg := c.rec.Cgroup
	if cg == "" { // a record from before pod cgroups
		cg = filepath.Join(r.opts.CgroupParent, id)
	}
	out, err := hostCgroups().stats(cg)
	if err != nil {
		return nil, err
	}
	out.Timestamp = r.clock.Now()
	return out, nil
}

// PodSandboxStats reads the pod cgroup of the sandbox's containers (all
// of them, exited ones' remains included, as the kubelet's pod-level
// stats): ErrNotFound when the sandbox has no container with a pod
// cgroup.
func (r *Runtime) PodSandboxStats(ctx context.Context, sandboxID string) (*runtime.ContainerStats, error) {
	var cg string
	r.mu.Lock()
	for _, c := range r.containers {
		if c.rec.SandboxID == sandboxID && c.rec.PodCgroup != nil {
			cg = c.rec.PodCgroup.Path
			break
		}
	}
	r.mu.Unlock()
	if cg == "" {
		return nil, fmt.Errorf("pod cgroup of sandbox %q: %w", sandboxID, runtime.ErrNotFound)
	}
	out, err := hostCgroups().stats(cg)
	if err != nil {
		return nil, err
	}
	out.Timestamp = r.clock.Now()
	return out, nil
}

// stats reads cgroup path: working set is usage minus inactive file
// pages (as the kubelet / cAdvisor compute it), RSS the anonymous memory,
// CPU the cumulative usage (both hierarchical).
func (fs *cgroupFS) stats(path string) (*runtime.ContainerStats, error) {
	out := &runtime.ContainerStats{}
	if fs.v2 {
		dir := filepath.Join(fs.root, path)
		usage, err := readUint(filepath.Join(dir, "memory.current"))
		if err != nil {
			return nil, err
		}
		ms := readKV(filepath.Join(dir, "memory.stat"))
		out.MemoryWorkingSetBytes = sub(usage, ms["inactive_file"])
		out.MemoryRSSBytes = ms["anon"]
		out.CPUUsageNanoSeconds = readKV(filepath.Join(dir, "cpu.stat"))["usage_usec"] * 1000
		return out, nil
	}
	mem := filepath.Join(fs.root, "memory", path)
	usage, err := readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return nil, err
	}
	ms := readKV(filepath.Join(mem, "memory.stat"))
	out.MemoryWorkingSetBytes = sub(usage, ms["total_inactive_file"])
	out.MemoryRSSBytes = ms["total_rss"]
	for _, h := range []string{"cpuacct", "cpu,cpuacct", "cpuacct,cpu"} {
		if cpu, err := readUint(filepath.Join(fs.root, h, path, "cpuacct.usage")); err == nil {
			out.CPUUsageNanoSeconds = cpu
			break
		}
	}
	return out, nil
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

func readKV(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
