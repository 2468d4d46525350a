// Command podbench measures pod start-up through the node agent: create →
// Running and create → Ready (no probes) for one pod at a time and for a
// burst of pods created at once, with host-runtime pods (`sleep 3600`).
// It starts its own `k1s server` (or uses -kubeconfig) and prints a
// markdown table; when no Node is Ready within -node-wait every value is
// "n/a (no node)" and it exits 0. Each measure runs twice: through the
// scheduler, and with spec.nodeName set in the manifest (the node agent
// alone); a mode whose first pod is not scheduled is reported n/a.
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"k1s.dev/k1s/bench/internal/harness"
)

const ns = "bench-podstart"

type config struct {
	binary     string
	kubeconfig string
	serverArgs []string
	single     int
	burst      int
	clients    int
	modes      []string
	nodeWait   time.Duration
	schedWait  time.Duration
	podTimeout time.Duration
	keep       bool
}

func main() {
	var (
		c          config
		serverArgs string
		modes      string
		header     bool
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary")
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "use the server of this kubeconfig instead of starting one")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags (space separated)")
	flag.IntVar(&c.single, "single", 20, "pods started one at a time")
	flag.IntVar(&c.burst, "burst", 100, "pods created at once")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients creating the burst")
	flag.StringVar(&modes, "modes", "scheduler,bound", "comma-separated: scheduler (nodeName empty), bound (nodeName set to the Ready node)")
	flag.DurationVar(&c.nodeWait, "node-wait", 10*time.Second, "how long to wait for a Ready Node")
	flag.DurationVar(&c.schedWait, "sched-wait", 10*time.Second, "how long the first pod of a mode may wait for a node")
	flag.DurationVar(&c.podTimeout, "pod-timeout", 30*time.Second, "how long a pod (or the burst) may take to be Ready")
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dir and server log")
	flag.Parse()
	c.serverArgs = strings.Fields(serverArgs)
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "scheduler", "bound":
			c.modes = append(c.modes, m)
		case "":
		default:
			fmt.Fprintf(os.Stderr, "podbench: unknown mode %q (want scheduler, bound)\n", m)
			os.Exit(2)
		}
	}

	b := &bench{config: c}
	// A SIGINT or SIGTERM ends the measures early; the server is still
	// stopped by PID (and stops its pods' containers).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := b.run(ctx)
	stop()
	b.table.Print(os.Stdout, header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	config
	table harness.Table
	quiet bool // tests
}

func (b *bench) log(format string, args ...any) {
	if !b.quiet {
		fmt.Fprintf(os.Stderr, "podbench: "+format+"\n", args...)
	}
}

// labels of the modes' rows.
func modeLabel(m string) string {
	if m == "bound" {
		return "nodeName set (agent only)"
	}
	return "via scheduler"
}

// measures are the row names of one mode.
func (b *bench) measures(label string) [4]string {
	return [4]string{
		fmt.Sprintf("pod create → Running, 1 pod at a time (x%d), %s: p50 / p99", b.single, label),
		fmt.Sprintf("pod create → Ready (no probes), 1 pod at a time (x%d), %s: p50 / p99", b.single, label),
		fmt.Sprintf("pod create → Running, %d pods at once, %s: p50 / p99 / all", b.burst, label),
		fmt.Sprintf("pod create → Ready (no probes), %d pods at once, %s: p50 / p99 / all", b.burst, label),
	}
}

func (b *bench) run(ctx context.Context) error {
	cfg, stop, err := b.server()
	if err != nil {
		return err
	}
	defer stop()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	node, err := waitReadyNode(ctx, c, b.nodeWait)
	if err != nil {
		return err
	}
	if node == "" {
		b.log("no Node Ready within %s", b.nodeWait)
		for _, m := range b.modes {
			for _, r := range b.measures(modeLabel(m)) {
				b.table.Add(r, "n/a (no node)", "")
			}
		}
		return nil
	}
	b.log("node %s is Ready", node)
	if err := harness.EnsureNamespace(ctx, c, ns); err != nil {
		return err
	}
	tr, err := newTracker(ctx, c, ns)
	if err != nil {
		return err
	}
	defer tr.stop()
	clients := make([]kubernetes.Interface, b.clients)
	for i := range clients {
		if clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(cfg)); err != nil {
			return err
		}
	}
	for _, name := range b.modes {
		m := mode{label: modeLabel(name)}
		if name == "bound" {
			m.nodeName = node
		}
		rows := b.measures(m.label)
		res := b.singles(ctx, c, tr, m)
		b.table.Add(rows[0], res.running, "")
		b.table.Add(rows[1], res.ready, "")
		if res.ok {
			res = b.burstStart(ctx, clients, tr, m)
		} else {
			res = result{"n/a (skipped: single pod failed)", "n/a (skipped: single pod failed)", false}
		}
		b.table.Add(rows[2], res.running, "")
		b.table.Add(rows[3], res.ready, "")
	}
	return nil
}

// server starts a k1s server unless -kubeconfig names one; stop ends it.
func (b *bench) server() (*rest.Config, func(), error) {
	if b.kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", b.kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		harness.Unthrottled(cfg)
		return cfg, func() {}, nil
	}
	if _, err := os.Stat(b.binary); err != nil {
		return nil, nil, fmt.Errorf("%v (run `make build`)", err)
	}
	work, err := os.MkdirTemp("", "k1s-podbench-")
	if err != nil {
		return nil, nil, err
	}
	// --stop-pods-on-exit: containers left by an interrupted run end with
	// the server.
	s, err := harness.Start(b.binary, work+"/server", append([]string{"--stop-pods-on-exit"}, b.serverArgs...)...)
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if _, err := s.Stop(); err != nil {
			b.log("%v", err)
		}
		if n := harness.KillLeftoverContainers(s.DataDir) + harness.KillProcessesIn(work); n > 0 {
			b.log("killed %d container processes left running", n)
		}
		if b.keep {
			b.log("data dir and log kept in %s", work)
		} else {
			os.RemoveAll(work)
		}
	}
	if _, err := s.WaitReadyz(90 * time.Second); err != nil {
		stop()
		return nil, nil, err
	}
	if err := s.WaitLogReady(10 * time.Second); err != nil {
		stop()
		return nil, nil, err
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		stop()
		return nil, nil, err
	}
	b.log("server pid %d at %s", s.PID(), s.URL)
	return cfg, stop, nil
}

// waitReadyNode returns the name of a Node whose Ready condition is True,
// or "" if none is within wait.
func waitReadyNode(ctx context.Context, c kubernetes.Interface, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return n.Name, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", nil
		}
		harness.Sleep(ctx, 200*time.Millisecond)
	}
}

// sleepPod is a host-runtime pod that runs until deleted.
// nodeName "" leaves it to the scheduler.
func sleepPod(name, nodeName string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "podbench"}},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   "busybox",
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}
