package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

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
