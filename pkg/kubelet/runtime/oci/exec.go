package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
)

// maxExecSyncOutput caps what ExecSync keeps of each stream.
const maxExecSyncOutput = 16 << 20

// execCmd prepares `runc exec` of cmd in the running container id: the
// process gets the container's env, working dir and user from its
// config.json. The exec'd process's host pid is written to the returned
// pid file, so that a timeout can kill it (SIGKILL cannot be forwarded
// through runc).
//
// A TTY exec gets its process as a process.json (the container's process
// with cmd, a terminal and the initial size), so that its console has the
// size from the start: runc passes sizes on only after the process started.
// The returned path is the exec's file prefix (.pid, .json); cleanupExec
// removes them.
func (r *Runtime) execCmd(ctx context.Context, id string, cmd []string, tty *pty.Winsize) (*exec.Cmd, string, error) {
	if len(cmd) == 0 {
		return nil, "", fmt.Errorf("%w: exec command is empty", runtime.ErrInvalidConfig)
	}
	c := r.get(id)
	if c == nil {
		return nil, "", notFound(id)
	}
	st, err := r.status(ctx, c)
	if err != nil {
		return nil, "", err
	}
	if st.State != runtime.ContainerRunning {
		return nil, "", fmt.Errorf("container %q is in %s state", id, criState(st.State))
	}
	if _, err := lookExec(filepath.Join(c.dir, rootfsDir), cmd[0], c.rec.Cwd, c.rec.Env, c.rec.Mounts); err != nil {
		return nil, "", fmt.Errorf("failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: %v: unknown", err)
	}
	base := filepath.Join(c.dir, "exec-"+newID()[:16])
	args := []string{"--root", filepath.Join(r.opts.RootDir, "runc"), "exec", "--pid-file", base + ".pid"}
	if tty != nil {
		var spec specs.Spec
		if err := readJSON(filepath.Join(c.dir, configFile), &spec); err != nil || spec.Process == nil {
			return nil, "", fmt.Errorf("failed to exec in container: read its config: %v", err)
		}
		p := spec.Process
		p.Args, p.Terminal = cmd, true
		if tty.Cols > 0 && tty.Rows > 0 {
			p.ConsoleSize = &specs.Box{Width: uint(tty.Cols), Height: uint(tty.Rows)}
		}
		if err := writeJSON(base+".json", p); err != nil {
			return nil, "", err
		}
		args = append(args, "--process", base+".json", id)
	} else {
		args = append(append(args, id), cmd...)
	}
	x := exec.Command(r.opts.Runc, args...)
	x.WaitDelay = time.Second
	return x, base, nil
}

func cleanupExec(base string) {
	os.Remove(base + ".pid")
	os.Remove(base + ".json")
}

// killExec kills the exec'd process (by its pid file) and runc exec.
func killExec(x *exec.Cmd, base string) {
	if data, err := os.ReadFile(base + ".pid"); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if x.Process != nil {
		_ = x.Process.Kill()
	}
}

// waitOrKill waits for x; when ctx ends first the exec is killed.
func waitOrKill(ctx context.Context, x *exec.Cmd, pidFile string) error {
	done := make(chan error, 1)
	go func() { done <- x.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		killExec(x, pidFile)
		return <-done
	}
}

func exitCode(err error, x *exec.Cmd) (int, bool) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		return 0, false
	}
	if ws, ok := x.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return x.ProcessState.ExitCode(), true
}

// ExecSync implements runtime.Runtime.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	x, pidFile, err := r.execCmd(ctx, id, cmd, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	defer cleanupExec(pidFile)
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	stdout, stderr := process.CappedBuffer{Max: maxExecSyncOutput}, process.CappedBuffer{Max: maxExecSyncOutput}
	x.Stdout, x.Stderr = &stdout, &stderr
	if err := x.Start(); err != nil {
		return nil, nil, 0, fmt.Errorf("failed to exec in container: %w", err)
	}
	err = waitOrKill(runCtx, x, pidFile)
	switch {
	case runCtx.Err() != nil && ctx.Err() == nil:
		return stdout.Bytes(), stderr.Bytes(), 0, fmt.Errorf("command %q timed out after %v: %w", cmd, timeout, context.DeadlineExceeded)
	case ctx.Err() != nil:
		return stdout.Bytes(), stderr.Bytes(), 0, ctx.Err()
	}
	code, ok := exitCode(err, x)
	if !ok {
		return stdout.Bytes(), stderr.Bytes(), 0, err
	}
	return stdout.Bytes(), stderr.Bytes(), code, nil
}

// Exec implements runtime.Runtime. It does not close the caller's streams.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, streams runtime.Streams) error {
	var size *pty.Winsize
	if streams.TTY {
		// A size sent before the command starts applies from its first line.
		size = &pty.Winsize{Rows: 24, Cols: 80}
		select {
		case s, ok := <-streams.Resize:
			if ok {
				size = &pty.Winsize{Cols: s.Width, Rows: s.Height}
			}
		default:
		}
	}
	x, pidFile, err := r.execCmd(ctx, id, cmd, size)
	if err != nil {
		return err
	}
	defer cleanupExec(pidFile)
	if streams.TTY {
		err = execTTY(ctx, x, pidFile, size, streams)
	} else {
		err = execPipes(ctx, x, pidFile, streams)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	code, ok := exitCode(err, x)
	if !ok {
		return err
	}
	if code != 0 {
		return &runtime.ExitError{Code: code}
	}
	return nil
}

func execPipes(ctx context.Context, x *exec.Cmd, pidFile string, streams runtime.Streams) error {
	if err := process.StartWithStreams(x, streams); err != nil {
		return fmt.Errorf("failed to exec in container: %w", err)
	}
	return waitOrKill(ctx, x, pidFile)
}

// execTTY runs `runc exec --tty` on a pseudo-terminal of ours that is
// runc's controlling terminal: runc copies between it and the container's
// console and passes our size (and SIGWINCH on resizes) on.
func execTTY(ctx context.Context, x *exec.Cmd, pidFile string, size *pty.Winsize, streams runtime.Streams) error {
	x.WaitDelay = 0
	ptmx, err := startOnRawPTY(x, size)
	if err != nil {
		return fmt.Errorf("failed to exec in container: %w", err)
	}
	defer ptmx.Close()
	return process.CopyPTY(ptmx, streams, func() error { return waitOrKill(ctx, x, pidFile) })
}

// startOnRawPTY starts x on a new pty, its controlling terminal, in raw
// mode from the start. runc makes that terminal raw itself, but only once
// it runs: output the container wrote before then went through both the
// container console's and our terminal's newline translation ("\r\r\n").
// The container's console does the terminal work; ours only carries bytes.
func startOnRawPTY(x *exec.Cmd, size *pty.Winsize) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	if size != nil {
		err = pty.Setsize(ptmx, size)
	}
	if err == nil {
		err = makeRaw(int(tty.Fd()))
	}
	if err != nil {
		ptmx.Close()
		return nil, err
	}
	x.Stdin, x.Stdout, x.Stderr = tty, tty, tty
	x.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := x.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}

// makeRaw sets the terminal fd to raw mode, as cfmakeraw(3).
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Attach implements runtime.Runtime: the shim holds runc's stdio, which
// is the container's.
func (r *Runtime) Attach(ctx context.Context, id string, streams runtime.Streams) error {
	c := r.get(id)
	if c == nil {
		return notFound(id)
	}
	return r.shims.Attach(ctx, c.rec.ShimID, streams)
}

// PortForward implements runtime.Runtime: it connects to localhost:port
// inside the sandbox's network namespace (so a server bound to 127.0.0.1
// in the pod is reached, as with upstream); sandboxes in the host network
// dial the host's localhost.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	r.mu.Lock()
	sb := r.sandboxes[sandboxID]
	r.mu.Unlock()
	if sb == nil || sb.NetNSPath == "" {
		return r.shims.PortForward(ctx, sandboxID, port, stream)
	}
	conn, err := dialInNetNS(ctx, sb.NetNSPath, port)
	if err != nil {
		return fmt.Errorf("failed to execute portforward in network namespace %q: %w", sb.NetNSPath, err)
	}
	defer conn.Close()
	return process.Forward(ctx, conn, stream)
}

// ReopenContainerLog makes the container's shim reopen its log file.
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	c := r.get(id)
	if c == nil {
		return notFound(id)
	}
	return r.shims.ReopenContainerLog(ctx, c.rec.ShimID)
}
