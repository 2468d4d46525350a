package prober

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/features"
)

// probeKey names one worker: one probe of one container of one pod.
type probeKey struct {
	podUID    types.UID
	container string
	probeType ProbeType
}

// worker probes one container periodically (upstream's prober worker). Its
// goroutine (run) only waits; doProbe holds all the logic and is what tests
// drive, one period at a time.
type worker struct {
	m         *Manager
	key       probeKey
	pod       *v1.Pod      // as given to AddPod (read-only)
	container v1.Container // read-only
	spec      *v1.Probe    // read-only, zero fields defaulted
	sidecar   bool         // init container with restartPolicy Always
	results   *resultsCache
	// initialValue is the result while the probe has not yet concluded:
	// readiness Failure, liveness Success, startup Unknown.
	initialValue Result

	ctx     context.Context
	stop    context.CancelFunc // safe to call more than once
	trigger chan struct{}      // manual run (UpdatePodStatus), buffered 1

	containerID string // last seen v1 container ID
	lastResult  Result
	resultRun   int  // probes in a row that returned lastResult
	onHold      bool // skip probing until the container ID changes
}

func (m *Manager) newWorker(t ProbeType, pod *v1.Pod, c v1.Container, sidecar bool) *worker {
	w := &worker{
		m:         m,
		key:       probeKey{podUID: pod.UID, container: c.Name, probeType: t},
		pod:       pod,
		container: c,
		spec:      withDefaults(probeSpec(&c, t)),
		sidecar:   sidecar,
		trigger:   make(chan struct{}, 1),
	}
	switch t {
	case Readiness:
		w.results, w.initialValue = m.readiness, Failure
	case Liveness:
		w.results, w.initialValue = m.liveness, Success
	default:
		w.results, w.initialValue = m.startup, Unknown
	}
	// Probes outlive the pod's sync; only stop (RemovePod, CleanupPods,
	// StopLivenessAndStartup) ends them, and it cancels an in-flight probe.
	w.ctx, w.stop = context.WithCancel(context.Background())
	return w
}

// withDefaults copies p with the API defaults filled in where zero, so a
// pod that skipped defaulting cannot stall or panic a ticker.
func withDefaults(p *v1.Probe) *v1.Probe {
	c := *p
	if c.TimeoutSeconds <= 0 {
		c.TimeoutSeconds = 1
	}
	if c.PeriodSeconds <= 0 {
		c.PeriodSeconds = 10
	}
	if c.SuccessThreshold <= 0 {
		c.SuccessThreshold = 1
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = 3
	}
	return &c
}

// run probes every periodSeconds until doProbe says stop or the worker is
// stopped, then forgets the container's result and leaves the manager.
func (w *worker) run() {
	clk := w.m.clock
	period := time.Duration(w.spec.PeriodSeconds) * time.Second
	defer func() {
		if w.containerID != "" {
			w.results.remove(w.containerID)
		}
		w.forgetMetrics()
		w.m.removeWorker(w)
	}()

	// Right after the kubelet starts, spread the probes of existing pods
	// over a period instead of firing them all at once.
	if period > clk.Since(w.m.start) {
		select {
		case <-clk.After(time.Duration(rand.Float64() * float64(period))):
		case <-w.ctx.Done():
			return
		}
	}

	ticker := clk.NewTicker(period)
	defer func() { ticker.Stop() }()
	for w.doProbeOnRunner() {
		select {
		case <-w.ctx.Done():
			return
		case <-ticker.C():
		case <-w.trigger:
			// Next periodic run is a full period after this manual one.
			ticker.Stop()
			ticker = clk.NewTicker(period)
		}
	}
}

// doProbe probes the container once and records the result. It returns
// whether the worker should keep going.
func (w *worker) doProbe(ctx context.Context) (keepGoing bool) {
	defer func() {
		if r := recover(); r != nil {
			utilruntime.HandleError(fmt.Errorf("probe worker %v panicked: %v", w.key, r))
			keepGoing = true
		}
	}()

	status, ok := w.m.status.GetPodStatus(w.pod.UID)
	if !ok {
		return true // not created yet, or already gone
	}
	if status.Phase == v1.PodFailed || status.Phase == v1.PodSucceeded {
		return false
	}

	c, ok := podutil.GetContainerStatus(status.ContainerStatuses, w.container.Name)
	if !ok || c.ContainerID == "" {
		c, ok = podutil.GetContainerStatus(status.InitContainerStatuses, w.container.Name)
		if !ok || c.ContainerID == "" {
			return true // container not created yet
		}
	}

	if w.containerID != c.ContainerID {
		if w.containerID != "" {
			w.results.remove(w.containerID)
		}
		w.containerID = c.ContainerID
		w.seedResult(&c)
		w.onHold = false // a new container: probe again
	}

	if w.onHold {
		return true
	}

	if c.State.Running == nil {
		w.set(Failure)
		return w.mayRestart(&c, &status)
	}

	// Graceful deletion: liveness and startup go quiet.
	if w.pod.DeletionTimestamp != nil && (w.key.probeType == Liveness || w.key.probeType == Startup) {
		w.set(Success)
		return false
	}

	if int32(w.m.clock.Since(c.State.Running.StartedAt.Time).Seconds()) < w.spec.InitialDelaySeconds {
		return true
	}

	started := c.Started != nil && *c.Started
	if started && w.key.probeType == Startup {
		return true // started: kept only for a restarted container
	}
	if !started && w.key.probeType != Startup {
		return true // liveness and readiness wait for startup
	}

	probeStart := w.m.clock.Now()
	result, err := w.m.prober.probe(ctx, w.key.probeType, w.pod, status, &w.container, w.containerID)
	if err != nil {
		return true // probe errored: throw the result away
	}
	w.recordProbe(result, w.m.clock.Since(probeStart))

	if w.lastResult == result {
		w.resultRun++
	} else {
		w.lastResult = result
		w.resultRun = 1
	}
	if (result == Failure && w.resultRun < int(w.spec.FailureThreshold)) ||
		(result == Success && w.resultRun < int(w.spec.SuccessThreshold)) {
		return true // below threshold: keep the previous state
	}

	w.set(result)

	if (w.key.probeType == Liveness && result == Failure) || w.key.probeType == Startup {
		// The kubelet restarts the container (or it has started): do not
		// probe this one again, wait for a new container ID.
		w.onHold = true
		w.resultRun = 0
	}
	return true
}

// doProbeOnRunner runs doProbe on one of the manager's runner goroutines
// (see package runner): a probe and what records its result grow a stack
// to 16–32 kB, which a parked worker would keep between probes (a thousand
// workers: ~10 MB), and which a new goroutine would grow again each time.
func (w *worker) doProbeOnRunner() (keepGoing bool) {
	w.m.runners.Do(func() { keepGoing = w.doProbe(w.ctx) })
	return keepGoing
}

// seedResult sets the initial value for a newly seen container. As upstream
// (ChangeContainerStatusOnKubeletRestart off), a container that was already
// running before the kubelet started keeps its previous state instead.
func (w *worker) seedResult(c *v1.ContainerStatus) {
	if utilfeature.DefaultFeatureGate.Enabled(features.ChangeContainerStatusOnKubeletRestart) {
		w.set(w.initialValue)
		return
	}
	isRestart := false
	if c.State.Running != nil {
		t := c.State.Running.StartedAt.Time
		isRestart = !t.IsZero() && t.Before(w.m.restartGrace())
	}
	if w.sidecar && w.key.probeType == Startup && c.Started != nil && *c.Started {
		w.set(Success)
	}
	if !isRestart {
		w.set(w.initialValue)
	}
}

// mayRestart tells whether a non-running container can still come back, i.e.
// whether the worker is still needed.
func (w *worker) mayRestart(c *v1.ContainerStatus, status *v1.PodStatus) bool {
	if !utilfeature.DefaultFeatureGate.Enabled(features.ContainerRestartRules) {
		return c.State.Terminated == nil || w.pod.Spec.RestartPolicy != v1.RestartPolicyNever || w.sidecar
	}
	if c.State.Terminated == nil {
		return true
	}
	if podutil.ContainerShouldRestart(w.container, w.pod.Spec, c.State.Terminated.ExitCode) {
		return true
	}
	return utilfeature.DefaultFeatureGate.Enabled(features.RestartAllContainersOnContainerExits) &&
		allContainersRestarting(w.pod, status)
}

// allContainersRestarting: the pod is restarting all its containers, or one
// of them exited matching a RestartAllContainers rule.
func allContainersRestarting(pod *v1.Pod, status *v1.PodStatus) bool {
	for _, cond := range status.Conditions {
		if cond.Type == v1.AllContainersRestarting && cond.Status == v1.ConditionTrue {
			return true
		}
	}
	check := func(specs []v1.Container) bool {
		for _, c := range specs {
			st, ok := podutil.GetContainerStatus(status.InitContainerStatuses, c.Name)
			if !ok {
				st, ok = podutil.GetContainerStatus(status.ContainerStatuses, c.Name)
			}
			if !ok || st.State.Terminated == nil {
				continue
			}
			if rule, ok := podutil.FindMatchingContainerRestartRule(c, st.State.Terminated.ExitCode); ok &&
				rule.Action == v1.ContainerRestartRuleActionRestartAllContainers {
				return true
			}
		}
		return false
	}
	return check(pod.Spec.InitContainers) || check(pod.Spec.Containers)
}

func (w *worker) set(r Result) {
	if w.containerID == "" {
		return
	}
	w.results.set(w.containerID, r, w.pod, w.ctx.Done())
}
