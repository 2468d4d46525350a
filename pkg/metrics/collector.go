package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// KubeletClient fetches a node's /metrics/resource.
type KubeletClient interface {
	ResourceMetrics(ctx context.Context, node string) ([]byte, error)
}

// NodeProxy reaches kubelets through the API server's node proxy, so it
// needs no kubelet credentials and works for agents on other machines.
type NodeProxy struct {
	// Client is a REST client for the core API group (CoreV1().RESTClient()).
	Client rest.Interface
}

var _ KubeletClient = NodeProxy{}

// ResourceMetrics implements KubeletClient.
func (p NodeProxy) ResourceMetrics(ctx context.Context, node string) ([]byte, error) {
	return p.Client.Get().AbsPath("/api/v1/nodes", node, "proxy", "metrics", "resource").DoRaw(ctx)
}

// NodeLister is what the collector and the API read nodes from
// (a client-go NodeLister).
type NodeLister interface {
	List(selector labels.Selector) ([]*corev1.Node, error)
	Get(name string) (*corev1.Node, error)
}

// Collector scrapes the kubelets of all Ready nodes into a Store.
type Collector struct {
	Nodes   NodeLister
	Kubelet KubeletClient
	Store   *Store
	Clock   clock.Clock
	// Interval between scrapes once every Ready node has metrics.
	Interval time.Duration
	// FirstInterval between scrapes while some Ready node has no metrics
	// yet (right after start, or after a node joined) or its last scrape
	// failed, so that `kubectl top` works within seconds instead of after
	// two full intervals.
	FirstInterval time.Duration
	// Timeout of one node's scrape.
	Timeout time.Duration
}

// Run scrapes until ctx ends; the first scrape is immediate.
func (c *Collector) Run(ctx context.Context) {
	for {
		next := c.CollectOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.Clock.After(next):
		}
	}
}

// CollectOnce scrapes every Ready node once, stores the batch, and says
// how long to wait before the next scrape.
func (c *Collector) CollectOnce(ctx context.Context) time.Duration {
	nodes, err := c.Nodes.List(labels.Everything())
	if err != nil {
		klog.ErrorS(err, "Failed to list nodes")
	}
	var ready []*corev1.Node
	for _, n := range nodes {
		if nodeReady(n) {
			ready = append(ready, n)
		}
	}
	batch := NewBatch()
	batch.Time = c.Clock.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := c.scrapeNode(ctx, n.Name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					klog.ErrorS(err, "Failed to scrape node", "node", n.Name)
				}
				batch.Failed = append(batch.Failed, n.Name)
				return
			}
			batch.Merge(b)
		}()
	}
	wg.Wait()
	c.Store.Add(batch)
	if len(batch.Failed) > 0 {
		return c.FirstInterval
	}
	for _, n := range ready {
		if !c.Store.HasNodeMetrics(n.Name) {
			return c.FirstInterval
		}
	}
	if len(ready) == 0 {
		return c.FirstInterval
	}
	return c.Interval
}

func (c *Collector) scrapeNode(ctx context.Context, node string) (*Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := c.Clock.Now()
	text, err := c.Kubelet.ResourceMetrics(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics/resource: %w", err)
	}
	return DecodeResourceMetrics(text, node, start)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
