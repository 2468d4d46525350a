// Package harness starts and stops `k1s server` processes for the
// benchmarks, times them, reads their memory and prints result tables.
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Server is one `k1s server` process started by a benchmark. Only this
// process (by its PID) is ever signalled.
type Server struct {
	DataDir    string
	Kubeconfig string
	URL        string // https://127.0.0.1:PORT
	LogPath    string
	// Started is taken just before exec.
	Started time.Time

	cmd     *exec.Cmd
	logFile *os.File
	ready   chan struct{} // closed when the log says "k1s API ready"
	done    chan struct{} // closed when the process exited
	waitErr error
}

// withDefaultRuntime puts the benchmarks' pods on the host runtime (their
// images are only names there) unless args choose a default runtime.
func withDefaultRuntime(args []string) []string {
	for _, a := range args {
		if strings.HasPrefix(a, "--default-runtime") {
			return args
		}
	}
	return append([]string{"--default-runtime", "host"}, args...)
}

// Start execs `binary server --data-dir dataDir --https-port PORT args...`
// on a free port picked here (so /readyz can be polled before the server
// announces itself). The server's output goes to dataDir + ".log".
func Start(binary, dataDir string, args ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		DataDir:    dataDir,
		Kubeconfig: filepath.Join(dataDir, "kubeconfig.yaml"),
		URL:        fmt.Sprintf("https://127.0.0.1:%d", port),
		LogPath:    dataDir + ".log",
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.logFile, err = os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	full := append([]string{"server", "--data-dir", dataDir, "--https-port", fmt.Sprint(port), "--bind-address", "127.0.0.1"}, withDefaultRuntime(args)...)
	s.cmd = exec.Command(binary, full...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	// Own process group: a Ctrl-C on the benchmark does not reach the
	// server before we stop it ourselves.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.Started = time.Now()
	if err := s.cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return nil, err
	}
	pw.Close()
	go s.scan(pr)
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

func (s *Server) scan(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var once sync.Once
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(s.logFile, line)
		if strings.Contains(line, "k1s API ready") {
			once.Do(func() { close(s.ready) })
		}
	}
}

// PID of the server process.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// WaitReadyz polls GET /readyz with the admin client certificate (read from
// the kubeconfig as soon as the server has written it) until it answers 200,
// and returns the time from exec to that answer.
func (s *Server) WaitReadyz(timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var client *http.Client
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return 0, fmt.Errorf("k1s server exited (%v); log: %s", s.waitErr, s.LogPath)
		default:
		}
		if client == nil {
			client, lastErr = s.readyzClient()
			if client == nil {
				time.Sleep(2 * time.Millisecond)
				continue
			}
		}
		resp, err := client.Get(s.URL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(s.Started), nil
			}
			lastErr = fmt.Errorf("/readyz: %s", resp.Status)
		} else {
			lastErr = err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("/readyz not ok after %s (last: %v); log: %s", timeout, lastErr, s.LogPath)
}

func (s *Server) readyzClient() (*http.Client, error) {
	if _, err := os.Stat(s.Kubeconfig); err != nil {
		return nil, err
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	// Not cached across servers: a warm restart must not reuse a transport
	// whose connections went to the previous process.
	cfg.Proxy = noProxy
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c.Timeout = 2 * time.Second
	return c, nil
}

// KubeconfigWritten is how long after exec the server (re)wrote its
// kubeconfig: process start-up plus certificates, before etcd and the API
// start. Read it once the server is ready.
func (s *Server) KubeconfigWritten() (time.Duration, error) {
	fi, err := os.Stat(s.Kubeconfig)
	if err != nil {
		return 0, err
	}
	return fi.ModTime().Sub(s.Started), nil
}

// WaitLogReady waits for the "k1s API ready" log line.
func (s *Server) WaitLogReady(timeout time.Duration) error {
	select {
	case <-s.ready:
		return nil
	case <-s.done:
		return fmt.Errorf("k1s server exited (%v); log: %s", s.waitErr, s.LogPath)
	case <-time.After(timeout):
		return fmt.Errorf("no \"k1s API ready\" after %s; log: %s", timeout, s.LogPath)
	}
}

// RESTConfig is the admin config from the server's kubeconfig, pointed at
// the port this harness chose, with no client-side rate limit.
func (s *Server) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Host = s.URL
	Unthrottled(cfg)
	return cfg, nil
}

// Unthrottled removes client-go's default 5 QPS limit.
func Unthrottled(cfg *rest.Config) {
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
}

// OwnConnection makes client-go build a transport (and so a connection) of
// its own for cfg instead of sharing its cached one: a config with a Proxy
// function is never cached.
func OwnConnection(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Proxy = noProxy
	return c
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// Stop sends SIGTERM to the server's PID and waits for it to exit (SIGKILL
// to the same PID after 15 s); it returns how long the exit took.
func (s *Server) Stop() (time.Duration, error) {
	defer s.logFile.Close()
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	select {
	case <-s.done:
		return time.Since(t0), nil
	case <-time.After(10 * time.Second):
	}
	// Over the 10 s a stop may take: SIGQUIT makes the Go runtime write
	// every goroutine's stack to the log (and exit), to see what hangs.
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
	return time.Since(t0), fmt.Errorf("server pid %d did not stop within 10s after SIGTERM (SIGQUIT: goroutines in %s)", s.PID(), s.LogPath)
}

// Exited reports whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
