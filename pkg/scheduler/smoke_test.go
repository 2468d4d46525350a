package scheduler

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// TestAgainstServer runs the scheduler against a real API server for
// K1S_SMOKE_SECONDS (default 20) seconds: K1S_SMOKE_KUBECONFIG=path.
func TestAgainstServer(t *testing.T) {
	path := os.Getenv("K1S_SMOKE_KUBECONFIG")
	if path == "" {
		t.Skip("set K1S_SMOKE_KUBECONFIG")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := 20 * time.Second
	if s := os.Getenv("K1S_SMOKE_SECONDS"); s != "" {
		if d, err = time.ParseDuration(s + "s"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := New(client, informers.NewSharedInformerFactory(client, 0), clock.RealClock{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Run(ctx)
}

// TestThroughputAgainstServer creates 5 nodes (no agent needed) and 1,000
// pending pods on a real API server (K1S_SMOKE_KUBECONFIG, started with
// --disable-agent) and reports how fast the scheduler binds them.
func TestThroughputAgainstServer(t *testing.T) {
	path := os.Getenv("K1S_SMOKE_KUBECONFIG")
	if path == "" || os.Getenv("K1S_SMOKE_THROUGHPUT") == "" {
		t.Skip("set K1S_SMOKE_KUBECONFIG and K1S_SMOKE_THROUGHPUT")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 1000
	run := time.Now().Format("150405")
	ns := "sched-bench-" + run
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Servers run with --disable-controllers have no ServiceAccount controller.
	sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		node := makeNode(fmt.Sprintf("bench-%s-%d", run, i), allocatable("32", "64Gi", "500"))
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status = node.Status
			if cur, err = client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return err
			}
			// The API server adds not-ready:NoSchedule to new nodes; no node
			// lifecycle controller may run to lift it.
			cur.Spec.Taints = nil
			_, err = client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := makePod(fmt.Sprintf("p%04d", i), requests("10m", "10Mi"))
			p.Namespace, p.UID = ns, ""
			if _, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	factory := informers.NewSharedInformerFactory(client, 0)
	s, err := New(client, factory, clock.RealClock{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	lister := factory.Core().V1().Pods().Lister()
	var synced time.Duration
	for {
		if synced == 0 && factory.Core().V1().Pods().Informer().HasSynced() {
			synced = time.Since(start)
		}
		pods, _ := lister.Pods(ns).List(labels.Everything())
		bound := 0
		for _, p := range pods {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
		if bound == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d bound", bound, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stop()
	<-done
	t.Logf("%d pods bound in %v: %.0f pods/s; after the informers synced (%v): %.0f pods/s",
		n, elapsed, float64(n)/elapsed.Seconds(), synced, float64(n)/(elapsed-synced).Seconds())
}
