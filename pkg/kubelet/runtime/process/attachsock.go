package process

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The attach socket protocol: a connection starts with one header line.
//
//	"stdin\n"  the rest of the connection is input for the main process;
//	           its end closes the process's stdin for StdinOnce containers.
//	"resize\n" then lines "<cols> <rows>\n" resize the terminal.
const (
	attachStdin  = "stdin"
	attachResize = "resize"
)

// maxSocketPath is below the 108 bytes of sockaddr_un.sun_path.
const maxSocketPath = 100

// withShortPath calls f with a name for path short enough for a unix
// socket: path itself, or /proc/self/fd/<dir fd>/<base> when it is long.
func withShortPath(path string, f func(string) error) error {
	if len(path) <= maxSocketPath {
		return f(path)
	}
	dir, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(dir)
	return f(fmt.Sprintf("/proc/self/fd/%d/%s", dir, filepath.Base(path)))
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

// dialAttach opens a connection of the given kind to a shim.
func dialAttach(ctx context.Context, path, kind string) (*net.UnixConn, error) {
	var conn net.Conn
	err := withShortPath(path, func(p string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(conn, kind+"\n"); err != nil {
		conn.Close()
		return nil, err
	}
	return conn.(*net.UnixConn), nil
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
