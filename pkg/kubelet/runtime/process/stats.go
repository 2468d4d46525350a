package process

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// nsPerClockTick: CPU times in /proc are in USER_HZ ticks, the unit of CPU times in /proc (100 on Linux).
const nsPerClockTick = 1e9 / 100

// ContainerStats reads the container's process group from /proc: CPU is
// the cumulative utime+stime of its processes and of the children they
// reaped; RSS is the sum of their anonymous memory (RssAnon, as cgroup
// "rss"/"anon"), the working set the sum of their resident memory (VmRSS).
// A container that is not running reports zeros.
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtime.ContainerStats, error) {
	r.mu.Lock()
	c := r.containers[id]
	var st shimState
	running := c != nil && c.state != nil && c.state.Status == statusRunning
	if running {
		st = *c.state
	}
	r.mu.Unlock()
	if c == nil {
		return nil, notFound(id)
	}
	stats := &runtime.ContainerStats{Timestamp: r.clock.Now()}
	if !running || !alive(st.PID, st.PIDStart) {
		return stats, nil
	}
	for _, pid := range groupMembers(st.PID) {
		ps, err := readProcStat(pid)
		if err != nil {
			continue
		}
		stats.CPUUsageNanoSeconds += (ps.UTime + ps.STime + ps.CUTime + ps.CSTime) * nsPerClockTick
		rss, anon, err := readMemory(pid)
		if err != nil {
			continue
		}
		stats.MemoryWorkingSetBytes += rss
		stats.MemoryRSSBytes += anon
	}
	return stats, nil
}

// readMemory returns VmRSS and RssAnon of pid in bytes.
func readMemory(pid int) (rss, anon uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "RssAnon") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if key == "VmRSS" {
			rss = kb * 1024
		} else {
			anon = kb * 1024
		}
	}
	return rss, anon, sc.Err()
}
