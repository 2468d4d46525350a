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

// ContainerStats reads the container's cgroup: working set is usage minus
// inactive file pages (as the kubelet / cAdvisor compute it), RSS the
// anonymous memory, CPU the cumulative usage. cgroup v1 and v2.
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
	out := &runtime.ContainerStats{Timestamp: r.clock.Now()}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		dir := filepath.Join(cgroupRoot, cg)
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
	mem := filepath.Join(cgroupRoot, "memory", cg)
	usage, err := readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return nil, err
	}
	ms := readKV(filepath.Join(mem, "memory.stat"))
	out.MemoryWorkingSetBytes = sub(usage, ms["total_inactive_file"])
	out.MemoryRSSBytes = ms["total_rss"]
	if cpu, err := readUint(filepath.Join(cgroupRoot, "cpuacct", cg, "cpuacct.usage")); err == nil {
		out.CPUUsageNanoSeconds = cpu
	} else if cpu, err := readUint(filepath.Join(cgroupRoot, "cpu,cpuacct", cg, "cpuacct.usage")); err == nil {
		out.CPUUsageNanoSeconds = cpu
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
