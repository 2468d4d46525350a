package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"k1s.dev/k1s/bench/internal/harness"
)

// livenessRestarts runs b.liveness pods of `k1s app --create-file F` with a
// liveness exec probe (period 1 s, failureThreshold b.threshold) that
// appends its time to a file and then tests F; one pod at a time, F is
// deleted and the time to the restarted container (restartCount 1, state
// running, seen on a pod watch) is taken, minus period × threshold; and,
// from the probe's own timestamps, from the threshold-th failing probe.
func (b *bench) livenessRestarts(ctx context.Context) error {
	period := time.Second
	budget := time.Duration(b.threshold) * period
	row := fmt.Sprintf("liveness exec failure → container restarted, latency beyond period × threshold (period 1 s, failureThreshold %d; x%d): failing probe #%d (its container-side timestamp) → restart seen: p50 / p99", b.threshold, b.liveness, b.threshold)
	row2 := fmt.Sprintf("… probed file deleted → restart seen: p50 / p99; the same minus period × threshold (%s)", budget)
	if b.liveness <= 0 {
		return nil
	}
	dir := filepath.Join(b.srv.Work, "liveness")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var exp harness.Expect[*corev1.Pod]
	l, err := b.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench-live"})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go harness.WatchLoop(wctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return b.c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=bench-live", ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted {
			exp.Observe(p, at)
		}
	})

	names := make([]string, b.liveness)
	var ready []*harness.Cond[*corev1.Pod]
	for i := range names {
		names[i] = fmt.Sprintf("live-%d", i)
		port, err := b.ports.pick()
		if err != nil {
			return err
		}
		name := names[i]
		ready = append(ready, exp.Add(func(p *corev1.Pod) bool { return p.Name == name && podReady(p) }))
		if _, err := b.c.CoreV1().Pods(ns).Create(ctx, b.livePod(name, port, dir), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	defer b.deletePods(ctx, "app=bench-live", 60*time.Second)
	for i, r := range ready {
		if !r.Wait(ctx, 60*time.Second) {
			b.table.Add(row, na("pod %s not Ready within 60s", names[i]), "")
			b.table.Add(row2, "n/a", "")
			return nil
		}
	}
	// Let every liveness worker get past its jittered first run.
	harness.Sleep(ctx, 3*period)

	var fromDelete, fromFail []time.Duration
	for _, name := range names {
		restarted := exp.Add(func(p *corev1.Pod) bool {
			if p.Name != name || len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			s := p.Status.ContainerStatuses[0]
			return s.RestartCount >= 1 && s.State.Running != nil
		})
		tDel := time.Now()
		if err := os.Remove(filepath.Join(dir, name+".alive")); err != nil {
			return err
		}
		if !restarted.Wait(ctx, budget+30*time.Second) {
			b.table.Add(row, na("%s not restarted within %s of the delete", name, budget+30*time.Second), "")
			b.table.Add(row2, "n/a", "")
			return nil
		}
		fromDelete = append(fromDelete, restarted.At.Sub(tDel))
		if fail, err := nthProbeAfter(filepath.Join(dir, name+".probes"), tDel, int(b.threshold)); err == nil {
			fromFail = append(fromFail, restarted.At.Sub(fail))
		} else {
			b.log("%s: %v", name, err)
		}
		b.log("%s restarted %s after the delete", name, restarted.At.Sub(tDel).Round(time.Millisecond))
	}
	if len(fromFail) > 0 {
		b.table.Add(row, p50p99(fromFail), "")
	} else {
		b.table.Add(row, "n/a (no probe timestamps)", "")
	}
	minus := make([]time.Duration, len(fromDelete))
	for i, d := range fromDelete {
		minus[i] = d - budget
	}
	b.table.Add(row2, p50p99(fromDelete)+"; "+p50p99(minus), "")
	return nil
}

// nthProbeAfter reads a file of `date +%s%N` lines and returns the n-th
// time after t.
func nthProbeAfter(path string, t time.Time, n int) (time.Time, error) {
	ts, err := readNanos(path)
	if err != nil {
		return time.Time{}, err
	}
	var after []time.Time
	for _, x := range ts {
		if x.After(t) {
			after = append(after, x)
		}
	}
	if len(after) < n {
		return time.Time{}, fmt.Errorf("%s: %d probe times after the delete, want %d", path, len(after), n)
	}
	return after[n-1], nil
}

// readNanos parses a file of Unix nanosecond timestamps, one per line,
// sorted.
func readNanos(path string) ([]time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			continue // a line cut by a probe killed mid-write
		}
		out = append(out, time.Unix(0, ns))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out, nil
}

// livePod runs k1s app, which creates DIR/NAME.alive at start; its liveness
// probe appends the time to DIR/NAME.probes and tests the file.
func (b *bench) livePod(name string, port int, dir string) *corev1.Pod {
	grace := int64(1)
	alive := filepath.Join(dir, name+".alive")
	probes := filepath.Join(dir, name+".probes")
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench-live"}},
		Spec: corev1.PodSpec{
			NodeName:                      b.node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "app",
				Image:   "busybox",
				Command: []string{b.binary, "app", "--port", strconv.Itoa(port), "--create-file", alive},
				LivenessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
						"sh", "-c", fmt.Sprintf("date +%%s%%N >> %s; test -f %s", probes, alive)}}},
					PeriodSeconds:    1,
					TimeoutSeconds:   1,
					FailureThreshold: b.threshold,
				},
			}},
		},
	}
}

// deletePods deletes the selected pods one by one (16 at a time: one
// DeleteCollection of hundreds of pods can outlast the request timeout)
// and waits until they are gone; what is left then ends with the server
// (--stop-pods-on-exit, then SIGKILL by PID).
func (b *bench) deletePods(ctx context.Context, selector string, timeout time.Duration) {
	l, err := b.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		b.log("listing pods %s: %v", selector, err)
		return
	}
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(l.Items) {
					return
				}
				if err := b.c.CoreV1().Pods(ns).Delete(ctx, l.Items[i].Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					b.log("deleting pod %s: %v", l.Items[i].Name, err)
				}
			}
		}()
	}
	wg.Wait()
	left := 0
	if harness.WaitEvery(ctx, 250*time.Millisecond, timeout, func() bool {
		l, err := b.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false
		}
		left = len(l.Items)
		return left == 0
	}) {
		b.log("%d pods %s gone %s after their delete", len(l.Items), selector, time.Since(t0).Round(time.Millisecond))
	} else {
		b.log("%d of %d pods %s still there %s after their delete", left, len(l.Items), selector, timeout)
	}
}

func na(format string, args ...any) string { return "n/a: " + fmt.Sprintf(format, args...) }

func p50p99(d []time.Duration) string {
	return harness.Ms(harness.Median(d)) + " / " + harness.Ms(harness.Quantile(d, 0.99))
}
