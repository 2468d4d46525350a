package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// followInterval is how often Attach looks for new log output.
const followInterval = 50 * time.Millisecond

// Attach connects to the main process: streams.Stdin goes to its stdin
// (through the shim's attach socket, when the container has Stdin),
// and its output is followed from the container log, from now on. It
// returns when the container has exited and its output was delivered, or
// when ctx ends. It does not close the caller's streams.
func (r *Runtime) Attach(ctx context.Context, id string, streams runtime.Streams) error {
	c, _, err := r.runningState(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Start following before any input can produce output.
	log, err := os.Open(c.spec.LogPath)
	if err != nil {
		return fmt.Errorf("attach: open container log: %w", err)
	}
	defer log.Close()
	if _, err := log.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("attach: %w", err)
	}

	sock := filepath.Join(c.dir, attachSocket)
	if streams.Stdin != nil && c.spec.Stdin {
		conn, err := dialAttach(ctx, sock, attachStdin)
		if err != nil {
			return fmt.Errorf("attach: connect to the container's stdin: %w", err)
		}
		defer conn.Close()
		go func() {
			_, _ = io.Copy(conn, streams.Stdin)
			// The end of the input; for StdinOnce it closes the stdin.
			_ = conn.CloseWrite()
		}()
	}
	if c.spec.TTY && streams.Resize != nil {
		if conn, err := dialAttach(ctx, sock, attachResize); err == nil {
			defer conn.Close()
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case s, ok := <-streams.Resize:
						if !ok {
							return
						}
						if _, err := fmt.Fprintf(conn, "%d %d\n", s.Width, s.Height); err != nil {
							return
						}
					}
				}
			}()
		}
	}

	stdout, stderr := io.Writer(io.Discard), io.Writer(io.Discard)
	if streams.Stdout != nil {
		stdout = streams.Stdout
	}
	if streams.Stderr != nil {
		stderr = streams.Stderr
	}
	if c.spec.TTY {
		stderr = stdout
	}
	return followLog(ctx, log, c.exited, stdout, stderr)
}

// followLog writes the content of the CRI log entries appended to f until
// exited is closed and the log is drained, or ctx ends.
func followLog(ctx context.Context, f *os.File, exited <-chan struct{}, stdout, stderr io.Writer) error {
	br := bufio.NewReader(f)
	var partial []byte
	finished := false
	for {
		line, err := br.ReadBytes('\n')
		if err == nil {
			if len(partial) > 0 {
				line = append(partial, line...)
				partial = nil
			}
			e, perr := parseLogEntry(line[:len(line)-1])
			if perr != nil {
				continue
			}
			w := stdout
			if e.Stream == streamStderr {
				w = stderr
			}
			content := e.Content
			if !e.Partial {
				content = append(content, '\n')
			}
			if _, werr := w.Write(content); werr != nil {
				return werr
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial = append(partial, line...)
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			// The shim drained the output before recording the exit:
			// one more pass reads the rest.
			finished = true
		case <-time.After(followInterval):
		}
	}
}

// PortForward connects stream to port on the host (every sandbox of the
// host runtime is in the host network) and copies both ways until either
// side ends. It does not close stream.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	r.mu.Lock()
	_, ok := r.sandboxes[sandboxID]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("pod sandbox %q: %w", sandboxID, runtime.ErrNotFound)
	}
	conn, err := dialLocalhost(ctx, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	return Forward(ctx, conn, stream)
}

// Forward copies between conn and stream until either side ends (the
// client's end is passed on as a half-close; the server's last bytes get a
// moment). It does not close stream. Shared by the runtimes' PortForward.
func Forward(ctx context.Context, conn *net.TCPConn, stream io.ReadWriteCloser) error {
	var err error
	fromClient := make(chan error, 1)
	toClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		// Tell the server the client is done; it may still answer.
		_ = conn.CloseWrite()
		fromClient <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		toClient <- err
	}()
	select {
	case err = <-toClient:
		// The server closed: give the client's last bytes a moment.
		select {
		case <-fromClient:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	case err = <-fromClient:
		select {
		case err2 := <-toClient:
			if err == nil {
				err = err2
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// dialLocalhost connects to port on the loopback interface, IPv4 first.
func dialLocalhost(ctx context.Context, port int32) (*net.TCPConn, error) {
	var d net.Dialer
	var errs []error
	for _, addr := range []string{"127.0.0.1", "::1"} {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(int(port))))
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("failed to connect to localhost:%d: %w", port, errors.Join(errs...))
}
