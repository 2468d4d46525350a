package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func TestTrackerObserve(t *testing.T) {
	at := time.Unix(100, 0)
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	ready := running.DeepCopy()
	ready.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	type ev struct {
		typ watch.EventType
		pod *corev1.Pod
	}
	tests := []struct {
		name               string
		events             []ev
		wantRun, wantReady int64 // seconds; 0 = not seen
		wantGone           bool
	}{
		{"pending only", []ev{{watch.Added, pending}}, 0, 0, false},
		{"running then ready", []ev{{watch.Added, pending}, {watch.Modified, running}, {watch.Modified, ready}}, 101, 102, false},
		{"first time kept", []ev{{watch.Added, running}, {watch.Modified, running}, {watch.Modified, ready}, {watch.Modified, ready}}, 100, 102, false},
		{"deleted", []ev{{watch.Added, ready}, {watch.Deleted, ready}}, 100, 100, true},
		{"re-added name starts over", []ev{{watch.Added, ready}, {watch.Deleted, ready}, {watch.Added, pending}}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTrackerState()
			for i, e := range tt.events {
				tr.observe(e.typ, e.pod, at.Add(time.Duration(i)*time.Second))
			}
			r, y := tr.times([]string{"p"})
			if got := unix(r[0]); got != tt.wantRun {
				t.Errorf("running at %d, want %d", got, tt.wantRun)
			}
			if got := unix(y[0]); got != tt.wantReady {
				t.Errorf("ready at %d, want %d", got, tt.wantReady)
			}
			if tr.gone["p"] != tt.wantGone {
				t.Errorf("gone %v, want %v", tr.gone["p"], tt.wantGone)
			}
		})
	}
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// fakeAgent marks every new pod Running and Ready, like a node agent would.
func fakeAgent(ctx context.Context, t *testing.T, c kubernetes.Interface) {
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Added {
				continue
			}
			p = p.DeepCopy()
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		}
	}()
}

func TestRunWithFakeNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientset()
	fakeAgent(ctx, t, c)
	tr, err := newTracker(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.stop()
	b := &bench{quiet: true, config: config{single: 3, burst: 10, podTimeout: 5 * time.Second, schedWait: 5 * time.Second}}
	m := mode{label: "bound", nodeName: "n"}
	res := b.singles(ctx, c, tr, m)
	for _, v := range []string{res.running, res.ready} {
		if !res.ok || strings.HasPrefix(v, "n/a") || strings.Count(v, " / ") != 1 {
			t.Errorf("singles: %+v", res)
		}
	}
	res = b.burstStart(ctx, []kubernetes.Interface{c, c, c}, tr, m)
	for _, v := range []string{res.running, res.ready} {
		if !res.ok || strings.HasPrefix(v, "n/a") || strings.Count(v, " / ") != 2 {
			t.Errorf("burst: %+v", res)
		}
	}
	pods, _ := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Errorf("%d pods left", len(pods.Items))
	}
}

func TestNoNode(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}}})
	name, err := waitReadyNode(ctx, c, 0)
	if err != nil || name != "" {
		t.Errorf("waitReadyNode = %q, %v; want none", name, err)
	}
	c = fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	if name, _ := waitReadyNode(ctx, c, 0); name != "n" {
		t.Errorf("waitReadyNode = %q, want n", name)
	}
}

func TestTimeoutIsNotAFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientset() // no agent: pods stay Pending
	tr, err := newTracker(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.stop()
	b := &bench{quiet: true, config: config{single: 2, burst: 3, podTimeout: 50 * time.Millisecond, schedWait: 50 * time.Millisecond}}
	if res := b.singles(ctx, c, tr, mode{}); res.ok || !strings.Contains(res.running, "not scheduled within") {
		t.Errorf("singles, no scheduler = %+v", res)
	}
	bound := mode{nodeName: "n"}
	if res := b.singles(ctx, c, tr, bound); res.ok || !strings.Contains(res.running, "not Ready within 50ms (no phase)") {
		t.Errorf("singles, no agent = %+v", res)
	}
	if res := b.burstStart(ctx, []kubernetes.Interface{c}, tr, bound); res.ok || !strings.Contains(res.running, "0 of 3 Ready") {
		t.Errorf("burst = %+v", res)
	}
}
