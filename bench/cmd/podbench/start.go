package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

// singles starts pods one at a time, each timed from the start of its
// create request; each is deleted (and gone) before the next.
func (b *bench) singles(ctx context.Context, c kubernetes.Interface, tr *tracker) (running, ready string) {
	var run, rdy []time.Duration
	for i := 0; i < b.single; i++ {
		name := fmt.Sprintf("single-%03d", i)
		t0 := time.Now()
		if _, err := c.CoreV1().Pods(ns).Create(ctx, sleepPod(name), metav1.CreateOptions{}); err != nil {
			msg := "n/a: create: " + err.Error()
			return msg, msg
		}
		if tr.waitReady(ctx, []string{name}, b.podTimeout) == 0 {
			b.deleteAll(ctx, c, tr, []string{name})
			msg := fmt.Sprintf("n/a: %s not Ready within %s", name, b.podTimeout)
			return msg, msg
		}
		r, y := tr.times([]string{name})
		run = append(run, r[0].Sub(t0))
		rdy = append(rdy, y[0].Sub(t0))
		b.deleteAll(ctx, c, tr, []string{name})
	}
	b.log("single pods: Running p50 %s, Ready p50 %s", harness.Ms(harness.Median(run)), harness.Ms(harness.Median(rdy)))
	return p50p99(run), p50p99(rdy)
}

// burstStart creates b.burst pods from b.clients clients at once; each pod
// is timed from the start of its own create request, "all" from the first
// request to the last pod.
// clients[0] also deletes them.
func (b *bench) burstStart(ctx context.Context, clients []kubernetes.Interface, tr *tracker) (running, ready string) {
	c := clients[0]
	names := make([]string, b.burst)
	starts := make([]time.Time, b.burst)
	for i := range names {
		names[i] = fmt.Sprintf("burst-%03d", i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for _, cc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				starts[i] = time.Now()
				if _, err := cc.CoreV1().Pods(ns).Create(ctx, sleepPod(names[i]), metav1.CreateOptions{}); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	defer b.deleteAll(ctx, c, tr, names)
	if firstErr != nil {
		msg := "n/a: create: " + firstErr.Error()
		return msg, msg
	}
	n := tr.waitReady(ctx, names, b.podTimeout)
	r, y := tr.times(names)
	if n < len(names) {
		msg := fmt.Sprintf("n/a: %d of %d Ready within %s", n, len(names), b.podTimeout)
		return msg, msg
	}
	summary := func(seen []time.Time) string {
		var lat []time.Duration
		var last time.Time
		for i, at := range seen {
			lat = append(lat, at.Sub(starts[i]))
			if at.After(last) {
				last = at
			}
		}
		return p50p99(lat) + " / " + harness.Ms(last.Sub(t0))
	}
	running, ready = summary(r), summary(y)
	b.log("burst of %d: Running %s, Ready %s", len(names), running, ready)
	return running, ready
}

func (b *bench) deleteAll(ctx context.Context, c kubernetes.Interface, tr *tracker, names []string) {
	for _, n := range names {
		if err := c.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			b.log("deleting %s: %v", n, err)
		}
	}
	if !tr.waitGone(ctx, names, b.podTimeout) {
		b.log("pods not gone within %s", b.podTimeout)
	}
}

func p50p99(d []time.Duration) string {
	return harness.Ms(harness.Median(d)) + " / " + harness.Ms(harness.Quantile(d, 0.99))
}
