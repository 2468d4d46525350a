// Command workloadbench measures the controllers, the scheduler and the
// node lifecycle: a Deployment of 100 replicas from apply to all available,
// a rolling update of those replicas, scheduler throughput (1,000 pending
// pods over 5 Node objects made through the API, nobody running them), and
// node-loss detection to eviction start with a second `k1s agent` that is
// SIGKILLed. It starts its own `k1s server` (with
// --node-monitor-grace-period, default 20s here, and --stop-pods-on-exit),
// stops every process it started by PID and prints a markdown table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

const ns = "bench-workload"

// The measures, in the order they run; -only picks a subset (rollout needs
// deploy and runs it too).
var measures = []string{"deploy", "rollout", "schedule", "nodeloss"}

type config struct {
	binary      string
	serverArgs  []string
	only        map[string]bool
	replicas    int
	schedPods   int
	nodes       int
	clients     int
	grace       time.Duration
	toleration  int64
	nodeWait    time.Duration
	waitTimeout time.Duration
	keep        bool
}

func main() {
	var (
		c          config
		serverArgs string
		only       string
		header     bool
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags (space separated)")
	flag.StringVar(&only, "only", strings.Join(measures, ","), "comma-separated subset of: "+strings.Join(measures, ","))
	flag.IntVar(&c.replicas, "replicas", 100, "replicas of the Deployment")
	flag.IntVar(&c.schedPods, "sched-pods", 1000, "pending pods for the scheduler throughput")
	flag.IntVar(&c.nodes, "nodes", 5, "Node objects made for the scheduler throughput")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients creating the scheduler's pods")
	flag.DurationVar(&c.grace, "node-monitor-grace-period", 20*time.Second, "the server's --node-monitor-grace-period (upstream default 50s)")
	flag.Int64Var(&c.toleration, "toleration-seconds", 5, "tolerationSeconds of the node-loss pod for node.kubernetes.io/unreachable and not-ready")
	flag.DurationVar(&c.nodeWait, "node-wait", 30*time.Second, "how long to wait for a node to be Ready")
	flag.DurationVar(&c.waitTimeout, "timeout", 90*time.Second, "how long one measure may wait for its end state")
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dirs and logs")
	flag.Parse()
	c.serverArgs = strings.Fields(serverArgs)
	c.only = map[string]bool{}
	for _, m := range strings.Split(only, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !contains(measures, m) {
			fmt.Fprintf(os.Stderr, "workloadbench: unknown measure %q (want %s)\n", m, strings.Join(measures, ","))
			os.Exit(2)
		}
		c.only[m] = true
	}
	if c.only["rollout"] {
		c.only["deploy"] = true
	}

	b := &bench{config: c}
	// A SIGINT or SIGTERM ends the measures early; the servers, agents
	// and pods started so far are still stopped (by PID) and cleaned up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := b.run(ctx)
	stop()
	b.table.Print(os.Stdout, header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "workloadbench:", err)
		os.Exit(1)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type bench struct {
	config
	table harness.Table
	srv   *harness.Launched
	c     kubernetes.Interface
}

func (b *bench) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "workloadbench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	args := append([]string{"--node-monitor-grace-period", b.grace.String(), "--stop-pods-on-exit"}, b.serverArgs...)
	srv, err := harness.Launch(b.binary, "k1s-workloadbench-", b.keep, b.log, args...)
	if err != nil {
		return err
	}
	b.srv = srv
	defer srv.Close()
	if b.c, err = kubernetes.NewForConfig(srv.Config); err != nil {
		return err
	}
	if err := harness.EnsureNamespace(ctx, b.c, ns); err != nil {
		return err
	}
	if b.only["deploy"] {
		if err := b.deployment(ctx); err != nil {
			srv.Keep()
			return err
		}
	}
	if b.only["schedule"] {
		if err := b.schedule(ctx); err != nil {
			srv.Keep()
			return err
		}
	}
	if b.only["nodeloss"] {
		if err := b.nodeLoss(ctx); err != nil {
			srv.Keep()
			return err
		}
	}
	return nil
}

func na(format string, args ...any) string { return "n/a: " + fmt.Sprintf(format, args...) }

func p50p99(d []time.Duration) string {
	return harness.Ms(harness.Median(d)) + " / " + harness.Ms(harness.Quantile(d, 0.99))
}
