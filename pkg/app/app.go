// Package app is `k1s app`, the built-in workload of examples and e2e tests
// (like upstream's agnhost). It behaves like the seed images: kubetm/app
// (/hostname, /health, /status500, /status200) and the readiness server.js
// of terrycho-sandbox (/readiness on a file), plus switches that make it
// fail, exit or ignore SIGTERM on demand.
//
//	k1s app [--port 8080] [--tcp-only] [--grpc-port N]
//	        [--fail-after D] [--exit-after D [--exit-code N]] [--ignore-sigterm]
//	        [--ready-file PATH] [--create-file PATH] [--hello]
//
// HTTP endpoints (every request is logged on stdout, one line each):
//
//	/hostname   200 "Hostname : <hostname>\n"
//	/           the same plus "Date : <date>\n" (with --hello: 200
//	            "Hello World! I'm  <hostname> \n", as seed 001's server.js,
//	            which answers so on every unknown path too)
//	/health     200 "<hostname> is Running\n", or 500 "<hostname> : Internal
//	/healthz    Server Error\n" after GET /status500 (until GET /status200)
//	            or once --fail-after has passed
//	/status500  200 "Status Code has Changed to 500\n"
//	/status200  200 "Status Code has Changed to 200\n"
//	/readiness  200 "Im ready I'm  <hostname> \n" while --ready-file exists
//	/readyz     (always when the flag is unset), else 500 "Im not ready I'm
//	            <hostname> \n"
//
// The hostname is $HOSTNAME (the kubelet sets it to the pod name), else the
// machine's. --grpc-port serves grpc.health.v1: SERVING while /health would
// answer 200, NOT_SERVING otherwise. On SIGTERM the app exits 0 at once
// (unless --ignore-sigterm), as the seed images do.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/utils/clock"
)

// Options are the flags of `k1s app`.
type Options struct {
	Port          int
	TCPOnly       bool
	GRPCPort      int
	FailAfter     time.Duration
	ExitAfter     time.Duration
	ExitCode      int
	IgnoreSIGTERM bool
	ReadyFile     string
	CreateFile    string
	Hello         bool
}

func parseFlags(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Port, "port", 8080, "HTTP (or, with --tcp-only, TCP) port")
	fs.BoolVar(&o.TCPOnly, "tcp-only", false, "serve plain TCP (echo) instead of HTTP")
	fs.IntVar(&o.GRPCPort, "grpc-port", 0, "serve grpc.health.v1 on this port (0: off)")
	fs.DurationVar(&o.FailAfter, "fail-after", 0, "health endpoints answer 500 after this long (0: never)")
	fs.DurationVar(&o.ExitAfter, "exit-after", 0, "exit after this long (0: never)")
	fs.IntVar(&o.ExitCode, "exit-code", 0, "exit code used by --exit-after")
	fs.BoolVar(&o.IgnoreSIGTERM, "ignore-sigterm", false, "ignore SIGTERM (then only SIGKILL stops the app)")
	fs.StringVar(&o.ReadyFile, "ready-file", "", "/readiness answers 200 only while this file exists")
	fs.StringVar(&o.CreateFile, "create-file", "", "create this file at start (like the seed image's /tmp/healthy)")
	fs.BoolVar(&o.Hello, "hello", false, `answer "Hello World! I'm  <hostname>" on / and unknown paths (seed 001's server.js)`)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

// Main runs `k1s app`; args are the arguments after "app".
func Main(args []string) int {
	opts, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// Decide on SIGTERM first: a stop must find the handler in place.
	sigc := make(chan os.Signal, 1)
	defer signal.Stop(sigc)
	if opts.IgnoreSIGTERM {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sigc, syscall.SIGINT)
	} else {
		signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	}
	a := New(*opts, hostname(), clock.RealClock{}, os.Stdout)
	if opts.CreateFile != "" {
		if err := touch(opts.CreateFile); err != nil {
			fmt.Fprintf(os.Stderr, "app: %v\n", err)
			return 1
		}
	}
	l, err := net.Listen("tcp", ":"+strconv.Itoa(opts.Port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "app: %v\n", err)
		return 1
	}
	var grpcL net.Listener
	if opts.GRPCPort != 0 {
		if grpcL, err = net.Listen("tcp", ":"+strconv.Itoa(opts.GRPCPort)); err != nil {
			fmt.Fprintf(os.Stderr, "app: %v\n", err)
			return 1
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case sig := <-sigc:
			a.logf("received %v, exiting", sig)
			cancel()
		case <-ctx.Done():
		}
	}()
	return a.Run(ctx, l, grpcL)
}

func hostname() string {
	if h := os.Getenv("HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

func touch(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// App is the workload's state.
type App struct {
	opts     Options
	hostname string
	clock    clock.Clock
	started  time.Time

	logMu sync.Mutex
	log   io.Writer

	mu        sync.Mutex
	status500 bool
}

// New returns an app answering as hostname, logging to log.
func New(opts Options, hostname string, clk clock.Clock, log io.Writer) *App {
	return &App{opts: opts, hostname: hostname, clock: clk, started: clk.Now(), log: log}
}

// Run serves on l (HTTP, or TCP echo with TCPOnly) and on grpcL (gRPC
// health, if not nil) until ctx ends (exit code 0) or --exit-after fires.
func (a *App) Run(ctx context.Context, l net.Listener, grpcL net.Listener) int {
	mode := "HTTP"
	if a.opts.TCPOnly {
		mode = "TCP"
	}
	a.logf("k1s app %s: serving %s on %s", a.hostname, mode, l.Addr())
	errc := make(chan error, 2)
	if a.opts.TCPOnly {
		go func() { errc <- a.serveTCP(l) }()
	} else {
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(l) }()
		defer srv.Close()
	}
	if grpcL != nil {
		gs := grpc.NewServer()
		grpc_health_v1.RegisterHealthServer(gs, &healthServer{app: a})
		a.logf("serving grpc.health.v1 on %s", grpcL.Addr())
		go func() { errc <- gs.Serve(grpcL) }()
		defer gs.Stop()
	}
	defer l.Close()
	var exit <-chan time.Time
	if a.opts.ExitAfter > 0 {
		t := a.clock.NewTimer(a.opts.ExitAfter)
		defer t.Stop()
		exit = t.C()
	}
	select {
	case <-ctx.Done():
		return 0
	case <-exit:
		a.logf("exiting with code %d after %v", a.opts.ExitCode, a.opts.ExitAfter)
		return a.opts.ExitCode
	case err := <-errc:
		a.logf("serve: %v", err)
		return 1
	}
}

// serveTCP accepts connections and echoes what they send.
func (a *App) serveTCP(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		a.logf("%s TCP connection", c.RemoteAddr())
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func (a *App) logf(format string, args ...any) {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	fmt.Fprintf(a.log, "[%s] %s\n", a.clock.Now().Format(time.UnixDate), fmt.Sprintf(format, args...))
}

// healthy is what /health answers: not after /status500, not after
// --fail-after.
func (a *App) healthy() bool {
	a.mu.Lock()
	forced := a.status500
	a.mu.Unlock()
	if forced {
		return false
	}
	return a.opts.FailAfter <= 0 || a.clock.Since(a.started) < a.opts.FailAfter
}

func (a *App) ready() bool {
	if a.opts.ReadyFile == "" {
		return true
	}
	_, err := os.Stat(a.opts.ReadyFile)
	return err == nil
}

// Handler serves the HTTP endpoints.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	h := a.hostname
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, "Hostname : "+h+"\n")
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Hello {
			reply(w, http.StatusOK, "Hello World! I'm  "+h+" \n")
			return
		}
		reply(w, http.StatusOK, "Hostname : "+h+"\nDate : "+a.clock.Now().Format(time.UnixDate)+"\n")
	})
	health := func(w http.ResponseWriter, r *http.Request) {
		if a.healthy() {
			reply(w, http.StatusOK, h+" is Running\n")
		} else {
			reply(w, http.StatusInternalServerError, h+" : Internal Server Error\n")
		}
	}
	mux.HandleFunc("/health", health)
	mux.HandleFunc("/healthz", health)
	for _, code := range []int{500, 200} {
		mux.HandleFunc(fmt.Sprintf("/status%d", code), func(w http.ResponseWriter, r *http.Request) {
			a.mu.Lock()
			a.status500 = code == 500
			a.mu.Unlock()
			reply(w, http.StatusOK, fmt.Sprintf("Status Code has Changed to %d\n", code))
		})
	}
	readiness := func(w http.ResponseWriter, r *http.Request) {
		if a.ready() {
			reply(w, http.StatusOK, "Im ready I'm  "+h+" \n")
		} else {
			reply(w, http.StatusInternalServerError, "Im not ready I'm  "+h+" \n")
		}
	}
	mux.HandleFunc("/readiness", readiness)
	mux.HandleFunc("/readyz", readiness)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Hello {
			reply(w, http.StatusOK, "Hello World! I'm  "+h+" \n")
			return
		}
		http.NotFound(w, r)
	})
	return a.logged(mux)
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// logged logs one line per request: client, method, path, status.
func (a *App) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.logf("%s %s %s %s %d", a.hostname, r.RemoteAddr, r.Method, r.URL.Path, rec.code)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// healthServer is grpc.health.v1 following the HTTP health state, for
// every service name.
type healthServer struct {
	grpc_health_v1.UnimplementedHealthServer
	app *App
}

func (s *healthServer) Check(ctx context.Context, req *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	st := grpc_health_v1.HealthCheckResponse_SERVING
	if !s.app.healthy() {
		st = grpc_health_v1.HealthCheckResponse_NOT_SERVING
	}
	s.app.logf("%s grpc health check %q: %v", s.app.hostname, req.GetService(), st)
	return &grpc_health_v1.HealthCheckResponse{Status: st}, nil
}
