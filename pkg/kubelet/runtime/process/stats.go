package process

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/nice"
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

// readMemory returns VmRSS and RssAnon of pid in bytes, from
// /proc/<pid>/statm (resident, and of it file-backed and shared memory:
// the same counters as status's VmRSS and RssFile+RssShmem, on one short
// line instead of ~55 to scan: a stats pass reads it for every process of
// every container).
func readMemory(pid int) (rss, anon uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("/proc/%d/statm: %q", pid, b)
	}
	resident, err1 := strconv.ParseUint(f[1], 10, 64)
	shared, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/statm: %q", pid, b)
	}
	page := uint64(os.Getpagesize())
	if shared > resident {
		shared = resident
	}
	return resident * page, (resident - shared) * page, nil
}

// ListContainerStats implements runtime.ContainerStatsLister: one pass
// over /proc for all the containers.
func (r *Runtime) ListContainerStats(ctx context.Context, ids []string) (map[string]*runtime.ContainerStats, error) {
	var ws []groupStatsWant
	r.mu.Lock()
	for _, id := range ids {
		c := r.containers[id]
		if c == nil {
			continue
		}
		w := groupStatsWant{id: id}
		if c.state != nil && c.state.Status == statusRunning {
			w.pid, w.start = c.state.PID, c.state.PIDStart
		}
		ws = append(ws, w)
	}
	r.mu.Unlock()
	// The pass over /proc is system calls for every process of every
	// container: niced, its thread leaves the CPU to probes and containers
	// (see package nice).
	var out map[string]*runtime.ContainerStats
	nice.Run(func() { out = r.readGroupStats(ws) })
	return out, nil
}

// groupStatsWant is one container ListContainerStats reads.
type groupStatsWant struct {
	id    string
	pid   int
	start uint64
}

// readGroupStats reads /proc once for the process groups of ws.
func (r *Runtime) readGroupStats(ws []groupStatsWant) map[string]*runtime.ContainerStats {
	groups := map[int][]procStat{}
	pidsOf := map[int][]int{}
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := readProcStat(pid)
			if err != nil {
				continue
			}
			groups[st.PGID] = append(groups[st.PGID], st)
			pidsOf[st.PGID] = append(pidsOf[st.PGID], pid)
		}
	}
	now := r.clock.Now()
	out := make(map[string]*runtime.ContainerStats, len(ws))
	for _, w := range ws {
		s := &runtime.ContainerStats{Timestamp: now}
		out[w.id] = s
		if w.pid <= 0 {
			continue
		}
		members := groups[w.pid]
		leaderOK := false
		for i, ps := range members {
			if pidsOf[w.pid][i] == w.pid && (w.start == 0 || ps.StartTime == w.start) {
				leaderOK = true
			}
		}
		if !leaderOK {
			continue
		}
		for i, ps := range members {
			s.CPUUsageNanoSeconds += (ps.UTime + ps.STime + ps.CUTime + ps.CSTime) * nsPerClockTick
			rss, anon, err := readMemory(pidsOf[w.pid][i])
			if err != nil {
				continue
			}
			s.MemoryWorkingSetBytes += rss
			s.MemoryRSSBytes += anon
		}
	}
	return out
}

var _ runtime.ContainerStatsLister = (*Runtime)(nil)
