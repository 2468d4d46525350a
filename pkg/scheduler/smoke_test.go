package scheduler

import (
	"context"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
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
