package status

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

func statusWith(phase v1.PodPhase, ready v1.ConditionStatus, reason string) v1.PodStatus {
	return v1.PodStatus{
		Phase: phase,
		Conditions: []v1.PodCondition{
			{Type: v1.PodReady, Status: ready, Reason: reason},
			{Type: v1.ContainersReady, Status: ready, Reason: reason},
			{Type: v1.PodScheduled, Status: v1.ConditionTrue},
		},
	}
}

func newManager(t *testing.T, p *v1.Pod, running *atomic.Bool) (*Manager, *fake.Clientset, *testingclock.FakeClock, func()) {
	client := fake.NewSimpleClientset(p)
	clk := testingclock.NewFakeClock(t0)
	m := NewManager(client, clk, func(types.UID) bool { return running.Load() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	return m, client, clk, func() { cancel(); <-done }
}

func flush(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func apiPod(t *testing.T, c *fake.Clientset, p *v1.Pod) *v1.Pod {
	t.Helper()
	got, err := c.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestManagerWritesEveryTransitionInOrder(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "main")
	var running atomic.Bool
	m, client, clk, stop := newManager(t, p, &running)
	defer stop()

	var mu sync.Mutex
	var phases []string
	client.PrependReactor("patch", "pods", func(a core.Action) (bool, kruntime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		phases = append(phases, string(a.(core.PatchAction).GetPatch()))
		return false, nil, nil
	})

	m.SetPodStatus(p, statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady))
	clk.Step(2 * time.Second)
	m.SetPodStatus(p, statusWith(v1.PodRunning, v1.ConditionTrue, ""))
	clk.Step(2 * time.Second)
	m.SetPodStatus(p, statusWith(v1.PodRunning, v1.ConditionTrue, "")) // unchanged: no write
	m.SetPodStatus(p, statusWith(v1.PodRunning, v1.ConditionFalse, ContainersNotReady))
	flush(t, m)
	mu.Lock()
	defer mu.Unlock()
	if len(phases) != 3 {
		t.Fatalf("%d patches, want 3: %q", len(phases), phases)
	}
	got := apiPod(t, client, p)
	_, ready := getCond(got.Status, v1.PodReady)
	if ready.Status != v1.ConditionFalse || !ready.LastTransitionTime.Time.Equal(t0.Add(4*time.Second)) {
		t.Errorf("ready %+v", ready)
	}
	_, sched := getCond(got.Status, v1.PodScheduled)
	if !sched.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("PodScheduled transition time moved: %v", sched.LastTransitionTime)
	}
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(t0) {
		t.Errorf("startTime %v", got.Status.StartTime)
	}
}

func TestManagerHoldsTerminalPhaseWhileContainersMayRun(t *testing.T) {
	p := pod(v1.RestartPolicyNever, nil, "main")
	var running atomic.Bool
	running.Store(true)
	m, client, _, stop := newManager(t, p, &running)
	defer stop()

	m.SetPodStatus(p, statusWith(v1.PodFailed, v1.ConditionFalse, PodFailed))
	flush(t, m)
	got := apiPod(t, client, p)
	if got.Status.Phase != v1.PodPending {
		t.Fatalf("phase %s written while containers may run", got.Status.Phase)
	}
	if _, c := getCond(got.Status, v1.PodReady); c.Reason != PodFailed {
		t.Fatalf("conditions not written: %+v", got.Status.Conditions)
	}

	running.Store(false)
	m.SetPodStatus(p, statusWith(v1.PodFailed, v1.ConditionFalse, PodFailed)) // same status, API behind
	flush(t, m)
	if got := apiPod(t, client, p); got.Status.Phase != v1.PodFailed {
		t.Fatalf("phase %s after containers stopped", got.Status.Phase)
	}
}

func TestManagerDeletesFinishedPod(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "main")
	now := metav1.NewTime(t0)
	p.DeletionTimestamp = &now
	grace := int64(30)
	p.DeletionGracePeriodSeconds = &grace
	var running atomic.Bool
	m, client, _, stop := newManager(t, p, &running)
	defer stop()

	var mu sync.Mutex
	var deletes []core.DeleteAction
	client.PrependReactor("delete", "pods", func(a core.Action) (bool, kruntime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		deletes = append(deletes, a.(core.DeleteAction))
		return false, nil, nil
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(deletes) }
	m.SetPodStatus(p, statusWith(v1.PodFailed, v1.ConditionFalse, PodFailed))
	flush(t, m)
	if count() != 0 {
		t.Fatal("deleted before TerminatePod")
	}
	m.TerminatePod(p)
	deadline := time.Now().Add(5 * time.Second)
	for count() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if count() != 1 {
		t.Fatalf("%d deletes", count())
	}
	mu.Lock()
	defer mu.Unlock()
	opts := deletes[0].GetDeleteOptions()
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 || opts.Preconditions == nil || *opts.Preconditions.UID != p.UID {
		t.Fatalf("delete options %+v", opts)
	}
}

func TestEqualByKubeletIgnoresTransitionTimes(t *testing.T) {
	a := statusWith(v1.PodRunning, v1.ConditionTrue, "")
	b := statusWith(v1.PodRunning, v1.ConditionTrue, "")
	b.Conditions[0].LastTransitionTime = metav1.NewTime(t0)
	if !EqualByKubelet(&a, &b) {
		t.Fatal("differ by transition time only")
	}
	b.Conditions[0].Reason = "x"
	if EqualByKubelet(&a, &b) {
		t.Fatal("reason change not seen")
	}
}
