// Command apibench measures k1s's API server: cold and warm start, object
// creation throughput, Table lists, watch latency and memory. It starts its
// own `k1s server` processes (fresh data dirs under a temp dir), stops them
// by PID, and prints a markdown table (measure | value | target).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k1s.dev/k1s/bench/internal/harness"
)

type config struct {
	binary      string
	coldRuns    int
	objects     int
	createRuns  int
	clients     int
	lists       int
	watchEvents int
	settle      time.Duration
	serverArgs  []string
	only        map[string]bool
	keep        bool
}

// The measures, in the order they run; -only picks a subset.
var measures = []string{"start", "create", "list", "watch", "rss"}

func main() {
	var (
		c          config
		only       string
		serverArgs string
		header     bool
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary")
	flag.IntVar(&c.coldRuns, "cold-runs", 5, "cold starts on fresh data dirs (median reported)")
	flag.IntVar(&c.objects, "objects", 1000, "ConfigMaps per create run, and Pods listed")
	flag.IntVar(&c.createRuns, "create-runs", 3, "repetitions of the create measures (median reported; the memory after load counts the first only)")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients for the parallel create")
	flag.IntVar(&c.lists, "lists", 10, "list requests per list measure (median reported)")
	flag.IntVar(&c.watchEvents, "watch-events", 200, "creates timed create → watch event")
	flag.DurationVar(&c.settle, "settle", 3*time.Minute, "the warm-restarted server's memory is read again this long after ready (idle, settled); 0 skips it")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags for the load server (space separated), e.g. --disable-agent")
	flag.StringVar(&only, "only", strings.Join(measures, ","), "comma-separated subset of: "+strings.Join(measures, ","))
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dirs and server logs")
	flag.Parse()

	c.serverArgs = strings.Fields(serverArgs)
	c.only = map[string]bool{}
	for _, m := range strings.Split(only, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !contains(measures, m) {
			fmt.Fprintf(os.Stderr, "apibench: unknown measure %q (want %s)\n", m, strings.Join(measures, ","))
			os.Exit(2)
		}
		c.only[m] = true
	}
	if _, err := os.Stat(c.binary); err != nil {
		fmt.Fprintf(os.Stderr, "apibench: %v (run `make build`)\n", err)
		os.Exit(2)
	}

	work, err := os.MkdirTemp("", "k1s-apibench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
	b := &bench{config: c, work: work}
	err = b.run(context.Background())
	b.table.Print(os.Stdout, header)
	if c.keep {
		fmt.Fprintln(os.Stderr, "apibench: data dirs and logs kept in", work)
	} else if err == nil {
		os.RemoveAll(work)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		fmt.Fprintln(os.Stderr, "apibench: data dirs and logs kept in", work)
		os.Exit(1)
	}
}

type bench struct {
	config
	work  string
	table harness.Table
	dirs  int
}

func (b *bench) newDir() string {
	b.dirs++
	return fmt.Sprintf("%s/server-%d", b.work, b.dirs)
}

func (b *bench) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "apibench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	if b.only["start"] {
		if err := b.startup(ctx); err != nil {
			return err
		}
	}
	if b.only["create"] || b.only["list"] || b.only["watch"] || b.only["rss"] {
		return b.load(ctx)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
