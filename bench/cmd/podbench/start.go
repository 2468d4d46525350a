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

// mode is how pods reach their node: through the scheduler (nodeName
// empty) or bound in the manifest (the node agent alone).
type mode struct {
	label    string
	nodeName string
}

// prefix keeps pod names apart between modes: the tracker keys its times
// by name, and a name reused from the previous mode read the old pod's.
func (m mode) prefix() string {
	if m.nodeName != "" {
		return "bound"
	}
	return "sched"
}

// result of one start-up measure: Running and Ready values, and whether
// the next measures of the mode are worth running.
type result struct {
	running, ready string
	ok             bool
}

func failed(msg string) result { return result{"n/a: " + msg, "n/a: " + msg, false} }

// singles starts pods one at a time, each timed from the start of its
// create request; each is deleted (and gone) before the next.
func (b *bench) singles(ctx context.Context, c kubernetes.Interface, tr *tracker, m mode) result {
	var run, rdy []time.Duration
	for i := 0; i < b.single; i++ {
		name := fmt.Sprintf("%s-single-%03d", m.prefix(), i)
		t0 := time.Now()
		if _, err := c.CoreV1().Pods(ns).Create(ctx, sleepPod(name, m.nodeName), metav1.CreateOptions{}); err != nil {
			return failed("create: " + err.Error())
		}
		if !tr.waitBound(ctx, name, b.schedWait) {
			b.deleteAll(ctx, c, tr, []string{name})
			return failed(fmt.Sprintf("not scheduled within %s (no scheduler?)", b.schedWait))
		}
		if tr.waitReady(ctx, []string{name}, b.podTimeout) == 0 {
			state := tr.describe(name)
			b.deleteAll(ctx, c, tr, []string{name})
			return failed(fmt.Sprintf("not Ready within %s (%s)", b.podTimeout, state))
		}
		r, y := tr.times([]string{name})
		run = append(run, r[0].Sub(t0))
		rdy = append(rdy, y[0].Sub(t0))
		b.deleteAll(ctx, c, tr, []string{name})
	}
	b.log("single pods, %s: Running %s, Ready %s", m.label, p50p99(run), p50p99(rdy))
	return result{p50p99(run), p50p99(rdy), true}
}

// burstStart creates b.burst pods at once, one worker per client (clients[0]
// also deletes them); each pod is timed from the start of its own create
// request, "all" from the first request to the last pod.
func (b *bench) burstStart(ctx context.Context, clients []kubernetes.Interface, tr *tracker, m mode) result {
	names := make([]string, b.burst)
	starts := make([]time.Time, b.burst)
	for i := range names {
		names[i] = fmt.Sprintf("%s-burst-%03d", m.prefix(), i)
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
				if _, err := cc.CoreV1().Pods(ns).Create(ctx, sleepPod(names[i], m.nodeName), metav1.CreateOptions{}); err != nil {
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
	defer b.deleteAll(ctx, clients[0], tr, names)
	if firstErr != nil {
		return failed("create: " + firstErr.Error())
	}
	n := tr.waitReady(ctx, names, b.podTimeout)
	r, y := tr.times(names)
	if n < len(names) {
		for i, at := range y {
			if at.IsZero() {
				return failed(fmt.Sprintf("%d of %d Ready within %s (%s: %s)", n, len(names), b.podTimeout, names[i], tr.describe(names[i])))
			}
		}
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
	res := result{summary(r), summary(y), true}
	b.log("burst of %d, %s: Running %s, Ready %s", len(names), m.label, res.running, res.ready)
	return res
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
