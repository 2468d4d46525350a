// Command kubeletbench measures the node agent under probe load and its
// liveness restarts, on the host runtime of the agent inside `k1s server`:
//
//   - N pods (default 500; fewer when they do not all get Ready within
//     -start-budget, or when the machine lacks the memory) each running
//     `k1s app --port P` (its own port) with an exec readiness probe
//     `sh -c 'date +%s%N >> FILE'` and an HTTP liveness probe GET /healthz,
//     both every second: the server process's CPU over -window minus an idle
//     baseline measured before any pod existed (the agent runs inside the
//     server), the CPU of the exec probes' processes (reaped by the server),
//     the server's RSS delta, and the probes' period drift |interval − 1 s|
//     seen from the container side (the exec probe's timestamps, and the CRI
//     log timestamps of k1s app's request lines);
//   - liveness failure → restart: a liveness exec probe on a file, the file
//     deleted, time to the restarted container minus period × threshold.
//
// It starts its own server (--stop-pods-on-exit), stops it by PID and
// prints a markdown table.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

const ns = "bench-kubelet"

var measures = []string{"liveness", "probes"}

type config struct {
	binary      string
	appBinary   string // the probe pods' program (a static cmd/k1s-app); empty: `k1s app`
	serverArgs  []string
	only        map[string]bool
	pods        int
	step        int
	clients     int
	startBudget time.Duration
	stepTimeout time.Duration
	settle      time.Duration
	baseline    time.Duration
	window      time.Duration
	liveness    int
	threshold   int32
	portBase    int
	ownAgent    bool
	keep        bool
	// stampBinary, when set, is the exec probe's program (`stamp FILE`,
	// bench/tools/stamp.c); empty: `sh -c 'date +%s%N >> FILE'`.
	stampBinary string
}

func main() {
	var (
		c          config
		serverArgs string
		only       string
		header     bool
		execProbe  string
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary (pods run it too, as `k1s app`, unless -app is given)")
	flag.StringVar(&c.appBinary, "app", "", "the probe pods run this program (e.g. bin/k1s-app, the static k1s app: 3 MB resident instead of the 250 MB k1s binary's ~100 MB) instead of `k1s app`")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags (space separated)")
	flag.StringVar(&only, "only", strings.Join(measures, ","), "comma-separated subset of: "+strings.Join(measures, ","))
	flag.IntVar(&c.pods, "pods", 500, "probe pods wanted")
	flag.IntVar(&c.step, "step", 100, "probe pods added per step (each step measured)")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients creating the probe pods")
	flag.DurationVar(&c.startBudget, "start-budget", 240*time.Second, "no new step once this long has passed since the first began")
	flag.DurationVar(&c.stepTimeout, "step-timeout", 30*time.Second, "how long a step's pods may take to be Ready (else it is measured with those that are, and is the last)")
	flag.DurationVar(&c.settle, "settle", 3*time.Second, "wait after the server is ready and after a step's pods are, before measuring")
	flag.DurationVar(&c.baseline, "baseline", 15*time.Second, "idle CPU baseline, before any pod")
	flag.DurationVar(&c.window, "window", 30*time.Second, "measuring window of each step (a multiple of the metrics scrape interval, 15 s: a window holds the same number of scrapes whatever their phase)")
	flag.IntVar(&c.liveness, "liveness", 5, "liveness restarts timed (one pod each)")
	flag.Var((*int32Value)(&c.threshold), "threshold", "failureThreshold of the liveness measure (period 1 s)")
	flag.BoolVar(&c.ownAgent, "agent", false, "run the pods on a second node, a `k1s agent` process joined to the server, and measure that process alone (its CPU with no baseline to subtract but its own idle one, its RSS)")
	flag.StringVar(&execProbe, "exec-probe", "sh", "the probe pods' exec probe: sh (`sh -c 'date +%s%N >> FILE'`, two processes) or stamp (`stamp FILE`, one small static process: bench/tools/stamp.c, which run.sh builds next to the -k1s binary)")
	flag.IntVar(&c.portBase, "port-base", 20000, "first port tried for the pods' k1s app (each pod its own)")
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dir, logs and probe files")
	c.threshold = 3
	flag.Parse()
	c.serverArgs = strings.Fields(serverArgs)
	c.only = map[string]bool{}
	for _, m := range strings.Split(only, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !contains(measures, m) {
			fmt.Fprintf(os.Stderr, "kubeletbench: unknown measure %q (want %s)\n", m, strings.Join(measures, ","))
			os.Exit(2)
		}
		c.only[m] = true
	}
	// The pods run this binary too: the path must not depend on their
	// working directory.
	if abs, err := filepath.Abs(c.binary); err == nil {
		c.binary = abs
	}
	if c.appBinary != "" {
		if abs, err := filepath.Abs(c.appBinary); err == nil {
			c.appBinary = abs
		}
	}
	switch execProbe {
	case "sh":
	case "stamp":
		c.stampBinary = filepath.Join(filepath.Dir(c.binary), "stamp")
		if _, err := os.Stat(c.stampBinary); err != nil {
			fmt.Fprintf(os.Stderr, "kubeletbench: -exec-probe stamp: %v (build it: cc -O2 -static -o %s bench/tools/stamp.c)\n", err, c.stampBinary)
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "kubeletbench: -exec-probe %q: want sh or stamp\n", execProbe)
		os.Exit(2)
	}
	b := &bench{config: c}
	// A SIGINT or SIGTERM ends the measures early; the servers, agents
	// and pods started so far are still stopped (by PID) and cleaned up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := b.run(ctx)
	stop()
	b.table.Print(os.Stdout, header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeletbench:", err)
		os.Exit(1)
	}
}

type int32Value int32

func (v *int32Value) String() string { return fmt.Sprint(int32(*v)) }
func (v *int32Value) Set(s string) error {
	var n int32
	_, err := fmt.Sscan(s, &n)
	*v = int32Value(n)
	return err
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
	node  string
	ports *portPicker
	// The measured process: the server (its node agent inside) or, with
	// -agent, the joined agent; and where its node keeps container logs.
	pid    int
	what   string
	logDir string
}

func (b *bench) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubeletbench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	args := append([]string{"--stop-pods-on-exit"}, b.serverArgs...)
	srv, err := harness.Launch(b.binary, "k1s-kubeletbench-", b.keep, b.log, args...)
	if err != nil {
		return err
	}
	b.srv = srv
	defer srv.Close()
	b.ports = &portPicker{next: b.portBase}
	if b.c, err = kubernetes.NewForConfig(srv.Config); err != nil {
		return err
	}
	if b.node, err = waitReadyNode(ctx, b.c, "", 30*time.Second); err != nil {
		return err
	}
	if b.node == "" {
		b.table.Add("kubelet measures", "n/a (no Ready node within 30s)", "")
		return nil
	}
	b.pid, b.what, b.logDir = srv.PID(), "server process", filepath.Join(srv.DataDir, "agent", "logs")
	if b.ownAgent {
		dir := filepath.Join(srv.Work, "agent-n2")
		// The agent runs its own copy of the binary, as on a second
		// machine: the server's mappings of the same file would keep
		// pages cached that the agent then maps around what it touches.
		binary := filepath.Join(srv.Work, "k1s-agent")
		if err := harness.CopyFile(b.binary, binary); err != nil {
			return err
		}
		agent, err := harness.StartAgent(binary, srv.Server, dir, "bench-agent", "--stop-pods-on-exit")
		if err != nil {
			return err
		}
		defer func() {
			if err := agent.Stop(); err != nil {
				b.log("%v", err)
			}
		}()
		if b.node, err = waitReadyNode(ctx, b.c, "bench-agent", 60*time.Second); err != nil {
			return err
		}
		if b.node == "" {
			b.table.Add("kubelet measures", "n/a (the joined agent's node not Ready within 60s)", "")
			return nil
		}
		b.pid, b.what, b.logDir = agent.PID(), "`k1s agent` process (2nd node)", filepath.Join(dir, "logs")
		b.log("measuring agent pid %d, node %s", agent.PID(), b.node)
	}
	if err := harness.EnsureNamespace(ctx, b.c, ns); err != nil {
		return err
	}
	var idle harness.CPU
	if b.only["probes"] {
		// Idle baseline first, before any pod exists.
		harness.Sleep(ctx, b.settle)
		c0, err := harness.ReadCPU(b.pid)
		if err != nil {
			return err
		}
		t0 := time.Now()
		harness.Sleep(ctx, b.baseline)
		c1, err := harness.ReadCPU(b.pid)
		if err != nil {
			return err
		}
		idle = perWall(c1, c0, time.Since(t0))
		b.log("idle %s CPU %.1f %% of one core over %s", b.what, 100*idle.Self.Seconds(), b.baseline)
	}
	if b.only["liveness"] {
		if err := b.livenessRestarts(ctx); err != nil {
			srv.Keep()
			return err
		}
	}
	if b.only["probes"] {
		if err := b.probeLoad(ctx, idle); err != nil {
			srv.Keep()
			return err
		}
	}
	return nil
}

// perWall is (c1 − c0) scaled to one second of wall time.
func perWall(c1, c0 harness.CPU, wall time.Duration) harness.CPU {
	f := float64(time.Second) / float64(wall)
	return harness.CPU{
		Self:     time.Duration(float64(c1.Self-c0.Self) * f),
		Children: time.Duration(float64(c1.Children-c0.Children) * f),
	}
}

// waitReadyNode returns the name of a Ready node (the one named, or any
// when name is ""), or "" if none is within wait.
func waitReadyNode(ctx context.Context, c kubernetes.Interface, name string, wait time.Duration) (string, error) {
	var found string
	var err error
	harness.WaitEvery(ctx, 100*time.Millisecond, wait, func() bool {
		var nodes *corev1.NodeList
		nodes, err = c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, n := range nodes.Items {
			if name != "" && n.Name != name {
				continue
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					found = n.Name
					return true
				}
			}
		}
		return false
	})
	return found, err
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes (0 if unknown).
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "MemAvailable: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return 0
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func p50p99max(d []time.Duration) string {
	return fmt.Sprintf("%s / %s / %s", harness.Ms(harness.Median(d)), harness.Ms(harness.Quantile(d, 0.99)), harness.Ms(harness.Quantile(d, 1)))
}
