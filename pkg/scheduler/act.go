package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

// Event texts (upstream's schedule_one.go).
const (
	reasonScheduled        = "Scheduled"
	reasonFailedScheduling = "FailedScheduling"
	actionBinding          = "Binding"
	actionScheduling       = "Scheduling"
	// noteLengthLimit is the events API's note limit; longer messages are cut.
	noteLengthLimit = 1024
)

// scheduleOne takes one pod from the queue, decides its node and starts
// acting on the decision. It returns false once the queue is closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	qp, pod, ok := s.queue.Pop()
	if !ok {
		return false
	}
	if pod.DeletionTimestamp != nil {
		s.queue.Decided()
		s.queue.Done(qp)
		return true
	}
	pi := newPodInfo(pod)
	s.cache.mu.RLock()
	host, err := schedulePod(pi, s.cache.list, s.rnd)
	s.cache.mu.RUnlock()
	if err != nil {
		s.failed(ctx, qp, pod, err)
		s.queue.Decided()
		return true
	}
	s.queue.Decided()
	// Assume the pod on host so the next decisions count it, then bind
	// asynchronously as upstream's binding cycle does.
	s.cache.assume(pi, host)
	s.acts.Add(1)
	go func() {
		defer s.acts.Done()
		s.bind(ctx, qp, pod, host)
	}()
	return true
}

func (s *Scheduler) bind(ctx context.Context, qp *queuedPod, pod *v1.Pod, host string) {
	logger := klog.FromContext(ctx)
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: host},
	}
	s.bindSlots <- struct{}{}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	<-s.bindSlots
	if err != nil {
		logger.V(1).Info("Failed to bind pod", "pod", klog.KObj(pod), "node", host, "err", err)
		s.cache.forget(pod.UID)
		// The resources it held are free again (upstream: AssignedPodDelete).
		s.queue.MoveOnEvent(clusterEvent{assignedPodGone: pod})
		s.failed(ctx, qp, pod, err)
		return
	}
	s.queue.Done(qp)
	logger.V(2).Info("Successfully bound pod to node", "pod", klog.KObj(pod), "node", host)
	s.recorder.Eventf(pod, nil, v1.EventTypeNormal, reasonScheduled, actionBinding, "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, host)
}

// failed records why pod was not scheduled (event + PodScheduled=False)
// and sends it back to the queue, as upstream's handleSchedulingFailure.
func (s *Scheduler) failed(ctx context.Context, qp *queuedPod, pod *v1.Pod, err error) {
	logger := klog.FromContext(ctx)
	var fitErr *FitError
	var rejectors sets.Set[string]
	if errors.As(err, &fitErr) {
		rejectors = fitErr.rejectors()
	}
	reason := v1.PodReasonSchedulerError
	if rejectors.Len() > 0 || errors.Is(err, ErrNoNodesAvailable) {
		reason = v1.PodReasonUnschedulable
	}
	msg := err.Error()
	logger.V(2).Info("Unable to schedule pod; waiting", "pod", klog.KObj(pod), "err", msg)

	cur, getErr := s.podLister.Pods(pod.Namespace).Get(pod.Name)
	switch {
	case getErr != nil || cur.UID != pod.UID:
		// Deleted (or replaced) meanwhile: nothing to requeue or report.
		s.queue.Delete(pod.UID)
		s.queue.Failed(qp, rejectors)
		return
	case cur.Spec.NodeName != "":
		s.queue.Done(qp)
	default:
		s.queue.Failed(qp, rejectors)
	}

	s.recorder.Eventf(cur, nil, v1.EventTypeWarning, reasonFailedScheduling, actionScheduling, "%s", truncate(msg))
	cond := &v1.PodCondition{
		Type:               v1.PodScheduled,
		ObservedGeneration: podutil.CalculatePodConditionObservedGeneration(&cur.Status, cur.Generation, v1.PodScheduled),
		Status:             v1.ConditionFalse,
		Reason:             reason,
		Message:            msg,
	}
	s.acts.Add(1)
	go func() {
		defer s.acts.Done()
		if err := s.patchCondition(ctx, cur, cond); err != nil && !apierrors.IsNotFound(err) {
			logger.Error(err, "Error updating pod", "pod", klog.KObj(cur))
		}
	}()
}

func truncate(msg string) string {
	if len(msg) <= noteLengthLimit {
		return msg
	}
	const suffix = " ..."
	return msg[:noteLengthLimit-len(suffix)] + suffix
}

// setCondition is podutil.UpdatePodCondition on the injected clock: it
// reports whether anything but the times changed.
func (s *Scheduler) setCondition(status *v1.PodStatus, cond *v1.PodCondition) bool {
	cond.LastTransitionTime = metav1.NewTime(s.clock.Now())
	for i := range status.Conditions {
		old := &status.Conditions[i]
		if old.Type != cond.Type {
			continue
		}
		if cond.Status == old.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
		equal := cond.Status == old.Status && cond.Reason == old.Reason && cond.Message == old.Message &&
			cond.LastProbeTime.Equal(&old.LastProbeTime) && cond.LastTransitionTime.Equal(&old.LastTransitionTime)
		status.Conditions[i] = *cond
		return !equal
	}
	status.Conditions = append(status.Conditions, *cond)
	return true
}

// patchCondition sets cond (and clears nominatedNodeName) with a strategic
// merge patch of pods/status, only when something changes (upstream's
// updatePod + util.PatchPodStatus).
func (s *Scheduler) patchCondition(ctx context.Context, pod *v1.Pod, cond *v1.PodCondition) error {
	status := pod.Status.DeepCopy()
	changed := s.setCondition(status, cond)
	if status.NominatedNodeName != "" {
		status.NominatedNodeName = ""
		changed = true
	}
	if !changed {
		return nil
	}
	oldData, err := json.Marshal(v1.Pod{Status: pod.Status})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(v1.Pod{Status: *status})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, &v1.Pod{})
	if err != nil {
		return fmt.Errorf("failed to create merge patch for pod %q/%q: %w", pod.Namespace, pod.Name, err)
	}
	if string(patch) == "{}" {
		return nil
	}
	return retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err)
	}, func() error {
		_, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	})
}
