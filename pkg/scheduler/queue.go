package scheduler

import (
	"container/heap"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/utils/clock"
)

// Queue timings of upstream's PriorityQueue defaults.
const (
	DefaultInitialBackoff           = 1 * time.Second
	DefaultMaxBackoff               = 10 * time.Second
	DefaultMaxUnschedulableDuration = 5 * time.Minute
	backoffFlushPeriod              = 1 * time.Second
	unschedulableFlushPeriod        = 30 * time.Second
)

// where a queued pod currently is.
type where int

const (
	inActive where = iota + 1
	inBackoff
	inErrorBackoff
	inUnschedulable
	inFlight
)

// queuedPod is a pending pod and its scheduling history.
type queuedPod struct {
	pod   *v1.Pod
	where where
	index int // heap position
	// timestamp: when the pod entered the queue, or its last failed attempt.
	timestamp time.Time
	// unschedulableCount / errorCount set the back-off: 1s << (count-1), max 10s.
	unschedulableCount int
	errorCount         int
	// rejectors are the plugins that rejected the pod in its last attempt;
	// only events that concern them bring it back from the pool.
	rejectors sets.Set[string]
	// cycle is the scheduling cycle in which the pod was popped.
	cycle int64
	// deleted while in flight: drop instead of requeueing.
	deleted bool
}

// queue is the scheduling queue (upstream's PriorityQueue, small): an
// active heap by priority then age, a back-off heap by expiry (one for
// rejections, one for errors), and a pool of unschedulable pods that cluster
// events move back when hint says the event concerns them. Events that
// arrive while a pod is being decided are kept and checked when it fails,
// so none is lost.
type queue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	clock clock.Clock
	hint  func(pod *v1.Pod, rejectors sets.Set[string], ev clusterEvent) bool

	initialBackoff, maxBackoff, maxUnschedulable time.Duration

	pods          map[types.UID]*queuedPod
	active        podHeap
	backoff       podHeap
	errorBackoff  podHeap
	unschedulable map[types.UID]*queuedPod

	schedulingCycle int64
	// deciding is true between Pop and Decided; eventsSincePop are the
	// events that arrived meanwhile.
	deciding       bool
	eventsSincePop []clusterEvent
	closed         bool
}

func newQueue(clk clock.Clock, initialBackoff, maxBackoff, maxUnschedulable time.Duration) *queue {
	q := &queue{
		clock: clk, hint: schedulableAfter,
		initialBackoff: initialBackoff, maxBackoff: maxBackoff, maxUnschedulable: maxUnschedulable,
		pods: map[types.UID]*queuedPod{}, unschedulable: map[types.UID]*queuedPod{},
	}
	q.active.less = func(a, b *queuedPod) bool {
		pa, pb := v1helper.PodPriority(a.pod), v1helper.PodPriority(b.pod)
		if pa != pb {
			return pa > pb
		}
		return a.timestamp.Before(b.timestamp)
	}
	q.backoff.less = func(a, b *queuedPod) bool { return q.backoffExpiry(a).Before(q.backoffExpiry(b)) }
	q.errorBackoff.less = q.backoff.less
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) backoffDuration(qp *queuedPod) time.Duration {
	count := qp.unschedulableCount
	if qp.errorCount > 0 {
		count = qp.errorCount
	}
	if count == 0 {
		return 0
	}
	d := q.initialBackoff
	for i := 1; i < count; i++ {
		d *= 2
		if d >= q.maxBackoff {
			return q.maxBackoff
		}
	}
	return min(d, q.maxBackoff)
}

func (q *queue) backoffExpiry(qp *queuedPod) time.Time {
	return qp.timestamp.Add(q.backoffDuration(qp))
}

func (q *queue) backingOff(qp *queuedPod) bool {
	return q.backoffExpiry(qp).After(q.clock.Now())
}

// push puts qp into the structure for w; caller holds mu.
func (q *queue) push(qp *queuedPod, w where) {
	qp.where = w
	switch w {
	case inActive:
		heap.Push(&q.active, qp)
		q.cond.Broadcast()
	case inBackoff:
		heap.Push(&q.backoff, qp)
		q.cond.Broadcast() // Pop takes from back-off when nothing is active
	case inErrorBackoff:
		heap.Push(&q.errorBackoff, qp)
	case inUnschedulable:
		q.unschedulable[qp.pod.UID] = qp
	}
}

// take removes qp from wherever it is queued; caller holds mu.
func (q *queue) take(qp *queuedPod) {
	switch qp.where {
	case inActive:
		heap.Remove(&q.active, qp.index)
	case inBackoff:
		heap.Remove(&q.backoff, qp.index)
	case inErrorBackoff:
		heap.Remove(&q.errorBackoff, qp.index)
	case inUnschedulable:
		delete(q.unschedulable, qp.pod.UID)
	}
	qp.where = 0
}

// Add queues a new pending pod, or updates it if known.
func (q *queue) Add(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp, ok := q.pods[pod.UID]; ok {
		q.updateLocked(qp, pod)
		return
	}
	qp := &queuedPod{pod: pod, timestamp: q.clock.Now()}
	q.pods[pod.UID] = qp
	q.push(qp, inActive)
}

// Update replaces a pending pod's object. A pod waiting in the
// unschedulable pool is retried when its spec or labels changed.
func (q *queue) Update(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.pods[pod.UID]
	if !ok {
		qp = &queuedPod{pod: pod, timestamp: q.clock.Now()}
		q.pods[pod.UID] = qp
		q.push(qp, inActive)
		return
	}
	q.updateLocked(qp, pod)
}

func (q *queue) updateLocked(qp *queuedPod, pod *v1.Pod) {
	old := qp.pod
	qp.pod = pod
	switch qp.where {
	case inActive:
		heap.Fix(&q.active, qp.index)
	case inBackoff:
		heap.Fix(&q.backoff, qp.index)
	case inErrorBackoff:
		heap.Fix(&q.errorBackoff, qp.index)
	case inUnschedulable:
		if schedulingInputsChanged(old, pod) {
			q.take(qp)
			q.requeue(qp)
		}
	}
}

// schedulingInputsChanged: a new generation (spec change) or new labels /
// annotations may change the result; status-only updates do not.
func schedulingInputsChanged(old, cur *v1.Pod) bool {
	return old.Generation != cur.Generation ||
		!mapsEqual(old.Labels, cur.Labels) || !mapsEqual(old.Annotations, cur.Annotations)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Delete forgets a pod (deleted, bound elsewhere, or no longer ours).
func (q *queue) Delete(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.pods[uid]
	if !ok {
		return
	}
	if qp.where == inFlight {
		qp.deleted = true
		return
	}
	q.take(qp)
	delete(q.pods, uid)
}

// requeue sends a pod leaving the pool (or a failed attempt that may have
// missed an event) to back-off or straight to active.
func (q *queue) requeue(qp *queuedPod) {
	if q.backingOff(qp) {
		q.push(qp, inBackoff)
	} else {
		q.push(qp, inActive)
	}
}

// Pop blocks until a pod is ready and returns it in flight, with its pod
// object as of now (Update may replace qp.pod meanwhile); ok is false once
// the queue is closed. When nothing is active the head of the rejection
// back-off is taken early (upstream's SchedulerPopFromBackoffQ).
func (q *queue) Pop() (qp *queuedPod, pod *v1.Pod, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && q.backoff.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, nil, false
	}
	if q.active.Len() > 0 {
		qp = heap.Pop(&q.active).(*queuedPod)
	} else {
		qp = heap.Pop(&q.backoff).(*queuedPod)
	}
	q.schedulingCycle++
	qp.cycle = q.schedulingCycle
	q.deciding = true
	q.eventsSincePop = q.eventsSincePop[:0]
	qp.where = inFlight
	return qp, qp.pod, true
}

// Done ends a successful attempt: the pod leaves the queue.
func (q *queue) Done(qp *queuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur, ok := q.pods[qp.pod.UID]; ok && cur == qp {
		delete(q.pods, qp.pod.UID)
	}
}

// Failed ends an attempt: rejected by the plugins in rejectors, or, when
// rejectors is empty, failed with an error (API error, no nodes).
func (q *queue) Failed(qp *queuedPod, rejectors sets.Set[string]) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp.deleted || q.pods[qp.pod.UID] != qp {
		delete(q.pods, qp.pod.UID)
		return
	}
	qp.timestamp = q.clock.Now()
	qp.rejectors = rejectors
	if len(rejectors) == 0 {
		qp.errorCount++
		q.push(qp, inErrorBackoff)
		return
	}
	qp.unschedulableCount++
	qp.errorCount = 0
	if qp.cycle == q.schedulingCycle {
		for _, ev := range q.eventsSincePop {
			if q.hint(qp.pod, rejectors, ev) {
				// An event during the attempt may have helped.
				q.requeue(qp)
				return
			}
		}
	}
	q.push(qp, inUnschedulable)
}

// MoveOnEvent brings back the unschedulable pods that ev may help (node
// added or changed, a bound pod gone).
func (q *queue) MoveOnEvent(ev clusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, qp := range q.unschedulable {
		if q.hint(qp.pod, qp.rejectors, ev) {
			q.take(qp)
			q.requeue(qp)
		}
	}
	if q.deciding {
		q.eventsSincePop = append(q.eventsSincePop, ev)
	}
}

// Decided ends the decision on the last popped pod (its failure, if any,
// has been recorded with Failed).
func (q *queue) Decided() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deciding = false
	q.eventsSincePop = q.eventsSincePop[:0]
}

// flushBackoff moves pods whose back-off has expired to active.
func (q *queue) flushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for _, h := range []*podHeap{&q.backoff, &q.errorBackoff} {
		for h.Len() > 0 && !q.backoffExpiry(h.items[0]).After(now) {
			qp := heap.Pop(h).(*queuedPod)
			q.push(qp, inActive)
		}
	}
}

// flushUnschedulable retries pods that waited in the pool for too long.
func (q *queue) flushUnschedulable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for _, qp := range q.unschedulable {
		if now.Sub(qp.timestamp) > q.maxUnschedulable {
			q.take(qp)
			q.requeue(qp)
		}
	}
}

// Close wakes Pop for shutdown.
func (q *queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Pending counts queued pods by state (tests, debugging).
func (q *queue) Pending() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len() + q.errorBackoff.Len(), len(q.unschedulable)
}

// podHeap is a container/heap of queued pods.
type podHeap struct {
	items []*queuedPod
	less  func(a, b *queuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*queuedPod)
	qp.index = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	n := len(h.items)
	qp := h.items[n-1]
	h.items[n-1] = nil
	h.items = h.items[:n-1]
	qp.index = -1
	return qp
}
