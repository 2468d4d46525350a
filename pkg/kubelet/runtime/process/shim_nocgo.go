//go:build !cgo

// The shim in Go, for k1s built without cgo. With cgo the shim is shim.c,
// which does the same without starting the Go runtime.

package process

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ShimMain is the entry point of the hidden `k1s shim` subcommand; args are
// the arguments after "shim". It supervises one container (see the package
// documentation) and returns the shim's exit code. This is the pure-Go
// shim of builds without cgo; it reads spec.json.
//
//	k1s shim --dir <container dir> [--report-fd N]
func ShimMain(args []string) int {
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	dir := fs.String("dir", "", "container directory holding spec.json")
	reportFD := fs.Int("report-fd", -1, "inherited pipe on which the start result is written")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "shim: --dir is required")
		return 2
	}
	s := &shim{dir: *dir}
	if *reportFD >= 0 {
		syscall.CloseOnExec(*reportFD)
		s.report = os.NewFile(uintptr(*reportFD), "report")
	}
	return s.run()
}

type shim struct {
	dir    string
	report *os.File
}

// started is the container process and the shim's ends of its stdio.
type started struct {
	proc    *os.Process
	pid     int
	outputs []shimOutput
	// stdin receives attach input (the stdin pipe or the pty master);
	// closeStdin says whether it can be closed (not a terminal).
	stdin      io.WriteCloser
	closeStdin bool
	pty        *os.File
	closers    []io.Closer
}

type shimOutput struct {
	stream string
	r      io.ReadCloser
}

func (s *shim) run() int {
	var spec processSpec
	if err := readJSON(filepath.Join(s.dir, specFile), &spec); err != nil {
		return s.startFailed(fmt.Sprintf("failed to read container spec: %v", err))
	}
	if len(spec.Args) == 0 {
		return s.startFailed("no command specified")
	}
	// Orphans of the container are re-parented to the shim, which kills
	// and reaps them when the main process exits.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	// The shim outlives its agent: it ignores terminal signals (by
	// catching them, so that children start with default dispositions)
	// and reopens the log on SIGUSR1.
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1)

	logf, err := openLogFile(spec.LogPath, time.Now)
	if err != nil {
		return s.startFailed(fmt.Sprintf("failed to create container log %q: %v", spec.LogPath, err))
	}
	p, err := s.start(&spec)
	if err != nil {
		logf.Close()
		return s.startFailed(err.Error())
	}
	state := shimState{
		Status:    statusRunning,
		ShimPID:   os.Getpid(),
		ShimStart: processStartTime(os.Getpid()),
		PID:       p.pid,
		PIDStart:  processStartTime(p.pid),
		StartedAt: time.Now(),
	}
	mainExit := make(chan unix.WaitStatus, 1)
	reaped := make(chan struct{})
	go reap(p.pid, mainExit, reaped)
	if spec.Stdin || spec.TTY {
		// Listening before the report: an attach right after the start
		// finds the socket.
		l, err := listenAttach(filepath.Join(s.dir, attachSocket))
		if err != nil {
			fmt.Fprintf(os.Stderr, "shim: attach socket: %v\n", err)
		} else {
			a := &attachServer{stdin: p.stdin, stdinOnce: spec.StdinOnce && p.closeStdin, pty: p.pty}
			if !spec.Stdin {
				a.stdin = nil
			}
			go a.serve(l)
		}
	}

	if err := writeJSON(filepath.Join(s.dir, stateFile), &state); err != nil {
		fmt.Fprintf(os.Stderr, "shim: write state: %v\n", err)
	}
	s.sendReport(&state)

	var copiers sync.WaitGroup
	for _, o := range p.outputs {
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			if err := copyLog(logf, o.stream, o.r, maxLogLine); err != nil {
				fmt.Fprintf(os.Stderr, "shim: copy %s: %v\n", o.stream, err)
			}
		}()
	}
	p.proc.Release()
	debug.FreeOSMemory()

	var ws unix.WaitStatus
wait:
	for {
		select {
		case ws = <-mainExit:
			break wait
		case sig := <-sigc:
			if sig == unix.SIGUSR1 {
				if err := logf.Reopen(); err != nil {
					fmt.Fprintf(os.Stderr, "shim: reopen log: %v\n", err)
				}
			}
		}
	}
	finishedAt := time.Now()

	// As when the init of a PID namespace exits: kill what is left.
	killRest(p.pid)
	tick := time.NewTicker(50 * time.Millisecond)
	deadline := time.NewTimer(2 * time.Second)
kill:
	for {
		select {
		case <-reaped:
			break kill
		case <-tick.C:
			killRest(p.pid)
		case <-deadline.C:
			fmt.Fprintln(os.Stderr, "shim: some processes of the container could not be reaped")
			break kill
		}
	}
	tick.Stop()

	// Drain the output; an escaped process holding a pipe must not hold
	// the exit report forever.
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		for _, o := range p.outputs {
			o.r.Close()
		}
		<-drained
	}
	for _, c := range p.closers {
		c.Close()
	}
	logf.Close()

	code, sig := exitStatus(ws)
	state.Status = statusExited
	state.FinishedAt = finishedAt
	state.ExitCode = code
	state.Signal = sig
	state.Reason = exitReason(code)
	if err := writeJSON(filepath.Join(s.dir, stateFile), &state); err != nil {
		fmt.Fprintf(os.Stderr, "shim: write state: %v\n", err)
		return 1
	}
	return 0
}

// start starts the container process in its own process group (session
// with a controlling terminal for TTY containers).
func (s *shim) start(spec *processSpec) (*started, error) {
	if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("failed to start container process: chdir to cwd (%q) set in config failed: %v", spec.Dir, statErr(err))
	}
	path, err := lookPath(spec.Args[0], spec.Env, spec.Dir, spec.HostPath)
	if err != nil {
		return nil, fmt.Errorf("failed to start container process: %w", err)
	}
	p := &started{}
	var files []*os.File
	var childEnds []*os.File
	sys := &syscall.SysProcAttr{Setpgid: true}
	if spec.TTY {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("failed to allocate a terminal: %w", err)
		}
		_ = pty.Setsize(master, &pty.Winsize{Rows: 24, Cols: 80})
		files = []*os.File{slave, slave, slave}
		childEnds = append(childEnds, slave)
		p.outputs = []shimOutput{{streamStdout, eioIsEOF{master}}}
		p.stdin = master
		p.pty = master
		p.closers = append(p.closers, master)
		sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		stdin, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		if spec.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			stdin = r
			p.stdin = w
			p.closeStdin = true
		}
		childEnds = append(childEnds, stdin)
		files = append(files, stdin)
		for _, stream := range []string{streamStdout, streamStderr} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			files = append(files, w)
			childEnds = append(childEnds, w)
			p.outputs = append(p.outputs, shimOutput{stream, r})
		}
	}
	proc, err := os.StartProcess(path, spec.Args, &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: files,
		Sys:   sys,
	})
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to start container process: %w", err)
	}
	p.proc = proc
	p.pid = proc.Pid
	return p, nil
}

func statErr(err error) error {
	if err == nil {
		return syscall.ENOTDIR
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// startFailed records a container that could not start, the way
// containerd does (exit code 128, reason StartError).
func (s *shim) startFailed(msg string) int {
	fmt.Fprintf(os.Stderr, "shim: %s\n", msg)
	now := time.Now()
	state := shimState{
		Status:     statusExited,
		FinishedAt: now,
		ExitCode:   exitCodeStart,
		Reason:     reasonStartError,
		Message:    msg,
	}
	if err := writeJSON(filepath.Join(s.dir, stateFile), &state); err != nil {
		fmt.Fprintf(os.Stderr, "shim: write state: %v\n", err)
	}
	s.sendReport(&state)
	return 1
}

// sendReport tells the runtime how the start went.
func (s *shim) sendReport(st *shimState) {
	if s.report == nil {
		return
	}
	if err := json.NewEncoder(s.report).Encode(st); err != nil {
		fmt.Fprintf(os.Stderr, "shim: report: %v\n", err)
	}
	s.report.Close()
	s.report = nil
}

// reap waits for every child of the shim. The main process's status goes
// to mainExit; reaped is closed once the shim has no children left.
func reap(mainPID int, mainExit chan<- unix.WaitStatus, reaped chan<- struct{}) {
	defer close(reaped)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if pid == mainPID {
			mainExit <- ws
		}
	}
}

// killRest SIGKILLs the container's process group and every remaining
// child of the shim (orphans re-parented to it).
func killRest(pgid int) {
	_ = unix.Kill(-pgid, unix.SIGKILL)
	for _, pid := range childrenOf(os.Getpid()) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// exitStatus converts a wait status to the exit code and signal containerd
// reports: 128+N for a process killed by signal N.
func exitStatus(ws unix.WaitStatus) (code, sig int32) {
	switch {
	case ws.Exited():
		return int32(ws.ExitStatus()), 0
	case ws.Signaled():
		s := int32(ws.Signal())
		return 128 + s, s
	}
	return exitCodeUnknown, 0
}

func listenAttach(path string) (net.Listener, error) {
	_ = os.Remove(path)
	var l net.Listener
	err := withShortPath(path, func(p string) error {
		var err error
		l, err = net.Listen("unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The listener was bound under a /proc alias: do not let Close
	// unlink that alias name.
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return l, nil
}

// attachServer is the shim's side of the attach socket.
type attachServer struct {
	stdin     io.WriteCloser // nil: the container has no stdin
	stdinOnce bool
	pty       *os.File // nil: no terminal

	mu          sync.Mutex
	stdinClosed bool
}

func (a *attachServer) serve(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		if !sameUser(conn) {
			conn.Close()
			continue
		}
		go a.handle(conn)
	}
}

// sameUser admits only peers running as the shim's user.
func sameUser(conn net.Conn) bool {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && cred != nil && (cred.Uid == uint32(os.Getuid()) || cred.Uid == 0)
}

func (a *attachServer) handle(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	kind, err := br.ReadString('\n')
	if err != nil {
		return
	}
	switch kind[:len(kind)-1] {
	case attachStdin:
		a.copyStdin(br)
	case attachResize:
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			var cols, rows uint16
			if _, err := fmt.Sscanf(line, "%d %d", &cols, &rows); err == nil && a.pty != nil {
				_ = pty.Setsize(a.pty, &pty.Winsize{Cols: cols, Rows: rows})
			}
		}
	}
}

func (a *attachServer) copyStdin(r io.Reader) {
	a.mu.Lock()
	closed := a.stdinClosed || a.stdin == nil
	a.mu.Unlock()
	if closed {
		return
	}
	_, _ = io.Copy(a.stdin, r)
	if a.stdinOnce {
		a.mu.Lock()
		if !a.stdinClosed {
			a.stdinClosed = true
			a.stdin.Close()
		}
		a.mu.Unlock()
	}
}

// processStartTime is the start time of pid, 0 if it does not exist.
func processStartTime(pid int) uint64 {
	st, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	return st.StartTime
}

// childrenOf lists the pids whose parent is ppid.
func childrenOf(ppid int) []int {
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
		if err != nil || st.PPID != ppid {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
