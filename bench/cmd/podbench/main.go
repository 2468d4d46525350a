// Command podbench measures pod start-up through the node agent: create →
// Running and create → Ready (no probes) for one pod at a time and for a
// burst of pods created at once, with host-runtime pods (`sleep 3600`).
// It starts its own `k1s server` (or uses -kubeconfig) and prints a
// markdown table; when no Node is Ready within -node-wait every value is
// "n/a (no node)" and it exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
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
	nodeWait   time.Duration
	podTimeout time.Duration
	keep       bool
}

func main() {
	var (
		c          config
		serverArgs string
		header     bool
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary")
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "use the server of this kubeconfig instead of starting one")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags (space separated)")
	flag.IntVar(&c.single, "single", 20, "pods started one at a time")
	flag.IntVar(&c.burst, "burst", 100, "pods created at once")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients creating the burst")
	flag.DurationVar(&c.nodeWait, "node-wait", 10*time.Second, "how long to wait for a Ready Node")
	flag.DurationVar(&c.podTimeout, "pod-timeout", 60*time.Second, "how long a pod (or the burst) may take to be Ready")
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dir and server log")
	flag.Parse()
	c.serverArgs = strings.Fields(serverArgs)

	b := &bench{config: c}
	err := b.run(context.Background())
	b.table.Print(os.Stdout, header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	config
	table harness.Table
}

func (b *bench) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "podbench: "+format+"\n", args...)
}

// measures are the rows, filled with "n/a (no node)" when there is none.
func (b *bench) measures() []string {
	return []string{
		fmt.Sprintf("pod create → Running, 1 pod at a time (x%d): p50 / p99", b.single),
		fmt.Sprintf("pod create → Ready (no probes), 1 pod at a time (x%d): p50 / p99", b.single),
		fmt.Sprintf("pod create → Running, %d pods at once: p50 / p99 / all", b.burst),
		fmt.Sprintf("pod create → Ready (no probes), %d pods at once: p50 / p99 / all", b.burst),
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
		for _, m := range b.measures() {
			b.table.Add(m, "n/a (no node)", "")
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
	m := b.measures()
	run, ready := b.singles(ctx, c, tr)
	b.table.Add(m[0], run, "")
	b.table.Add(m[1], ready, "")
	clients := make([]kubernetes.Interface, b.clients)
	for i := range clients {
		if clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(cfg)); err != nil {
			return err
		}
	}
	run, ready = b.burstStart(ctx, clients, tr)
	b.table.Add(m[2], run, "")
	b.table.Add(m[3], ready, "")
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
	s, err := harness.Start(b.binary, work+"/server", b.serverArgs...)
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if _, err := s.Stop(); err != nil {
			b.log("%v", err)
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
func sleepPod(name string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "podbench"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   "busybox",
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}
