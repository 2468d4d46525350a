package scheduler

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// A pod rejected by a cordoned node, and the uncordon that helps it.
var (
	cordonRejected = sets.New(NodeUnschedulable)
	uncordon       = clusterEvent{oldNode: makeNode("vm", cordoned), newNode: makeNode("vm")}
)

func newTestQueue() (*queue, *testingclock.FakeClock) {
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	return newQueue(clk, DefaultInitialBackoff, DefaultMaxBackoff, DefaultMaxUnschedulableDuration), clk
}

func TestBackoffDuration(t *testing.T) {
	q, _ := newTestQueue()
	tests := []struct {
		unschedulable, errors int
		want                  time.Duration
	}{
		{0, 0, 0},
		{1, 0, 1 * time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{4, 0, 8 * time.Second},
		{5, 0, 10 * time.Second},
		{50, 0, 10 * time.Second},
		{5, 1, 1 * time.Second}, // errors, when present, count instead
	}
	for _, tt := range tests {
		qp := &queuedPod{unschedulableCount: tt.unschedulable, errorCount: tt.errors}
		if got := q.backoffDuration(qp); got != tt.want {
			t.Errorf("unschedulable=%d errors=%d: backoff %v, want %v", tt.unschedulable, tt.errors, got, tt.want)
		}
	}
}

func pop(t *testing.T, q *queue) *queuedPod {
	t.Helper()
	a, b, _ := q.Pending()
	if a+b == 0 {
		t.Fatal("nothing to pop")
	}
	qp, _, ok := q.Pop()
	if !ok {
		t.Fatal("queue closed")
	}
	return qp
}

func TestQueueOrder(t *testing.T) {
	q, clk := newTestQueue()
	low := makePod("low")
	q.Add(low)
	clk.Step(time.Millisecond)
	high := makePod("high", func(p *v1.Pod) { p.Spec.Priority = ptr.To[int32](1000) })
	q.Add(high)
	clk.Step(time.Millisecond)
	low2 := makePod("low2")
	q.Add(low2)
	for _, want := range []string{"high", "low", "low2"} {
		if got := pop(t, q).pod.Name; got != want {
			t.Errorf("popped %s, want %s", got, want)
		}
	}
}

// The life of a pod that does not fit: the pool, a cluster event, back-off,
// and the early pop when nothing else is waiting.
func TestQueueUnschedulableLifecycle(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(makePod("p"))
	qp := pop(t, q)
	q.Failed(qp, cordonRejected)
	if a, b, u := q.Pending(); a != 0 || b != 0 || u != 1 {
		t.Fatalf("after rejection: active=%d backoff=%d unschedulable=%d, want 0/0/1", a, b, u)
	}

	// Time alone does not retry it (until the 5 minute flush).
	clk.Step(2 * time.Minute)
	q.flushBackoff()
	q.flushUnschedulable()
	if _, _, u := q.Pending(); u != 1 {
		t.Fatal("pod left the pool without an event")
	}

	// An event that does not concern it leaves it there.
	q.MoveOnEvent(clusterEvent{oldNode: makeNode("vm", cordoned), newNode: makeNode("vm", cordoned, labeled("x", "y"))})
	if _, _, u := q.Pending(); u != 1 {
		t.Fatal("an unrelated node change moved the pod")
	}

	// A node event moves it; its 1s back-off has expired, so it is active.
	q.MoveOnEvent(uncordon)
	if a, _, _ := q.Pending(); a != 1 {
		t.Fatal("pod not active after the event")
	}
	qp = pop(t, q)
	q.Failed(qp, cordonRejected) // second rejection: back-off 2s

	// An event right away finds it backing off.
	q.MoveOnEvent(uncordon)
	if a, b, _ := q.Pending(); a != 0 || b != 1 {
		t.Fatalf("active=%d backoff=%d, want 0/1", a, b)
	}
	// With nothing active, Pop takes it from back-off early.
	if got := pop(t, q); got != qp {
		t.Fatal("did not pop the backing-off pod")
	}
	q.Failed(qp, cordonRejected)

	// Left alone in the pool for 5 minutes, it is retried.
	clk.Step(DefaultMaxUnschedulableDuration + time.Second)
	q.flushUnschedulable()
	if a, _, u := q.Pending(); a != 1 || u != 0 {
		t.Fatal("pod not retried after 5 minutes in the pool")
	}
}

// An event that arrives while the pod is being scheduled is not lost.
func TestQueueEventDuringAttempt(t *testing.T) {
	q, _ := newTestQueue()
	q.Add(makePod("p"))
	qp := pop(t, q)
	q.MoveOnEvent(uncordon) // the node became schedulable meanwhile
	q.Failed(qp, cordonRejected)
	if _, b, u := q.Pending(); b != 1 || u != 0 {
		t.Fatalf("backoff=%d unschedulable=%d, want 1/0", b, u)
	}
}

func TestQueueErrorBackoff(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(makePod("p"))
	qp := pop(t, q)
	q.Failed(qp, nil)
	q.MoveOnEvent(uncordon)
	q.flushBackoff()
	if a, b, _ := q.Pending(); a != 0 || b != 1 {
		t.Fatalf("active=%d backoff=%d, want 0/1 (errors wait their back-off)", a, b)
	}
	clk.Step(time.Second)
	q.flushBackoff()
	if a, _, _ := q.Pending(); a != 1 {
		t.Fatal("pod not active after its back-off")
	}
}

func TestQueueDeleteInFlight(t *testing.T) {
	q, _ := newTestQueue()
	p := makePod("p")
	q.Add(p)
	qp := pop(t, q)
	q.Delete(p.UID)
	q.Failed(qp, cordonRejected)
	if a, b, u := q.Pending(); a+b+u != 0 || len(q.pods) != 0 {
		t.Fatalf("deleted pod still queued: %d/%d/%d, %d known", a, b, u, len(q.pods))
	}
}

func TestQueueUpdateRetriesOnSpecChange(t *testing.T) {
	q, _ := newTestQueue()
	p := makePod("p")
	q.Add(p)
	q.Failed(pop(t, q), cordonRejected)

	status := p.DeepCopy()
	status.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse}}
	q.Update(status)
	if _, _, u := q.Pending(); u != 1 {
		t.Fatal("a status update moved the pod")
	}
	relabeled := status.DeepCopy()
	relabeled.Labels = map[string]string{"x": "y"}
	q.Update(relabeled)
	if _, _, u := q.Pending(); u != 0 {
		t.Fatal("a label change did not move the pod")
	}
}
