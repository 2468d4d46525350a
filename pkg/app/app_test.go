package app

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 26, 15, 59, 59, 0, time.UTC)

// get performs one request against the handler.
func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

type step struct {
	path     string
	code     int
	body     string
	advance  time.Duration // before the request
	setup    func()        // before the request
	contains bool          // body is a substring
}

func TestHandler(t *testing.T) {
	readyFile := filepath.Join(t.TempDir(), "healthy")
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{
			name: "hostname and root",
			steps: []step{
				{path: "/hostname", code: 200, body: "Hostname : pod1\n"},
				{path: "/", code: 200, body: "Hostname : pod1\nDate : Thu Nov 26 15:59:59 UTC 2026\n"},
				{path: "/nope", code: 404, body: "404 page not found\n"},
			},
		},
		{
			name: "status500 and status200 switch health",
			steps: []step{
				{path: "/health", code: 200, body: "pod1 is Running\n"},
				{path: "/status500", code: 200, body: "Status Code has Changed to 500\n"},
				{path: "/health", code: 500, body: "pod1 : Internal Server Error\n"},
				{path: "/healthz", code: 500, body: "pod1 : Internal Server Error\n"},
				{path: "/hostname", code: 200, body: "Hostname : pod1\n"},
				{path: "/status200", code: 200, body: "Status Code has Changed to 200\n"},
				{path: "/health", code: 200, body: "pod1 is Running\n"},
			},
		},
		{
			name: "fail after",
			opts: Options{FailAfter: 30 * time.Second},
			steps: []step{
				{path: "/health", code: 200, body: "pod1 is Running\n", advance: 29 * time.Second},
				{path: "/healthz", code: 500, body: "pod1 : Internal Server Error\n", advance: time.Second},
				{path: "/status200", code: 200, body: "Status Code has Changed to 200\n"},
				{path: "/health", code: 500, body: "pod1 : Internal Server Error\n"},
			},
		},
		{
			name: "readiness without a file is ready",
			steps: []step{
				{path: "/readiness", code: 200, body: "Im ready I'm  pod1 \n"},
				{path: "/readyz", code: 200, body: "Im ready I'm  pod1 \n"},
			},
		},
		{
			name: "readiness follows the file",
			opts: Options{ReadyFile: readyFile},
			steps: []step{
				{path: "/readiness", code: 500, body: "Im not ready I'm  pod1 \n"},
				{path: "/readiness", code: 200, body: "Im ready I'm  pod1 \n", setup: func() { os.WriteFile(readyFile, nil, 0o644) }},
				{path: "/readiness", code: 500, body: "Im not ready I'm  pod1 \n", setup: func() { os.Remove(readyFile) }},
			},
		},
		{
			name: "hello mode answers like server.js",
			opts: Options{Hello: true},
			steps: []step{
				{path: "/", code: 200, body: "Hello World! I'm  pod1 \n"},
				{path: "/anything", code: 200, body: "Hello World! I'm  pod1 \n"},
				{path: "/readiness", code: 200, body: "Im ready I'm  pod1 \n"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			var log bytes.Buffer
			a := New(tc.opts, "pod1", clk, &log)
			h := a.Handler()
			for i, s := range tc.steps {
				clk.Step(s.advance)
				if s.setup != nil {
					s.setup()
				}
				code, body := get(h, s.path)
				if code != s.code || body != s.body {
					t.Errorf("step %d GET %s = %d %q, want %d %q", i, s.path, code, body, s.code, s.body)
				}
			}
			if n := strings.Count(log.String(), "\n"); n != len(tc.steps) {
				t.Errorf("%d log lines for %d requests:\n%s", n, len(tc.steps), log.String())
			}
		})
	}
}

func TestRequestLogLine(t *testing.T) {
	var log bytes.Buffer
	a := New(Options{}, "pod1", clocktesting.NewFakeClock(t0), &log)
	get(a.Handler(), "/status500")
	get(a.Handler(), "/health")
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "[Thu Nov 26 15:59:59 UTC 2026] pod1 ") || !strings.HasSuffix(lines[1], " GET /health 500") {
		t.Errorf("log = %q", lines)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRunHTTPAndGRPC(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	a := New(Options{}, "pod1", clk, &syncWriter{})
	l, gl := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.Run(ctx, l, gl) }()

	resp, err := http.Get("http://" + l.Addr().String() + "/hostname")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Hostname : pod1\n" {
		t.Errorf("GET /hostname = %q", body)
	}

	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := grpc_health_v1.NewHealthClient(conn)
	check := func() grpc_health_v1.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := hc.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	if s := check(); s != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("grpc health = %v, want SERVING", s)
	}
	if resp, err := http.Get("http://" + l.Addr().String() + "/status500"); err == nil {
		resp.Body.Close()
	}
	if s := check(); s != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health after /status500 = %v, want NOT_SERVING", s)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d on shutdown, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestRunTCPOnly(t *testing.T) {
	a := New(Options{TCPOnly: true}, "pod1", clocktesting.NewFakeClock(t0), &syncWriter{})
	l := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx, l, nil)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "GET / HTTP/1.0\r\n" {
		t.Errorf("echo = %q, %v (a TCP echo, not HTTP)", line, err)
	}
}

func TestRunExitAfter(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	a := New(Options{ExitAfter: 5 * time.Second, ExitCode: 3}, "pod1", clk, &syncWriter{})
	done := make(chan int, 1)
	go func() { done <- a.Run(context.Background(), listen(t), nil) }()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(4 * time.Second)
	select {
	case code := <-done:
		t.Fatalf("exited with %d before --exit-after", code)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Step(time.Second)
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not exit after --exit-after")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--port", "9090", "--fail-after", "30s", "--exit-after=1m", "--exit-code", "2",
		"--ignore-sigterm", "--ready-file", "/tmp/r", "--create-file", "/tmp/healthy", "--grpc-port", "9091", "--tcp-only", "--hello"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Port: 9090, TCPOnly: true, GRPCPort: 9091, FailAfter: 30 * time.Second, ExitAfter: time.Minute, ExitCode: 2,
		IgnoreSIGTERM: true, ReadyFile: "/tmp/r", CreateFile: "/tmp/healthy", Hello: true}
	if *o != want {
		t.Errorf("parseFlags = %+v, want %+v", *o, want)
	}
	if o, _ := parseFlags(nil, io.Discard); o.Port != 8080 {
		t.Errorf("default port %d, want 8080", o.Port)
	}
	if _, err := parseFlags([]string{"--bogus"}, io.Discard); err == nil {
		t.Errorf("unknown flag accepted")
	}
	if _, err := parseFlags([]string{"extra"}, io.Discard); err == nil {
		t.Errorf("positional argument accepted")
	}
}

func TestMainExitAfterAndCreateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tmp", "healthy")
	code := Main([]string{"--port", "0", "--exit-after", "50ms", "--exit-code", "7", "--create-file", file})
	if code != 7 {
		t.Errorf("Main exit code %d, want 7", code)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("--create-file: %v", err)
	}
	if code := Main([]string{"--bogus"}); code != 2 {
		t.Errorf("bad flag exit code %d, want 2", code)
	}
}

func TestHostnameFromEnv(t *testing.T) {
	t.Setenv("HOSTNAME", "from-env")
	if h := hostname(); h != "from-env" {
		t.Errorf("hostname() = %q", h)
	}
}
