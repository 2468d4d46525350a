package main

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

func TestPodsObserve(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(100+s), 0) }
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: "h1"}}}
	unsched := pending.DeepCopy()
	unsched.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	bound := pending.DeepCopy()
	bound.Spec.NodeName = "n1"
	running := bound.DeepCopy()
	running.Status.Phase = corev1.PodRunning
	ready := running.DeepCopy()
	ready.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	type ev struct {
		typ watch.EventType
		pod *corev1.Pod
	}
	tests := []struct {
		name                                           string
		events                                         []ev
		added, unsched, bound, running, ready, deleted int // seconds after 100; -1 = not seen
	}{
		{"pending", []ev{{watch.Added, pending}}, 0, -1, -1, -1, -1, -1},
		{"unschedulable then bound", []ev{{watch.Added, pending}, {watch.Modified, unsched}, {watch.Modified, bound}}, 0, 1, 2, -1, -1, -1},
		{"lifecycle", []ev{{watch.Added, pending}, {watch.Modified, bound}, {watch.Modified, running}, {watch.Modified, ready}, {watch.Deleted, ready}}, 0, -1, 1, 2, 3, 4},
		{"first times kept", []ev{{watch.Added, ready}, {watch.Modified, ready}}, 0, -1, 0, 0, 0, -1},
		{"re-added after delete starts over", []ev{{watch.Added, ready}, {watch.Deleted, ready}, {watch.Added, pending}}, 2, -1, -1, -1, -1, -1},
	}
	sec := func(x time.Time) int {
		if x.IsZero() {
			return -1
		}
		return int(x.Unix() - 100)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pods{byName: map[string]*podTimes{}}
			for i, e := range tt.events {
				p.observe(e.typ, e.pod, at(i))
			}
			got := p.snapshot(nil)["p"]
			g := [6]int{sec(got.added), sec(got.unschedulable), sec(got.bound), sec(got.running), sec(got.ready), sec(got.deleted)}
			w := [6]int{tt.added, tt.unsched, tt.bound, tt.running, tt.ready, tt.deleted}
			if g != w {
				t.Errorf("added/unsched/bound/running/ready/deleted = %v, want %v", g, w)
			}
			if got.hash != "h1" {
				t.Errorf("hash %q", got.hash)
			}
		})
	}
}

func TestLatestAndLive(t *testing.T) {
	t1, t2 := time.Unix(1, 0), time.Unix(2, 0)
	p := &pods{byName: map[string]*podTimes{
		"a": {bound: t2},
		"b": {bound: t1, deleted: t2},
		"c": {},
	}}
	last, n := latest(p.snapshot(nil), boundAt)
	if !last.Equal(t2) || n != 2 {
		t.Errorf("latest %v, %d", last, n)
	}
	if got := p.live(nil); got != 2 {
		t.Errorf("live %d, want 2", got)
	}
	if got := p.live(func(name string, _ podTimes) bool { return name == "b" }); got != 0 {
		t.Errorf("live b %d", got)
	}
}

func TestManifests(t *testing.T) {
	d := deployment(100)
	ru := d.Spec.Strategy.RollingUpdate
	if *d.Spec.Replicas != 100 || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" {
		t.Errorf("deployment spec %+v", d.Spec)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Command) == 0 || len(c.Env) == 0 || *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 1 {
		t.Errorf("template %+v", d.Spec.Template.Spec)
	}
	p := schedPod("x", "l")
	if p.Spec.NodeSelector["l"] != "true" || p.Spec.NodeName != "" {
		t.Errorf("sched pod %+v", p.Spec)
	}
	lp := lostNodePod(5)
	keys := map[string]int64{}
	for _, tol := range lp.Spec.Tolerations {
		if tol.Effect == corev1.TaintEffectNoExecute {
			keys[tol.Key] = *tol.TolerationSeconds
		}
	}
	if keys[corev1.TaintNodeUnreachable] != 5 || keys[corev1.TaintNodeNotReady] != 5 || lp.Spec.NodeName != lostNode {
		t.Errorf("node-loss pod %+v", lp.Spec)
	}
}

func TestNodeCondition(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
		{Type: corev1.NodeReady, Status: corev1.ConditionUnknown},
	}}}
	if got := nodeCondition(n); got != corev1.ConditionUnknown {
		t.Errorf("got %q", got)
	}
	if got := nodeCondition(&corev1.Node{}); got != "" {
		t.Errorf("no conditions: %q", got)
	}
}
