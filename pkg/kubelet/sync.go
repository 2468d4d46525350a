package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/status"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

const (
	// resyncInterval: a pod with nothing pending is synced again after this
	// (upstream's syncFrequency).
	resyncInterval = time.Minute
	// resyncJitter: a resync comes up to this fraction of resyncInterval
	// later (upstream's workerResyncIntervalJitterFactor).
	resyncJitter = 0.5
	// errorRequeue: a sync that failed is retried after this (upstream's
	// backOffPeriod).
	errorRequeue = 10 * time.Second
	// mountRequeue: volumes that could not be set up (a ConfigMap not yet
	// created) are retried sooner, as upstream's volume manager does.
	mountRequeue = 2 * time.Second
	// authorizerGrace: for this long after a pod's volumes are first
	// refused (the Node authorizer has not seen the pod's binding yet) the
	// mount is retried every authorizerRetry without a FailedMount event.
	authorizerGrace = 2 * time.Second
	// crashLoopNotice: how long before a back-off ends its
	// CrashLoopBackOff waiting reason is published.
	crashLoopNotice = time.Second
	authorizerRetry = 50 * time.Millisecond
)

// step runs one level-triggered step of a pod's worker and returns when to
// run the next one.
func (k *Kubelet) step(ctx context.Context, w *podWorker) time.Duration {
	pod, gone, st := w.snapshot()
	switch st {
	case stageSync:
		if gone || pod.DeletionTimestamp != nil {
			w.setStage(stageTerminating)
			return 0
		}
		terminal, requeue := k.syncPod(ctx, pod)
		if terminal {
			w.setStage(stageTerminating)
			return 0
		}
		return requeue
	case stageTerminating:
		if err := k.syncTerminatingPod(ctx, w); err != nil {
			if ctx.Err() != nil {
				return waitForWake
			}
			if errors.Is(err, context.Canceled) {
				return 0 // grace period shortened: terminate again
			}
			log.Printf("kubelet: terminating pod %s/%s: %v", pod.Namespace, pod.Name, err)
			return time.Second
		}
		w.setStage(stageTerminated)
		return 0
	case stageTerminated:
		if !gone {
			k.status.TerminatePod(pod)
		}
		w.setStage(stageFinished)
		return 0
	default:
		if gone {
			k.cleanupPod(ctx, pod)
			return workerDone
		}
		return waitForWake
	}
}

// podState lists what the runtime runs for the pod, as a sync sees it: the
// PLEG notes each container's state (a change a sync saw needs no wake-up
// later) and exited containers' termination messages are read.
func (k *Kubelet) podState(ctx context.Context, uid types.UID, rt runtime.Runtime) (*podstate.PodState, error) {
	st, err := k.listPodState(ctx, uid, rt)
	if err != nil {
		return nil, err
	}
	for _, sb := range st.Sandboxes {
		k.pleg.knowSandbox(sb.ID, uid)
	}
	for _, c := range st.Containers {
		k.pleg.observe(c.ID, uid, c.State)
		if c.State == runtime.ContainerExited {
			k.addTerminationMessage(c)
		}
	}
	return st, nil
}

// listPodState lists what the runtime runs for the pod, with no side
// effect (exec, logs, port-forward: what they see must still wake the
// pod's worker).
func (k *Kubelet) listPodState(ctx context.Context, uid types.UID, rt runtime.Runtime) (*podstate.PodState, error) {
	sbs, err := rt.ListPodSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	var mine []*runtime.SandboxStatus
	for _, sb := range sbs {
		if types.UID(sb.UID) == uid || types.UID(sb.Labels[podstate.LabelPodUID]) == uid {
			mine = append(mine, sb)
		}
	}
	cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{Labels: map[string]string{podstate.LabelPodUID: string(uid)}})
	if err != nil {
		return nil, err
	}
	return podstate.New(uid, rt.Name(), mine, cs), nil
}

// podStateAnywhere finds the pod's sandboxes on whichever runtime has them
// (a pod whose RuntimeClass can no longer be resolved); sync: as podState,
// else as listPodState.
func (k *Kubelet) podStateAnywhere(ctx context.Context, pod *v1.Pod, sync bool) (*podstate.PodState, runtime.Runtime, error) {
	list := k.listPodState
	if sync {
		list = k.podState
	}
	if rt, err := k.runtimes.forPod(ctx, k.client, pod); err == nil {
		st, err := list(ctx, pod.UID, rt)
		return st, rt, err
	}
	for _, rt := range k.runtimes.all() {
		st, err := list(ctx, pod.UID, rt)
		if err != nil {
			return nil, nil, err
		}
		if len(st.Sandboxes) > 0 || len(st.Containers) > 0 {
			return st, rt, nil
		}
	}
	rt := k.runtimes.byName[k.runtimes.def]
	return podstate.New(pod.UID, rt.Name(), nil, nil), rt, nil
}

// generateStatus computes the pod's API status from the runtime state.
func (k *Kubelet) generateStatus(pod *v1.Pod, state *podstate.PodState, terminal bool) v1.PodStatus {
	old, ok := k.status.GetPodStatus(pod.UID)
	if !ok {
		old = pod.Status
	}
	in := status.Input{
		Pod: pod, State: state, Old: old, Reasons: k.reasons.get(pod.UID), PodIsTerminal: terminal,
		HostIPs: []string{k.hostIP}, RuntimeName: state.Runtime, Probe: k.probes.UpdatePodStatus,
	}
	in.Evict = k.eviction(pod.UID)
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && in.Evict == nil {
		start := old.StartTime
		if start == nil {
			start = pod.Status.StartTime
		}
		if start != nil && k.clock.Since(start.Time) >= time.Duration(*d)*time.Second {
			in.Evict = &status.Eviction{Reason: status.DeadlineExceeded, Message: "Pod was active on the node longer than the specified deadline"}
			if _, seen := k.deadlineEvents.LoadOrStore(pod.UID, true); !seen {
				k.recorder.Event(podRef(pod), v1.EventTypeNormal, status.DeadlineExceeded, in.Evict.Message)
			}
		}
	}
	return status.Generate(in)
}

// syncPod brings a running pod towards its spec: report its status, then
// plan and act. It says whether the pod reached a terminal phase and when to
// sync again.
func (k *Kubelet) syncPod(ctx context.Context, pod *v1.Pod) (terminal bool, requeue time.Duration) {
	rt, err := k.runtimes.forPod(ctx, k.client, pod)
	if err != nil {
		k.recorder.Eventf(podRef(pod), v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		k.status.SetPodStatus(pod, k.generateStatus(pod, podstate.New(pod.UID, k.runtimes.def, nil, nil), false))
		return false, errorRequeue
	}
	state, err := k.podState(ctx, pod.UID, rt)
	if err != nil {
		log.Printf("kubelet: runtime state of pod %s/%s: %v", pod.Namespace, pod.Name, err)
		return false, time.Second
	}
	apiStatus := k.generateStatus(pod, state, false)
	k.status.SetPodStatus(pod, apiStatus)
	k.podStarts.observe(pod, apiStatus.Phase, k.clock.Now())
	if apiStatus.Phase == v1.PodSucceeded || apiStatus.Phase == v1.PodFailed {
		return true, 0
	}

	if _, err := k.volumes.Setup(ctx, pod, state.IPs(k.hostIP)); err != nil {
		if apierrors.IsForbidden(err) {
			// Right after the pod is bound to this node the Node
			// authorizer may not know it yet: retry soon, quietly.
			first, _ := k.mountRefused.LoadOrStore(pod.UID, k.clock.Now())
			if k.clock.Since(first.(time.Time)) < authorizerGrace {
				return false, authorizerRetry
			}
		}
		k.recorder.Event(podRef(pod), v1.EventTypeWarning, "FailedMount", err.Error())
		return false, mountRequeue
	}
	k.mountRefused.Delete(pod.UID)
	k.probes.AddPod(pod)

	actions := computePodActions(pod, state, k.probes)
	res := k.execute(ctx, pod, state, rt, actions)
	k.reasons.update(pod.UID, res.starts)
	if ids := res.startedIDs(); ids != nil {
		// Every start is shown as running once, even when the container
		// has exited by the time the runtime is asked again (a command
		// that fails at once): upstream's runtime reports the exit late,
		// so watchers always see running first.
		// (listPodState: an exit seen here must still wake the worker)
		if now, err := k.listPodState(ctx, pod.UID, rt); err == nil {
			k.status.SetPodStatus(pod, k.generateStatus(pod, now.WithStarted(ids), false))
		}
	}

	// nothing pending: the next resync, spread for pods started together
	// (upstream's jitter; a back-off's wake-up is never delayed by it)
	requeue = wait.Jitter(resyncInterval, resyncJitter)
	switch {
	case res.createdSandbox:
		requeue = 0
	case !res.backoffUntil().IsZero():
		requeue = res.backoffUntil().Sub(k.clock.Now())
		if requeue < 0 {
			requeue = 0
		}
		// The sync before the restart shows CrashLoopBackOff (the reason
		// this sync cached); upstream's comes about a second ahead of the
		// restart, ours too, so that a watcher sees it as long. The
		// restart itself still happens when the back-off ends.
		if requeue > crashLoopNotice {
			requeue -= crashLoopNotice
		}
		if requeue > resyncInterval {
			requeue = resyncInterval
		}
	case res.failed():
		requeue = errorRequeue
	}
	if cached, ok := k.status.GetPodStatus(pod.UID); ok && pod.Spec.ActiveDeadlineSeconds != nil && cached.StartTime != nil {
		left := time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second - k.clock.Since(cached.StartTime.Time)
		if left < 0 {
			left = 0
		}
		if left < requeue {
			requeue = left
		}
	}
	return false, requeue
}

// syncTerminatingPod stops every container of the pod with its grace period
// (preStop hooks first; sidecars after the app containers), then reports its
// final status.
func (k *Kubelet) syncTerminatingPod(ctx context.Context, w *podWorker) error {
	pod, gone, _ := w.snapshot()
	state, rt, err := k.podStateAnywhere(ctx, pod, true)
	if err != nil {
		return err
	}
	if !gone {
		k.status.SetPodStatus(pod, k.generateStatus(pod, state, false))
	}
	k.probes.StopLivenessAndStartup(pod)

	var override *int64
	if gone && pod.DeletionGracePeriodSeconds == nil {
		one := int64(1)
		override = &one
	}
	grace := gracePeriod(pod, nil, killUnknown)
	if override != nil {
		grace = *override
	}
	tctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.termCancel, w.termGrace = cancel, &grace
	w.mu.Unlock()
	defer func() {
		cancel()
		w.mu.Lock()
		w.termCancel, w.termGrace = nil, nil
		w.mu.Unlock()
	}()
	if err := k.killPod(tctx, pod, state, rt, override); err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return context.Canceled
		}
		k.recorder.Eventf(podRef(pod), v1.EventTypeWarning, "FailedKillPod", "error killing pod: %v", err)
		return fmt.Errorf("error killing terminating pod: %w", err)
	}
	k.probes.RemovePod(pod)

	stopped, err := k.podState(ctx, pod.UID, rt)
	if err != nil {
		return err
	}
	for _, c := range stopped.Containers {
		if c.State == runtime.ContainerRunning {
			return fmt.Errorf("container %s still running after the pod was killed", c.ID)
		}
	}
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	if !gone {
		k.status.SetPodStatus(pod, k.generateStatus(pod, stopped, true))
	}
	return nil
}

// cleanupPod removes everything left of a pod deleted from the API server:
// containers, sandboxes, logs, volumes and cached state.
func (k *Kubelet) cleanupPod(ctx context.Context, pod *v1.Pod) {
	k.removeRuntimePod(ctx, pod.UID, time.Second)
	os.RemoveAll(k.podLogDir(pod))
	k.volumes.Cleanup(pod.UID)
	k.reasons.remove(pod.UID)
	k.podStarts.forget(pod.UID)
	k.evictions.Delete(pod.UID)
	k.status.RemovePod(pod.UID)
	k.probes.RemovePod(pod)
	k.pleg.forget(pod.UID)
	k.deadlineEvents.Delete(pod.UID)
	k.mountRefused.Delete(pod.UID)
}

// removeRuntimePod kills and removes every container and sandbox of uid on
// every runtime.
func (k *Kubelet) removeRuntimePod(ctx context.Context, uid types.UID, grace time.Duration) {
	for _, rt := range k.runtimes.all() {
		st, err := k.podState(ctx, uid, rt)
		if err != nil {
			continue
		}
		for _, c := range st.Running() {
			rt.StopContainer(ctx, c.ID, grace)
		}
		for _, c := range st.Containers {
			rt.RemoveContainer(ctx, c.ID)
			k.termMsgs.Delete(c.ID)
		}
		for _, sb := range st.Sandboxes {
			rt.StopPodSandbox(ctx, sb.ID)
			rt.RemovePodSandbox(ctx, sb.ID)
		}
	}
}
