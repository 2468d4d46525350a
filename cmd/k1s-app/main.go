// Command k1s-app is the program of the seed images' stand-ins, small and
// static (CGO_ENABLED=0) so that it fits in a busybox image:
//
//	k1s-app [flags]                      `k1s app` (kubetm/app: /hostname, /health, /status500 ...)
//	k1s-app hello [--port 8080] [--ready-file /tmp/healthy]
//	                                     seed 001's server.js (gcr.io/terrycho-sandbox/liveness
//	                                     and readiness): /readiness 200 "Im ready I'm  <host> \n"
//	                                     while the file exists, else 500 "Im not ready ..."; every
//	                                     other path 200 "Hello World! I'm  <host> \n"; one log line
//	                                     "[<date>] <host>" per request and nothing else
//	k1s-app static [--port 80] [--root /usr/share/nginx/html]
//	                                     the nginx stand-in: the files of root, no log
//
// Every mode exits 0 at once on SIGTERM (and SIGQUIT, nginx's stop
// signal), as the stand-ins of the reference cluster did.
package main

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k1s.dev/k1s/pkg/app"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "hello":
			os.Exit(serve(args[1:], "hello"))
		case "static":
			os.Exit(serve(args[1:], "static"))
		}
	}
	os.Exit(app.Main(args))
}

func serve(args []string, mode string) int {
	fs := flag.NewFlagSet("k1s-app "+mode, flag.ContinueOnError)
	defPort := 8080
	if mode == "static" {
		defPort = 80
	}
	port := fs.Int("port", defPort, "HTTP port")
	readyFile := fs.String("ready-file", "/tmp/healthy", "hello: /readiness answers 200 while this file exists")
	root := fs.String("root", "/usr/share/nginx/html", "static: the directory served")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	host, _ := os.Hostname()
	var h http.Handler
	if mode == "hello" {
		h = helloHandler(host, *readyFile, os.Stdout, time.Now)
	} else {
		h = http.FileServer(http.Dir(*root))
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	l, err := net.Listen("tcp", ":"+strconv.Itoa(*port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "k1s-app: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-sigc:
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return 0
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "k1s-app: %v\n", err)
		return 1
	}
}

// helloHandler answers as seed 001's server.js.
func helloHandler(host, readyFile string, log io.Writer, now func() time.Time) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, body := http.StatusOK, "Hello World! I'm  "+host+" \n"
		if r.URL.Path == "/readiness" {
			if _, err := os.Stat(readyFile); err == nil {
				body = "Im ready I'm  " + host + " \n"
			} else {
				code, body = http.StatusInternalServerError, "Im not ready I'm  "+host+" \n"
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
		mu.Lock()
		fmt.Fprintf(log, "[%s] %s\n", jsDate(now()), host)
		mu.Unlock()
	})
}

// jsDate is how node prints Date(): "Thu Nov 26 2026 16:01:52 GMT+0000
// (Coordinated Universal Time)".
func jsDate(t time.Time) string {
	zone, _ := t.Zone()
	if zone == "UTC" {
		zone = "Coordinated Universal Time"
	}
	s := t.Format("Mon Jan 02 2006 15:04:05 GMT-0700")
	return s + " (" + strings.TrimSpace(zone) + ")"
}
