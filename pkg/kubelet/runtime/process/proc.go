package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/<pid>/stat the runtime uses.
type procStat struct {
	State     byte
	PPID      int
	PGID      int
	Session   int
	UTime     uint64 // clock ticks
	STime     uint64
	CUTime    uint64
	CSTime    uint64
	StartTime uint64 // clock ticks since boot
}

// readProcStat parses /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

func parseProcStat(data []byte) (procStat, error) {
	// The command name is in parentheses and may hold spaces and ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[i+2:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, errors.New("malformed stat")
	}
	num := func(n int) uint64 {
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	inum := func(n int) int {
		v, _ := strconv.Atoi(f[n-3])
		return v
	}
	return procStat{
		State:     f[0][0],
		PPID:      inum(4),
		PGID:      inum(5),
		Session:   inum(6),
		UTime:     num(14),
		STime:     num(15),
		CUTime:    num(16),
		CSTime:    num(17),
		StartTime: num(22),
	}, nil
}

// alive reports whether pid is the process that started at start and has
// not exited (a zombie has exited).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	if err != nil {
		return false
	}
	if start != 0 && st.StartTime != start {
		return false
	}
	return st.State != 'Z' && st.State != 'X'
}

// catchesSignal reports whether pid has a handler installed for sig
// (SigCgt in /proc/<pid>/status).
func catchesSignal(pid int, sig unix.Signal) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// waitExit blocks until the process pid (started at start) has exited or
// done is closed. It waits on a pidfd in the Go runtime's poller when the
// kernel has them (no OS thread held: an agent may watch hundreds of
// shims), else polls.
func waitExit(pid int, start uint64, done <-chan struct{}) {
	if fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK); err == nil {
		if !alive(pid, start) { // the pid may have been reused before the open
			unix.Close(fd)
			return
		}
		if waitPidfd(fd, false, done) {
			return
		}
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for alive(pid, start) {
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// waitChild waits for cmd's process (a child of this process) to exit and
// reaps it. Like waitExit it holds no OS thread while it waits, where
// cmd.Wait would hold one blocked in waitid for the child's whole life.
func waitChild(cmd *exec.Cmd) {
	if fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK); err == nil && waitPidfd(fd, true, nil) {
		_ = cmd.Process.Release()
		return
	}
	_ = cmd.Wait()
}

// waitPidfd waits in the poller for the process of pidfd fd (opened
// PIDFD_NONBLOCK; waitPidfd closes it) to exit, or for done to close; with
// reap it then reaps the process, which must be a child. It returns false,
// having reaped nothing, when the poller cannot take the pidfd.
func waitPidfd(fd int, reap bool, done <-chan struct{}) bool {
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return false // not in the poller
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	if done != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-done:
				_ = f.SetReadDeadline(time.Now()) // ends the Read below
			case <-stop:
			}
		}()
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		// A pidfd is readable once its process has exited.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			exited = err != nil || n > 0
			return exited
		}
	})
	if !reap {
		return exited || err != nil
	}
	if !exited {
		return false // the caller waits the other way
	}
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED, nil); err != unix.EINTR {
			return true
		}
	}
}

// groupMembers lists the pids whose process group is pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.PGID != pgid {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
