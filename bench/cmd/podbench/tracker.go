package main

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// tracker watches the namespace's pods and notes, per pod name, when a
// watch event first showed it Running and first showed it Ready.
type tracker struct {
	cancel  context.CancelFunc
	mu      sync.Mutex
	running map[string]time.Time
	ready   map[string]time.Time
	bound   map[string]bool
	gone    map[string]bool
	last    map[string]*corev1.Pod
}

func newTracker(ctx context.Context, c kubernetes.Interface, ns string) (*tracker, error) {
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	t := newTrackerState()
	t.cancel = cancel
	go t.loop(ctx, c, ns, l.ResourceVersion)
	return t, nil
}

func newTrackerState() *tracker {
	return &tracker{
		running: map[string]time.Time{},
		ready:   map[string]time.Time{},
		bound:   map[string]bool{},
		gone:    map[string]bool{},
		last:    map[string]*corev1.Pod{},
	}
}

func (t *tracker) stop() { t.cancel() }

// loop watches from rv, re-opening the watch (from the last seen
// resourceVersion) when the server closes it.
func (t *tracker) loop(ctx context.Context, c kubernetes.Interface, ns, rv string) {
	for ctx.Err() == nil {
		w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			at := time.Now()
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = pod.ResourceVersion
			t.observe(ev.Type, pod, at)
		}
		w.Stop()
	}
}

func (t *tracker) observe(typ watch.EventType, pod *corev1.Pod, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if typ == watch.Deleted {
		t.gone[pod.Name] = true
		return
	}
	if typ == watch.Added {
		// A new pod of an old name starts from nothing.
		delete(t.running, pod.Name)
		delete(t.ready, pod.Name)
		delete(t.bound, pod.Name)
		delete(t.gone, pod.Name)
	}
	t.last[pod.Name] = pod
	if pod.Spec.NodeName != "" {
		t.bound[pod.Name] = true
	}
	if _, ok := t.running[pod.Name]; !ok && pod.Status.Phase == corev1.PodRunning {
		t.running[pod.Name] = at
	}
	if _, ok := t.ready[pod.Name]; !ok && podReady(pod) {
		t.ready[pod.Name] = at
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// times returns when each named pod was first seen Running and Ready (zero
// if not yet).
func (t *tracker) times(names []string) (running, ready []time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		running = append(running, t.running[n])
		ready = append(ready, t.ready[n])
	}
	return running, ready
}

// describe says where a pod is: phase, node and the first container's
// waiting reason.
func (t *tracker) describe(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.last[name]
	if p == nil {
		return "not seen"
	}
	s := string(p.Status.Phase)
	if s == "" {
		s = "no phase"
	}
	if p.Spec.NodeName == "" {
		s += ", not scheduled"
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Waiting != nil {
			s += ", " + c.Name + " waiting: " + c.State.Waiting.Reason
			break
		}
	}
	return s
}

// waitBound waits until the pod has a node, or timeout.
func (t *tracker) waitBound(ctx context.Context, name string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		ok := t.bound[name]
		t.mu.Unlock()
		if ok {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReady waits until all names were seen Ready, or timeout; it reports
// how many were.
func (t *tracker) waitReady(ctx context.Context, names []string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		_, ready := t.times(names)
		n := 0
		for _, r := range ready {
			if !r.IsZero() {
				n++
			}
		}
		if n == len(names) || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until all names were seen deleted, or timeout.
func (t *tracker) waitGone(ctx context.Context, names []string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		all := true
		for _, n := range names {
			if !t.gone[n] {
				all = false
				break
			}
		}
		t.mu.Unlock()
		if all {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
