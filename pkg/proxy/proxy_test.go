package proxy

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// recorder stands in for the kernel: it keeps what the proxy writes.
type recorder struct {
	mu     sync.Mutex
	writes []string
	failN  int // fail this many writes
	notify chan struct{}
}

func (r *recorder) write(rs *ruleset) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}()
	if r.failN > 0 {
		r.failN--
		return errors.New("kernel says no")
	}
	r.writes = append(r.writes, rs.String("t"))
	return nil
}

func (r *recorder) pendingStale() bool { return false }
func (r *recorder) remove() error      { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.writes) == 0 {
		return ""
	}
	return r.writes[len(r.writes)-1]
}

// waitFor waits (in real time) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSyncLoop(t *testing.T) {
	http := []discovery.EndpointPort{epPort("", 8080)}
	cs := fake.NewClientset(
		service("web", "10.43.0.10", svcPort("", 80, 8080)),
		endpointSlice("web", "web-1", http, readyEP("10.42.0.11", "node1")),
	)
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	rec := &recorder{notify: make(chan struct{}, 1)}
	p, err := New(Options{Client: cs, NodeName: "node1", ClusterCIDR: "10.42.0.0/16", Clock: clk,
		MinSyncInterval: 100 * time.Millisecond, SyncPeriod: 30 * time.Second, BridgeNetfilter: ptr.To(true)})
	if err != nil {
		t.Fatal(err)
	}
	p.writer = rec
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	waitFor(t, "the first write", func() bool { return rec.count() == 1 })
	if !strings.Contains(rec.last(), "dnat to 10.42.0.11:8080") {
		t.Fatalf("first write lacks the endpoint:\n%s", rec.last())
	}

	t.Run("a burst of changes is written together, MinSyncInterval after the last write", func(t *testing.T) {
		for _, ip := range []string{"10.42.0.12", "10.42.0.13", "10.42.0.14", "10.42.0.15"} {
			es := endpointSlice("web", "web-1", http, readyEP(ip, "node1"))
			if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the informer to see the last change", func() bool {
			es, err := p.endpoints.EndpointSlices("default").Get("web-1")
			return err == nil && es.Endpoints[0].Addresses[0] == "10.42.0.15"
		})
		if n := rec.count(); n != 1 {
			t.Fatalf("%d writes before MinSyncInterval passed, want 1", n)
		}
		clk.Step(100 * time.Millisecond)
		waitFor(t, "the write after the burst", func() bool { return rec.count() == 2 })
		if !strings.Contains(rec.last(), "dnat to 10.42.0.15:8080") || strings.Contains(rec.last(), "10.42.0.12") {
			t.Fatalf("write after the burst is not the last state:\n%s", rec.last())
		}
	})

	// stepUntil advances the clock by step until cond holds and returns the
	// fake time it took.
	stepUntil := func(t *testing.T, what string, step time.Duration, cond func() bool) time.Duration {
		t.Helper()
		from := clk.Now()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			clk.Step(step)
			time.Sleep(time.Millisecond)
		}
		return clk.Since(from)
	}

	t.Run("a failed write is retried after retryInterval", func(t *testing.T) {
		rec.mu.Lock()
		rec.failN = 1
		rec.mu.Unlock()
		before := rec.count()
		if err := cs.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		stepUntil(t, "the failed write", 10*time.Millisecond, func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.failN == 0
		})
		if _, err := p.Status(); err == nil {
			t.Fatal("Status reports no error after a failed write")
		}
		took := stepUntil(t, "the retried write", 10*time.Millisecond, func() bool { return rec.count() == before+1 })
		if took < retryInterval-10*time.Millisecond {
			t.Errorf("retried after %s, want %s", took, retryInterval)
		}
		if strings.Contains(rec.last(), "10.43.0.10") {
			t.Fatalf("deleted Service still written:\n%s", rec.last())
		}
		if _, err := p.Status(); err != nil {
			t.Fatalf("Status after a good write: %v", err)
		}
	})

	t.Run("the table is rewritten every SyncPeriod", func(t *testing.T) {
		before := rec.count()
		took := stepUntil(t, "the periodic write", time.Second, func() bool { return rec.count() == before+1 })
		if took > 30*time.Second {
			t.Errorf("periodic write after %s, want 30s", took)
		}
	})
}

// TestRunWithoutPrivilege: not root, Run says so at once instead of
// retrying forever (run the test binary as another user to see it).
func TestRunWithoutPrivilege(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs only without root")
	}
	p, err := New(Options{Client: fake.NewClientset(), BridgeNetfilter: ptr.To(true)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !errors.Is(err, os.ErrPermission) || ctx.Err() != nil {
		t.Fatalf("Run: %v, want a permission error at once", err)
	}
	t.Log(err)
}
