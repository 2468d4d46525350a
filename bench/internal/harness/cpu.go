package harness

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// CPU of one process from /proc/PID/stat: Self is utime+stime, Children is
// cutime+cstime (children it has waited for, e.g. exec probe processes).
type CPU struct {
	Self, Children time.Duration
}

// ReadCPU reads /proc/PID/stat.
func ReadCPU(pid int) (CPU, error) {
	f, err := statFields(pid)
	if err != nil {
		return CPU{}, err
	}
	// Fields after the command, numbered from 3 (state): utime is field
	// 14, stime 15, cutime 16, cstime 17 → indexes 11..14 here.
	var v [4]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return CPU{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }
	return CPU{Self: tick(v[0] + v[1]), Children: tick(v[2] + v[3])}, nil
}

// statFields returns the fields of /proc/PID/stat after "(comm)", starting
// with the state (field 3).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// startTime is field 22 of /proc/PID/stat (clock ticks since boot), which
// tells a process from a later one that reused its PID.
func startTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Percent formats cpu used over wall as a percentage of one core.
func Percent(cpu, wall time.Duration) string {
	if wall <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", 100*cpu.Seconds()/wall.Seconds())
}

// KillLeftoverContainers SIGKILLs the processes of host-runtime containers
// recorded under dataDir (.../containers/*/state.json of the node agent) that
// are still alive and are still the processes recorded there (same start
// time): what a SIGKILLed agent or a crashed benchmark left running. The
// shim holding each one then exits by itself. It returns how many it
// killed.
func KillLeftoverContainers(dataDir string) int {
	var states []string
	filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == "member" { // etcd's data
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "state.json" && filepath.Base(filepath.Dir(filepath.Dir(path))) == "containers" {
			states = append(states, path)
		}
		return nil
	})
	n := 0
	for _, p := range states {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var st struct {
			PID      int    `json:"pid"`
			PIDStart uint64 `json:"pidStart"`
		}
		if json.Unmarshal(b, &st) != nil || st.PID <= 1 || st.PIDStart == 0 {
			continue
		}
		if start, err := startTime(st.PID); err != nil || start != st.PIDStart {
			continue
		}
		if syscall.Kill(st.PID, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// KillProcessesIn SIGKILLs every process (by PID) whose working directory
// is dir or below it: the host runtime runs containers in a directory under
// their node's data dir, so this catches a container the agent did not
// record or stop (say, one started while it was shutting down). dir must
// be a directory this benchmark created. It returns how many it killed.
func KillProcessesIn(dir string) int {
	dir = filepath.Clean(dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid <= 1 {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil {
			continue
		}
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd != dir && !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
