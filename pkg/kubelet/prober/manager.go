package prober

import (
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/kubelet/runner"
)

// Manager runs one worker goroutine per probe (pod UID + container + probe
// type) of every regular container and every sidecar (init container with
// restartPolicy Always); plain init containers have no probes. Workers read
// the pod's latest status from Options.Status, probe, and store results in
// three caches (liveness, readiness, startup), each announcing changes on
// its own channel. The Manager never acts on results: the kubelet kills a
// container on a liveness/startup Failure (and emits Killing) and recomputes
// the pod's status on readiness/startup updates.
//
// Use from the kubelet:
//   - AddPod on every sync of a pod that is not terminating (idempotent:
//     existing workers are kept, probes are not updated in place).
//   - StopLivenessAndStartup when the pod starts terminating (readiness keeps
//     probing so endpoints see the container go NotReady).
//   - RemovePod once its containers are stopped; CleanupPods from
//     housekeeping with the UIDs of pods that may still be running.
//   - UpdatePodStatus on every status it computes, before publishing it.
//   - Drain all three update channels: a full channel (20 updates) blocks
//     the workers that write to it.
type Manager struct {
	status StatusProvider
	clock  clock.WithTicker
	prober *prober
	// start is when the kubelet (this Manager) started: it decides the
	// first-run jitter and which containers predate a kubelet restart.
	start time.Time

	liveness  *resultsCache
	readiness *resultsCache
	startup   *resultsCache

	// runners run the probe steps: workers park with small stacks.
	runners runner.Pool

	mu      sync.RWMutex
	workers map[probeKey]*worker
}

// NewManager returns a Manager with no workers. Options.Status is required;
// Exec is needed for exec probes, Recorder for events; Clock defaults to the
// real clock.
func NewManager(opts Options) *Manager {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Manager{
		status:    opts.Status,
		clock:     clk,
		prober:    newProber(opts),
		start:     clk.Now(),
		liveness:  newResultsCache(Liveness),
		readiness: newResultsCache(Readiness),
		startup:   newResultsCache(Startup),
		workers:   map[probeKey]*worker{},
	}
}

// AddPod starts a worker for every probe of the pod's containers and sidecars
// that has none yet.
func (m *Manager) AddPod(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var snapshot *v1.Pod // copied once, only if a worker is created
	add := func(c v1.Container, sidecar bool) {
		for _, t := range [...]ProbeType{Startup, Readiness, Liveness} {
			if probeSpec(&c, t) == nil {
				continue
			}
			key := probeKey{podUID: pod.UID, container: c.Name, probeType: t}
			if _, ok := m.workers[key]; ok {
				continue
			}
			if snapshot == nil {
				snapshot = pod.DeepCopy()
			}
			w := m.newWorker(t, snapshot, c, sidecar)
			m.workers[key] = w
			go w.run()
		}
	}
	for _, c := range pod.Spec.Containers {
		add(c, false)
	}
	for _, c := range pod.Spec.InitContainers {
		if podutil.IsRestartableInitContainer(&c) {
			add(c, true)
		}
	}
}

// StopLivenessAndStartup stops the liveness and startup workers of the pod's
// regular containers (as upstream, sidecars keep theirs until RemovePod).
func (m *Manager) StopLivenessAndStartup(pod *v1.Pod) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range pod.Spec.Containers {
		for _, t := range [...]ProbeType{Liveness, Startup} {
			if w, ok := m.workers[probeKey{pod.UID, c.Name, t}]; ok {
				w.stop()
			}
		}
	}
}

// RemovePod stops all the pod's workers; each forgets its container's result
// as it exits.
func (m *Manager) RemovePod(pod *v1.Pod) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for key, w := range m.workers {
		if key.podUID == pod.UID {
			w.stop()
		}
	}
}

// CleanupPods stops the workers of every pod not in desired.
func (m *Manager) CleanupPods(desired map[types.UID]struct{}) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for key, w := range m.workers {
		if _, ok := desired[key.podUID]; !ok {
			w.stop()
		}
	}
}

// LivenessUpdates, ReadinessUpdates and StartupUpdates deliver result
// changes. A liveness/startup worker also re-sends Failure after a new
// container crosses the threshold again.
func (m *Manager) LivenessUpdates() <-chan Update  { return m.liveness.updates }
func (m *Manager) ReadinessUpdates() <-chan Update { return m.readiness.updates }
func (m *Manager) StartupUpdates() <-chan Update   { return m.startup.updates }

// Result is the cached result of probe type t for a container (v1 ID form
// "host://abc"); false when none is known. The kubelet kills a running
// container whose liveness or startup Result is Failure. A Failure may also
// be cached for a container that is no longer running (upstream does so);
// only act on running containers.
func (m *Manager) Result(containerID string, t ProbeType) (Result, bool) {
	return m.cache(t).get(containerID)
}

func (m *Manager) cache(t ProbeType) *resultsCache {
	switch t {
	case Liveness:
		return m.liveness
	case Readiness:
		return m.readiness
	}
	return m.startup
}

// UpdatePodStatus sets Started and Ready of the container statuses (and of the
// init container statuses) from the probe results, as upstream:
//
//   - started = running && (startup Success, or, with no startup result yet,
//     the status already said started, or there is no startup probe);
//   - ready (only written when started) = running && (readiness Success or
//     no readiness probe). While not ready, the readiness worker is asked to
//     probe right away;
//   - plain init containers: Ready once terminated with exit code 0.
func (m *Manager) UpdatePodStatus(pod *v1.Pod, status *v1.PodStatus) {
	for i := range status.ContainerStatuses {
		cs := &status.ContainerStatuses[i]
		started := m.isStarted(pod, cs)
		cs.Started = &started
		if !started {
			continue
		}
		var spec *v1.Container
		for j := range pod.Spec.Containers {
			if pod.Spec.Containers[j].Name == cs.Name {
				spec = &pod.Spec.Containers[j]
				break
			}
		}
		cs.Ready = m.isReady(pod, cs, spec)
	}
	for i := range status.InitContainerStatuses {
		cs := &status.InitContainerStatuses[i]
		started := m.isStarted(pod, cs)
		cs.Started = &started
		spec, ok := initContainerByIndex(pod.Spec.InitContainers, status.InitContainerStatuses, i)
		if !ok {
			continue
		}
		if !podutil.IsRestartableInitContainer(spec) {
			if cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 {
				cs.Ready = true
			}
			continue
		}
		if !started {
			continue
		}
		cs.Ready = m.isReady(pod, cs, spec)
	}
}

func (m *Manager) isStarted(pod *v1.Pod, cs *v1.ContainerStatus) bool {
	if cs.State.Running == nil {
		return false
	}
	if r, ok := m.startup.get(cs.ContainerID); ok {
		return r == Success
	}
	if !utilfeature.DefaultFeatureGate.Enabled(features.ChangeContainerStatusOnKubeletRestart) && cs.Started != nil && *cs.Started {
		return true
	}
	// A startup probe that has not concluded yet: not started.
	_, hasStartup := m.worker(pod.UID, cs.Name, Startup)
	return !hasStartup
}

// isReady computes readiness of a started container; spec may be nil.
func (m *Manager) isReady(pod *v1.Pod, cs *v1.ContainerStatus, spec *v1.Container) bool {
	if cs.State.Running == nil {
		return false
	}
	if r, ok := m.readiness.get(cs.ContainerID); ok && r == Success {
		return true
	}
	w, hasReadiness := m.worker(pod.UID, cs.Name, Readiness)
	ready := !hasReadiness // no readiness probe: ready
	if hasReadiness {
		select {
		case w.trigger <- struct{}{}:
		default:
		}
	}
	if spec != nil && !utilfeature.DefaultFeatureGate.Enabled(features.ChangeContainerStatusOnKubeletRestart) {
		ready = m.readyAfterKubeletRestart(ready, pod, cs, spec)
	}
	return ready
}

// readyAfterKubeletRestart keeps a container that ran before the kubelet
// restarted from flapping: ready until its readiness probe concludes, unless
// it has a readiness probe and the pod was not Ready.
func (m *Manager) readyAfterKubeletRestart(ready bool, pod *v1.Pod, cs *v1.ContainerStatus, spec *v1.Container) bool {
	var startedAt time.Time
	if cs.State.Running != nil {
		startedAt = cs.State.Running.StartedAt.Time
	}
	if startedAt.IsZero() || !startedAt.Before(m.restartGrace()) {
		return ready
	}
	if !ready {
		if _, ok := m.readiness.get(cs.ContainerID); !ok {
			ready = true
		}
	}
	if spec.ReadinessProbe != nil {
		podReady := false
		for _, c := range pod.Status.Conditions {
			if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
				podReady = true
				break
			}
		}
		if !podReady {
			ready = false
		}
	}
	return ready
}

// restartGrace: containers started before this predate the kubelet's start.
func (m *Manager) restartGrace() time.Time { return m.start.Add(-10 * time.Second) }

// initContainerByIndex finds the spec of statuses[i], trying index i first.
func initContainerByIndex(specs []v1.Container, statuses []v1.ContainerStatus, i int) (*v1.Container, bool) {
	if i < 0 || i >= len(statuses) {
		return nil, false
	}
	if i < len(specs) && specs[i].Name == statuses[i].Name {
		return &specs[i], true
	}
	for j := range specs {
		if specs[j].Name == statuses[i].Name {
			return &specs[j], true
		}
	}
	return nil, false
}

func (m *Manager) worker(uid types.UID, container string, t ProbeType) (*worker, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	w, ok := m.workers[probeKey{uid, container, t}]
	return w, ok
}

// removeWorker is called by a worker as it exits.
func (m *Manager) removeWorker(w *worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers[w.key] == w {
		delete(m.workers, w.key)
	}
}

// workerCount is for tests.
func (m *Manager) workerCount() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.workers)
}
