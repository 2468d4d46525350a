package main

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

// podTimes is what the pod watch saw of one pod: when it first appeared,
// was bound, Running, Ready, and when it was deleted.
type podTimes struct {
	added, bound, running, ready, deleted time.Time
	unschedulable                         time.Time // PodScheduled=False first seen
	node, hash                            string
}

// pods tracks the namespace's pods by name through a watch.
type pods struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	byName map[string]*podTimes
}

func watchPods(ctx context.Context, c kubernetes.Interface, ns, selector string) (*pods, error) {
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pods{cancel: cancel, byName: map[string]*podTimes{}}
	for i := range l.Items {
		p.observe(watch.Added, &l.Items[i], time.Now())
	}
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if pod, ok := ev.Object.(*corev1.Pod); ok {
			p.observe(ev.Type, pod, at)
		}
	})
	return p, nil
}

func (p *pods) stop() { p.cancel() }

func (p *pods) observe(typ watch.EventType, pod *corev1.Pod, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.byName[pod.Name]
	if t == nil || (!t.deleted.IsZero() && typ == watch.Added) {
		t = &podTimes{added: at}
		p.byName[pod.Name] = t
	}
	if typ == watch.Deleted {
		if t.deleted.IsZero() {
			t.deleted = at
		}
		return
	}
	t.hash = pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if pod.Spec.NodeName != "" && t.bound.IsZero() {
		t.bound, t.node = at, pod.Spec.NodeName
	}
	if t.unschedulable.IsZero() {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				t.unschedulable = at
			}
		}
	}
	if pod.Status.Phase == corev1.PodRunning && t.running.IsZero() {
		t.running = at
	}
	if t.ready.IsZero() && podReady(pod) {
		t.ready = at
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

// snapshot copies the state of the pods that match keep (all when nil).
func (p *pods) snapshot(keep func(name string, t podTimes) bool) map[string]podTimes {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]podTimes{}
	for n, t := range p.byName {
		if keep == nil || keep(n, *t) {
			out[n] = *t
		}
	}
	return out
}

// live counts the pods not seen deleted.
func (p *pods) live(keep func(name string, t podTimes) bool) int {
	n := 0
	for _, t := range p.snapshot(keep) {
		if t.deleted.IsZero() {
			n++
		}
	}
	return n
}

// latest returns the latest of one time of the given pods, and how many of
// them have it set.
func latest(all map[string]podTimes, field func(podTimes) time.Time) (time.Time, int) {
	var last time.Time
	n := 0
	for _, t := range all {
		at := field(t)
		if at.IsZero() {
			continue
		}
		n++
		if at.After(last) {
			last = at
		}
	}
	return last, n
}
