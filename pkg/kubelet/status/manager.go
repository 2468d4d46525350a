package status

import (
	"context"
	"fmt"
	"log"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	statusutil "k8s.io/kubernetes/pkg/util/pod"
	"k8s.io/utils/clock"
)

// maxPodTerminationMessageLogLength bounds the termination messages of all
// containers of a pod together (upstream's 12 KiB).
const maxPodTerminationMessageLogLength = 1024 * 12

// maxPending bounds the statuses queued for one pod: beyond it the newest
// replaces the last queued one (a burst collapses, the last state stays).
const maxPending = 16

// statusWorkers write statuses of different pods concurrently (one pod's
// statuses are written in order by one worker at a time).
const statusWorkers = 16

// Manager caches the kubelet's latest status of each pod and writes every
// distinct status to the API server, in order (so a short-lived state such as
// CrashLoopBackOff before a restart is seen by watchers, as on a real node);
// when more pods wait for a writer than there are writers (a burst), only
// each pod's newest status is written.
type Manager struct {
	client kubernetes.Interface
	clock  clock.Clock
	// couldHaveRunningContainers reports whether the pod worker may still
	// have running containers: a terminal phase is held back until not.
	couldHaveRunningContainers func(types.UID) bool
	queue                      workqueue.TypedRateLimitingInterface[types.UID]
	workers                    int

	mu      sync.Mutex
	entries map[types.UID]*entry
}

type entry struct {
	pod     *v1.Pod // latest pod object the kubelet saw
	status  v1.PodStatus
	version uint64
	pending []pendingStatus
	// backlogged: a status was queued while more pods than writers
	// waited; only the newest pending status is written.
	backlogged bool
	finished   bool
	// api is the newest status known to be on the API server, at
	// resourceVersion apiRV (0: unknown, read the pod before patching).
	// Patch responses and the informer's copies update it, newest
	// resourceVersion first, so a patch is computed against what is
	// really there without a GET per write.
	api     *v1.PodStatus
	apiRV   uint64
	deleted bool
}

// resourceVersion parses an object's resourceVersion (etcd's revision);
// 0 when it is not a number (then the pod is read before each write).
func resourceVersion(o metav1.Object) uint64 {
	rv, err := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	if err != nil {
		return 0
	}
	return rv
}

// observeAPI records pod as the API's state if it is newer than what the
// entry knows.
func (e *entry) observeAPI(pod *v1.Pod) {
	rv := resourceVersion(pod)
	if rv == 0 || rv <= e.apiRV {
		return
	}
	e.api, e.apiRV = pod.Status.DeepCopy(), rv
}

// pendingStatus is a status to write; holdTerminal is whether the pod could
// still run containers when it was computed (its terminal phase waits).
type pendingStatus struct {
	status       v1.PodStatus
	holdTerminal bool
}

// NewManager returns a status manager. couldHaveRunningContainers may be nil
// (never hold a terminal phase back).
func NewManager(client kubernetes.Interface, c clock.WithTicker, couldHaveRunningContainers func(types.UID) bool) *Manager {
	if couldHaveRunningContainers == nil {
		couldHaveRunningContainers = func(types.UID) bool { return false }
	}
	return &Manager{
		client:                     client,
		clock:                      c,
		couldHaveRunningContainers: couldHaveRunningContainers,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](50*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Clock: c}),
		workers: statusWorkers,
		entries: map[types.UID]*entry{},
	}
}

// Run writes statuses until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < m.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	m.queue.ShutDown()
	wg.Wait()
}

// GetPodStatus returns the kubelet's latest status of the pod.
func (m *Manager) GetPodStatus(uid types.UID) (v1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[uid]
	if !ok || e.version == 0 {
		return v1.PodStatus{}, false
	}
	return *e.status.DeepCopy(), true
}

// SetPodStatus records a new status of pod and queues its write if it
// differs from the last one (condition transition times are kept while a
// condition's status is unchanged; startTime never changes once set).
func (m *Manager) SetPodStatus(pod *v1.Pod, status v1.PodStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(pod, *status.DeepCopy(), false)
}

// TerminatePod marks the pod's status final: containers not known to be
// terminated are reported so, the phase becomes terminal, and once written a
// pod marked for deletion is deleted for good.
func (m *Manager) TerminatePod(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var status v1.PodStatus
	if e, ok := m.entries[pod.UID]; ok && e.version > 0 {
		status = *e.status.DeepCopy()
	} else {
		status = *pod.Status.DeepCopy()
	}
	initialized := hasPodInitialized(pod)
	for i := range status.ContainerStatuses {
		if initialized && status.ContainerStatuses[i].State.Terminated == nil {
			status.ContainerStatuses[i].State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
				Reason: ContainerStatusUnknown, Message: "The container could not be located when the pod was terminated", ExitCode: 137}}
		}
	}
	if !isTerminal(status.Phase) {
		status.Phase = v1.PodFailed
	}
	m.setLocked(pod, status, true)
}

// RemovePod forgets a pod that is gone from the API server.
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, uid)
}

// UpdatePod tells the manager the latest pod object: its deletion mark (a
// finished pod marked for deletion is deleted for good) and its status on
// the API server.
func (m *Manager) UpdatePod(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[pod.UID]
	if !ok {
		return
	}
	e.pod = pod
	if e.api != nil {
		e.observeAPI(pod)
	}
	if e.finished && pod.DeletionTimestamp != nil && !e.deleted {
		m.queue.Add(pod.UID)
	}
}

func (m *Manager) setLocked(pod *v1.Pod, status v1.PodStatus, finished bool) {
	e, ok := m.entries[pod.UID]
	if !ok {
		e = &entry{}
		m.entries[pod.UID] = e
	}
	old := pod.Status
	if e.version > 0 {
		old = e.status
	}
	e.pod = pod
	if e.api == nil {
		e.api, e.apiRV = pod.Status.DeepCopy(), resourceVersion(pod)
	} else {
		e.observeAPI(pod)
	}
	if err := checkContainerStateTransition(&old, &status, &pod.Spec); err != nil {
		log.Printf("kubelet: status update of pod %s/%s aborted: %v", pod.Namespace, pod.Name, err)
		return
	}
	now := metav1.NewTime(m.clock.Now())
	for _, t := range []v1.PodConditionType{v1.ContainersReady, v1.PodReady, v1.PodInitialized,
		v1.PodReadyToStartContainers, v1.PodScheduled, v1.DisruptionTarget} {
		updateLastTransitionTime(&status, &old, t, now)
	}
	if old.StartTime != nil && !old.StartTime.IsZero() {
		status.StartTime = old.StartTime.DeepCopy()
	} else if status.StartTime.IsZero() {
		status.StartTime = &now
	}
	if old.ObservedGeneration > status.ObservedGeneration {
		status.ObservedGeneration = old.ObservedGeneration
	}
	Normalize(pod, &status)

	changed := e.version == 0 || !EqualByKubelet(&e.status, &status)
	if !changed && !finished && !apiBehind(e) {
		return
	}
	e.status = status
	e.version++
	if finished {
		e.finished = true
	}
	p := pendingStatus{status: status, holdTerminal: m.couldHaveRunningContainers(pod.UID)}
	if m.queue.Len() > m.workers {
		e.backlogged = true
	}
	if len(e.pending) >= maxPending {
		e.pending[len(e.pending)-1] = p
	} else {
		e.pending = append(e.pending, p)
	}
	m.queue.Add(pod.UID)
}

// apiBehind: the API has another phase than the kubelet (a terminal phase
// held back earlier can now be written).
func apiBehind(e *entry) bool {
	return e.api != nil && len(e.pending) == 0 && e.api.Phase != e.status.Phase
}

func (m *Manager) processNext(ctx context.Context) bool {
	uid, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(uid)
	if err := m.sync(ctx, uid); err != nil {
		log.Printf("kubelet: pod status update failed (will retry): %v", err)
		m.queue.AddRateLimited(uid)
		return true
	}
	m.queue.Forget(uid)
	return true
}

// sync writes the pending statuses of one pod, oldest first, then deletes
// the pod if it is finished and marked for deletion. Patches are computed
// against the newest version of the pod known (by resourceVersion: our own
// patch responses and the informer's copies), so a stale copy can never
// make one incomplete; when that version is unknown (or the last write
// failed) the pod is read from the API server first, as upstream does.
func (m *Manager) sync(ctx context.Context, uid types.UID) error {
	m.mu.Lock()
	e, ok := m.entries[uid]
	if !ok || e.deleted {
		m.mu.Unlock()
		return nil
	}
	ns, name := e.pod.Namespace, e.pod.Name
	known := e.apiRV != 0
	m.mu.Unlock()
	if !known {
		if done, err := m.fetch(ctx, uid, ns, name); done || err != nil {
			return err
		}
	}
	return m.writePending(ctx, uid)
}

// fetch reads the pod from the API server as the base of the next patch;
// done: the pod is gone, nothing to write.
func (m *Manager) fetch(ctx context.Context, uid types.UID, ns, name string) (done bool, err error) {
	fresh, err := m.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && fresh.UID != uid) {
		m.mu.Lock()
		if e, ok := m.entries[uid]; ok {
			e.pending = nil
		}
		m.mu.Unlock()
		return true, nil
	}
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	if e, ok := m.entries[uid]; ok {
		st := fresh.Status
		e.api, e.apiRV = &st, resourceVersion(fresh)
		e.pod = withDeletion(e.pod, fresh)
	}
	m.mu.Unlock()
	return false, nil
}

// writePending patches the pod's pending statuses in order.
func (m *Manager) writePending(ctx context.Context, uid types.UID) error {
	for {
		m.mu.Lock()
		e, ok := m.entries[uid]
		if !ok || e.deleted {
			m.mu.Unlock()
			return nil
		}
		if len(e.pending) == 0 {
			pod, api, finished := e.pod, e.api, e.finished
			m.mu.Unlock()
			return m.maybeDelete(ctx, uid, pod, api, finished)
		}
		if len(e.pending) > 1 && (e.backlogged || m.queue.Len() >= m.workers) {
			// More pods wait for a writer than there are writers: write
			// only the newest status, as upstream always does, rather
			// than make every pod wait for the others' intermediate ones.
			e.pending = e.pending[len(e.pending)-1:]
		}
		next := e.pending[0]
		pod := e.pod
		base := *e.api.DeepCopy()
		m.mu.Unlock()

		merged := mergePodStatus(pod, base, next.status, next.holdTerminal)
		newPod, _, unchanged, err := statusutil.PatchPodStatus(ctx, m.client, pod.Namespace, pod.Name, pod.UID, base, merged)
		if err != nil && apierrors.IsNotFound(err) {
			m.mu.Lock()
			if e, ok := m.entries[uid]; ok {
				e.pending = nil
			}
			m.mu.Unlock()
			return nil
		}
		if err != nil {
			// the retry reads the pod first
			m.mu.Lock()
			if e, ok := m.entries[uid]; ok {
				e.apiRV = 0
			}
			m.mu.Unlock()
			return err
		}
		m.mu.Lock()
		if e, ok := m.entries[uid]; ok {
			if len(e.pending) > 0 {
				e.pending = e.pending[1:]
			}
			if len(e.pending) == 0 {
				e.backlogged = false
			}
			if !unchanged && newPod != nil {
				if rv := resourceVersion(newPod); rv == 0 || rv > e.apiRV {
					st := newPod.Status
					e.api, e.apiRV = &st, rv
				}
				e.pod = withDeletion(e.pod, newPod)
			} else if unchanged {
				e.api = &merged
			}
		}
		m.mu.Unlock()
	}
}

// withDeletion carries the API's deletion mark over to the cached pod.
func withDeletion(pod, api *v1.Pod) *v1.Pod {
	if api.DeletionTimestamp == nil || pod.DeletionTimestamp != nil {
		return pod
	}
	p := pod.DeepCopy()
	p.DeletionTimestamp = api.DeletionTimestamp
	p.DeletionGracePeriodSeconds = api.DeletionGracePeriodSeconds
	return p
}

func (m *Manager) maybeDelete(ctx context.Context, uid types.UID, pod *v1.Pod, api *v1.PodStatus, finished bool) error {
	if !finished || pod == nil || pod.DeletionTimestamp == nil || api == nil || !isTerminal(api.Phase) {
		return nil
	}
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      metav1.NewUIDPreconditions(string(uid)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	m.mu.Lock()
	if e, ok := m.entries[uid]; ok {
		e.deleted = true
	}
	m.mu.Unlock()
	return nil
}

// Flush waits until every queued status is written (tests).
func (m *Manager) Flush(ctx context.Context) error {
	for {
		m.mu.Lock()
		busy := m.queue.Len() > 0
		for _, e := range m.entries {
			if len(e.pending) > 0 {
				busy = true
			}
		}
		m.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func updateLastTransitionTime(status, old *v1.PodStatus, t v1.PodConditionType, now metav1.Time) {
	_, c := podutil.GetPodCondition(status, t)
	if c == nil {
		return
	}
	ltt := now
	if _, oc := podutil.GetPodCondition(old, t); oc != nil && oc.Status == c.Status {
		ltt = oc.LastTransitionTime
	}
	c.LastTransitionTime = ltt
}

// Normalize truncates timestamps to seconds (what the API keeps), bounds
// termination messages and sorts container statuses, so equal statuses
// compare equal.
func Normalize(pod *v1.Pod, status *v1.PodStatus) {
	per := maxPodTerminationMessageLogLength
	if n := len(pod.Spec.Containers) + len(pod.Spec.InitContainers) + len(pod.Spec.EphemeralContainers); n > 0 {
		per /= n
	}
	ts := func(t *metav1.Time) { *t = t.Rfc3339Copy() }
	state := func(s *v1.ContainerState) {
		if s.Running != nil {
			ts(&s.Running.StartedAt)
		}
		if s.Terminated != nil {
			ts(&s.Terminated.StartedAt)
			ts(&s.Terminated.FinishedAt)
			if len(s.Terminated.Message) > per {
				s.Terminated.Message = s.Terminated.Message[:per]
			}
		}
	}
	if status.StartTime != nil {
		ts(status.StartTime)
	}
	for i := range status.Conditions {
		ts(&status.Conditions[i].LastProbeTime)
		ts(&status.Conditions[i].LastTransitionTime)
	}
	for _, list := range [][]v1.ContainerStatus{status.ContainerStatuses, status.InitContainerStatuses, status.EphemeralContainerStatuses} {
		for i := range list {
			state(&list[i].State)
			state(&list[i].LastTerminationState)
		}
	}
	sort.SliceStable(status.ContainerStatuses, func(i, j int) bool { return status.ContainerStatuses[i].Name < status.ContainerStatuses[j].Name })
	order := map[string]int{}
	for i, c := range pod.Spec.InitContainers {
		order[c.Name] = i
	}
	sort.SliceStable(status.InitContainerStatuses, func(i, j int) bool {
		return order[status.InitContainerStatuses[i].Name] < order[status.InitContainerStatuses[j].Name]
	})
}

// EqualByKubelet compares two statuses as the kubelet does: conditions by
// type, status, reason and message; everything else exactly.
func EqualByKubelet(a, b *v1.PodStatus) bool {
	ca, cb := map[v1.PodConditionType]v1.PodCondition{}, map[v1.PodConditionType]v1.PodCondition{}
	for _, c := range a.Conditions {
		if ownedByKubelet(c.Type) || c.Type == v1.DisruptionTarget {
			ca[c.Type] = c
		}
	}
	for _, c := range b.Conditions {
		if ownedByKubelet(c.Type) || c.Type == v1.DisruptionTarget {
			cb[c.Type] = c
		}
	}
	if len(ca) != len(cb) {
		return false
	}
	for t, x := range cb {
		y, ok := ca[t]
		if !ok || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	ac := a.DeepCopy()
	ac.Conditions = b.Conditions
	return apiequality.Semantic.DeepEqual(ac, b)
}

// mergePodStatus keeps the conditions others own and holds a terminal phase
// back while containers may still run (upstream's mergePodStatus).
func mergePodStatus(pod *v1.Pod, old, new v1.PodStatus, couldHaveRunningContainers bool) v1.PodStatus {
	conds := make([]v1.PodCondition, 0, len(old.Conditions)+len(new.Conditions))
	for _, c := range old.Conditions {
		if !ownedByKubelet(c.Type) {
			conds = append(conds, c)
		}
	}
	toTerminal := !isTerminal(old.Phase) && isTerminal(new.Phase)
	for _, c := range new.Conditions {
		if ownedByKubelet(c.Type) {
			conds = append(conds, c)
		} else if c.Type == v1.DisruptionTarget && toTerminal && !couldHaveRunningContainers {
			conds = replaceOrAppend(conds, c)
		}
	}
	new.Conditions = conds
	new.ResourceClaimStatuses = old.ResourceClaimStatuses
	new.ExtendedResourceClaimStatus = old.ExtendedResourceClaimStatus
	if toTerminal && couldHaveRunningContainers {
		new.Phase, new.Reason, new.Message = old.Phase, old.Reason, old.Message
	}
	if isTerminal(new.Phase) {
		if podutil.IsPodReadyConditionTrue(new) || podutil.IsContainersReadyConditionTrue(new) {
			reason := terminalReason(new.Phase)
			for i := range new.Conditions {
				if t := new.Conditions[i].Type; t == v1.PodReady || t == v1.ContainersReady {
					new.Conditions[i].Status, new.Conditions[i].Reason, new.Conditions[i].Message = v1.ConditionFalse, reason, ""
				}
			}
		}
	}
	return new
}

// checkContainerStateTransition refuses to report a terminated container
// that will not restart as running again.
func checkContainerStateTransition(old, new *v1.PodStatus, spec *v1.PodSpec) error {
	if spec.RestartPolicy == v1.RestartPolicyAlways {
		return nil
	}
	check := func(olds, news []v1.ContainerStatus, containers []v1.Container, init bool) error {
		for _, o := range olds {
			if o.State.Terminated == nil {
				continue
			}
			var c *v1.Container
			for i := range containers {
				if containers[i].Name == o.Name {
					c = &containers[i]
				}
			}
			if c == nil {
				continue
			}
			if init && podutil.IsRestartableInitContainer(c) {
				continue
			}
			if podutil.ContainerShouldRestart(*c, *spec, o.State.Terminated.ExitCode) {
				continue
			}
			for _, n := range news {
				if n.Name == o.Name && n.State.Terminated == nil {
					return fmt.Errorf("terminated container %v attempted illegal transition to non-terminated state", n.Name)
				}
			}
		}
		return nil
	}
	if err := check(old.ContainerStatuses, new.ContainerStatuses, spec.Containers, false); err != nil {
		return err
	}
	return check(old.InitContainerStatuses, new.InitContainerStatuses, spec.InitContainers, true)
}

// hasPodInitialized: some regular container left the waiting state, or the
// last init container completed.
func hasPodInitialized(pod *v1.Pod) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	for _, s := range pod.Status.ContainerStatuses {
		if s.LastTerminationState.Terminated != nil || s.State.Waiting == nil {
			return true
		}
	}
	if l := len(pod.Status.InitContainerStatuses); l > 0 && l == len(pod.Spec.InitContainers) {
		c := pod.Spec.InitContainers[l-1]
		s := pod.Status.InitContainerStatuses[l-1]
		if podutil.IsRestartableInitContainer(&c) {
			return s.State.Running != nil && s.Started != nil && *s.Started
		}
		if t := s.LastTerminationState.Terminated; t != nil && t.ExitCode == 0 {
			return true
		}
		if t := s.State.Terminated; t != nil && t.ExitCode == 0 {
			return true
		}
	}
	return false
}
