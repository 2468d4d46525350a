package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// maxExecSyncOutput caps what ExecSync keeps of each stream.
const maxExecSyncOutput = 16 << 20

// ioGrace is how long exec waits for output after the command exited, in
// case a background process it started still holds its stdout.
const ioGrace = time.Second

// execCommand prepares cmd to run in the container's context: its
// environment and working directory, in a new process group.
func (r *Runtime) execCommand(id string, cmd []string) (*exec.Cmd, error) {
	if len(cmd) == 0 {
		return nil, fmt.Errorf("%w: exec command is empty", runtime.ErrInvalidConfig)
	}
	c, _, err := r.runningState(id)
	if err != nil {
		return nil, err
	}
	path, err := lookPath(cmd[0], c.spec.Env, c.spec.Dir, c.spec.HostPath)
	if err != nil {
		return nil, fmt.Errorf("failed to exec in container: failed to start exec: %w", err)
	}
	x := &exec.Cmd{
		Path:        path,
		Args:        append([]string(nil), cmd...),
		Env:         append([]string(nil), c.spec.Env...),
		Dir:         c.spec.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   ioGrace,
	}
	return x, nil
}

// exitCode is the exit code of a finished command (128+N when killed by
// signal N).
func exitCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}

// ExecSync implements runtime.Runtime. A command that cannot be started is
// an error; one that ran reports its exit code with a nil error.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	x, err := r.execCommand(id, cmd)
	if err != nil {
		return nil, nil, 0, err
	}
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	stdout, stderr := CappedBuffer{Max: maxExecSyncOutput}, CappedBuffer{Max: maxExecSyncOutput}
	x.Stdout, x.Stderr = &stdout, &stderr
	if err := x.Start(); err != nil {
		return nil, nil, 0, fmt.Errorf("failed to exec in container: failed to start exec: %w", err)
	}
	err = waitOrKill(runCtx, x)
	switch {
	case runCtx.Err() != nil && ctx.Err() == nil:
		return stdout.Bytes(), stderr.Bytes(), 0, fmt.Errorf("command %q timed out after %v: %w", cmd, timeout, context.DeadlineExceeded)
	case ctx.Err() != nil:
		return stdout.Bytes(), stderr.Bytes(), 0, ctx.Err()
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		return stdout.Bytes(), stderr.Bytes(), exitCode(x.ProcessState), nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), stderr.Bytes(), exitCode(ee.ProcessState), nil
	}
	return stdout.Bytes(), stderr.Bytes(), 0, err
}

// waitOrKill waits for x; when ctx ends first it kills x's process group.
func waitOrKill(ctx context.Context, x *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- x.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = unix.Kill(-x.Process.Pid, unix.SIGKILL)
		return <-done
	}
}

// Exec implements runtime.Runtime. It does not close the caller's streams.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, streams runtime.Streams) error {
	x, err := r.execCommand(id, cmd)
	if err != nil {
		return err
	}
	if streams.TTY {
		err = r.execTTY(ctx, x, streams)
	} else {
		err = execPipes(ctx, x, streams)
	}
	if err != nil {
		return err
	}
	if code := exitCode(x.ProcessState); code != 0 {
		return &runtime.ExitError{Code: code}
	}
	return nil
}

func execPipes(ctx context.Context, x *exec.Cmd, streams runtime.Streams) error {
	if err := StartWithStreams(x, streams); err != nil {
		return fmt.Errorf("failed to exec in container: failed to start exec: %w", err)
	}
	err := waitOrKill(ctx, x)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if err == nil || errors.Is(err, exec.ErrWaitDelay) || errors.As(err, &ee) {
		return nil
	}
	return err
}

func (r *Runtime) execTTY(ctx context.Context, x *exec.Cmd, streams runtime.Streams) error {
	// A size sent before the command starts applies from its first line.
	var size *pty.Winsize
	select {
	case s, ok := <-streams.Resize:
		if ok {
			size = winsize(s)
		}
	default:
	}
	x.WaitDelay = 0
	ptmx, err := pty.StartWithAttrs(x, size, &syscall.SysProcAttr{Setsid: true, Setctty: true})
	if err != nil {
		return fmt.Errorf("failed to exec in container: failed to start exec: %w", err)
	}
	defer ptmx.Close()
	err = CopyPTY(ptmx, streams, func() error { return waitOrKill(ctx, x) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if err == nil || errors.As(err, &ee) {
		return nil
	}
	return err
}

// CopyPTY serves an exec's terminal (the oci runtime's too): size changes
// from streams.Resize onto the pty master ptmx, streams.Stdin into it, its
// output to streams.Stdout. wait waits for the command; its error is
// returned once the output is drained (the master reads EIO when every
// holder of the terminal is gone), or ioGrace later.
func CopyPTY(ptmx *os.File, streams runtime.Streams, wait func() error) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case s, ok := <-streams.Resize:
				if !ok {
					return
				}
				_ = pty.Setsize(ptmx, winsize(s))
			}
		}
	}()
	if streams.Stdin != nil {
		go func() { _, _ = io.Copy(ptmx, streams.Stdin) }()
	}
	out := io.Writer(io.Discard)
	if streams.Stdout != nil {
		out = streams.Stdout
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, eioIsEOF{ptmx})
		close(copied)
	}()
	err := wait()
	select {
	case <-copied:
	case <-time.After(ioGrace):
	}
	return err
}

func winsize(s runtime.TermSize) *pty.Winsize {
	return &pty.Winsize{Cols: s.Width, Rows: s.Height}
}

// CappedBuffer keeps the first Max bytes written to it (an exec's output;
// the oci runtime uses it too).
type CappedBuffer struct {
	buf []byte
	Max int
}

func (b *CappedBuffer) Write(p []byte) (int, error) {
	if room := b.Max - len(b.buf); room > 0 {
		if len(p) > room {
			b.buf = append(b.buf, p[:room]...)
		} else {
			b.buf = append(b.buf, p...)
		}
	}
	return len(p), nil
}

// ReadFrom lets io.Copy fill the buffer directly. Without it, os/exec's
// copying goroutines allocate a 32 kB buffer per stream per command: two
// per exec probe, a thousand probes a second on a busy node.
func (b *CappedBuffer) ReadFrom(r io.Reader) (int64, error) {
	var (
		total   int64
		discard []byte // past Max: read and dropped
	)
	for {
		room := b.Max - len(b.buf)
		var p []byte
		if room > 0 {
			if len(b.buf) == cap(b.buf) {
				b.buf = slices.Grow(b.buf, min(max(512, len(b.buf)), room))
			}
			p = b.buf[len(b.buf):min(cap(b.buf), b.Max)]
		} else {
			if discard == nil {
				discard = make([]byte, 4096)
			}
			p = discard
		}
		n, err := r.Read(p)
		total += int64(n)
		if room > 0 {
			b.buf = b.buf[:len(b.buf)+n]
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (b *CappedBuffer) Bytes() []byte { return b.buf }

// eioIsEOF turns the EIO a pty master returns once the terminal is closed
// into io.EOF.
type eioIsEOF struct{ f *os.File }

func (e eioIsEOF) Read(p []byte) (int, error) {
	n, err := e.f.Read(p)
	if err != nil && errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

func (e eioIsEOF) Close() error { return e.f.Close() }

// StartWithStreams connects a command's stdio to an exec's streams (stdin
// copied in, closed at EOF) and starts it; the oci runtime's `runc exec`
// shares it. The error is Start's, unwrapped.
func StartWithStreams(x *exec.Cmd, streams runtime.Streams) error {
	var stdin io.WriteCloser
	if streams.Stdin != nil {
		var err error
		if stdin, err = x.StdinPipe(); err != nil {
			return err
		}
	}
	if streams.Stdout != nil {
		x.Stdout = streams.Stdout
	}
	if streams.Stderr != nil {
		x.Stderr = streams.Stderr
	}
	if err := x.Start(); err != nil {
		return err
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, streams.Stdin)
			stdin.Close()
		}()
	}
	return nil
}
