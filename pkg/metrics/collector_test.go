package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"
)

type fakeNodes []*corev1.Node

func (f fakeNodes) List(sel labels.Selector) ([]*corev1.Node, error) {
	var out []*corev1.Node
	for _, n := range f {
		if sel.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f fakeNodes) Get(name string) (*corev1.Node, error) {
	for _, n := range f {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, apierrors.NewNotFound(corev1.Resource("node"), name)
}

// fakeKubelets answer /metrics/resource for each node from a counter
// that advances one core-second per call.
type fakeKubelets struct {
	mu    sync.Mutex
	clock *clocktesting.FakeClock
	calls map[string]int
	fail  map[string]bool
}

func (f *fakeKubelets) ResourceMetrics(ctx context.Context, node string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[node]++
	if f.fail[node] {
		return nil, errors.New("connection refused")
	}
	ms := f.clock.Now().UnixMilli()
	return fmt.Appendf(nil, "node_cpu_usage_seconds_total %d %d\nnode_memory_working_set_bytes 1048576 %d\n"+
		`container_cpu_usage_seconds_total{container="c",namespace="ns",pod="p-%s"} %d %d`+"\n"+
		`container_memory_working_set_bytes{container="c",namespace="ns",pod="p-%s"} 4096 %d`+"\n",
		f.calls[node], ms, ms, node, f.calls[node], ms, node, ms), nil
}

func TestCollectOnce(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	kubelets := &fakeKubelets{clock: clk, fail: map[string]bool{"broken": true}}
	store := &Store{Resolution: Resolution}
	c := &Collector{
		Nodes:         fakeNodes{node("a", true, nil), node("b", true, nil), node("down", false, nil)},
		Kubelet:       kubelets,
		Store:         store,
		Clock:         clk,
		Interval:      10 * time.Second,
		FirstInterval: time.Second,
		Timeout:       time.Second,
	}
	if next := c.CollectOnce(context.Background()); next != time.Second {
		t.Errorf("after the first scrape: next in %s, want the first interval", next)
	}
	clk.Step(time.Second)
	if next := c.CollectOnce(context.Background()); next != 10*time.Second {
		t.Errorf("once every node has metrics: next in %s, want the interval", next)
	}
	if kubelets.calls["down"] != 0 {
		t.Errorf("a node that is not Ready was scraped")
	}
	ms := store.NodeMetrics(t0, node("a", true, nil), node("b", true, nil))
	if len(ms) != 2 {
		t.Fatalf("node metrics %v", ms)
	}
	if q := ms[0].Usage[corev1.ResourceCPU]; q.String() != "1" || ms[0].Window.Duration != time.Second {
		t.Errorf("node a: %s over %s", q.String(), ms[0].Window.Duration)
	}
	if pm := store.PodMetrics(t0, pod("ns", "p-a", nil), pod("ns", "p-b", nil)); len(pm) != 2 {
		t.Errorf("pod metrics %v", pm)
	}

	// A Ready node that cannot be scraped keeps the quick interval.
	c.Nodes = append(c.Nodes.(fakeNodes), node("broken", true, nil))
	clk.Step(10 * time.Second)
	if next := c.CollectOnce(context.Background()); next != time.Second {
		t.Errorf("with a node lacking metrics: next in %s", next)
	}
	if len(store.NodeMetrics(t0, node("a", true, nil))) != 1 {
		t.Errorf("the other nodes keep their metrics")
	}

	// No Ready node at all: keep looking quickly.
	c.Nodes = fakeNodes{node("down", false, nil)}
	if next := c.CollectOnce(context.Background()); next != time.Second {
		t.Errorf("without nodes: next in %s", next)
	}
}

func TestCollectorRunScrapesOnSchedule(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	kubelets := &fakeKubelets{clock: clk}
	c := &Collector{
		Nodes:         fakeNodes{node("a", true, nil)},
		Kubelet:       kubelets,
		Store:         &Store{Resolution: Resolution},
		Clock:         clk,
		Interval:      10 * time.Second,
		FirstInterval: time.Second,
		Timeout:       time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	calls := func() int {
		kubelets.mu.Lock()
		defer kubelets.mu.Unlock()
		return kubelets.calls["a"]
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for calls() < n || !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatalf("%d scrapes, want %d", calls(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(1) // immediately
	clk.Step(time.Second)
	waitFor(2) // after the first interval
	clk.Step(9 * time.Second)
	if calls() != 2 {
		t.Errorf("scraped before the interval")
	}
	clk.Step(time.Second)
	waitFor(3)
	cancel()
	<-done
}
