package kubelet

import (
	"fmt"
	"sort"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/prober"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/status"
	v1 "k8s.io/api/core/v1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

// killReason says why a running container is killed (it picks the grace
// period: a probe may override the pod's).
type killReason int

const (
	killUnknown killReason = iota
	killLivenessProbe
	killStartupProbe
	killFailedPostStartHook
)

type containerToKill struct {
	name      string
	container *v1.Container
	message   string
	reason    killReason
}

// podActions is the plan of one sync (upstream's podActions).
type podActions struct {
	// KillPod: stop every container and the sandbox.
	KillPod bool
	// CreateSandbox: start a new sandbox (and the pod from its first init
	// container).
	CreateSandbox bool
	SandboxID     string
	Attempt       uint32
	// InitContainersToStart and ContainersToStart are indexes in the spec.
	InitContainersToStart []int
	ContainersToStart     []int
	// ContainersToKill by runtime container id.
	ContainersToKill map[string]containerToKill
}

func (a podActions) String() string {
	var kill []string
	for id, k := range a.ContainersToKill {
		kill = append(kill, k.name+"("+id+")")
	}
	sort.Strings(kill)
	return fmt.Sprintf("KillPod:%v CreateSandbox:%v Attempt:%d Init:%v Start:%v Kill:[%s]",
		a.KillPod, a.CreateSandbox, a.Attempt, a.InitContainersToStart, a.ContainersToStart, strings.Join(kill, " "))
}

// probeResults gives the latest liveness/startup result of a container by
// its API id ("host://abc").
type probeResults interface {
	Result(containerID string, t prober.ProbeType) (prober.Result, bool)
}

type noProbes struct{}

func (noProbes) Result(string, prober.ProbeType) (prober.Result, bool) { return prober.Unknown, false }

// computePodActions decides what a sync must do to bring the runtime state
// of pod to its spec. It is pure: the runtime state and probe results in,
// the plan out (upstream's computePodActions).
func computePodActions(pod *v1.Pod, state *podstate.PodState, probes probeResults) podActions {
	if probes == nil {
		probes = noProbes{}
	}
	createSandbox, attempt, sandboxID, _ := state.SandboxChanged()
	a := podActions{
		KillPod:           createSandbox,
		CreateSandbox:     createSandbox,
		SandboxID:         sandboxID,
		Attempt:           attempt,
		ContainersToStart: []int{},
		ContainersToKill:  map[string]containerToKill{},
	}
	id := func(c *runtime.ContainerStatus) string { return status.ContainerID(state.Runtime, c.ID) }

	if createSandbox {
		// A pod that ran and must not restart does not get a new sandbox.
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever && attempt != 0 && len(state.Containers) != 0 {
			a.CreateSandbox = false
			return a
		}
		var toStart []int
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			runOnce := pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure
			if c.RestartPolicy != nil {
				runOnce = *c.RestartPolicy == v1.ContainerRestartPolicyOnFailure
			}
			if runOnce && succeeded(state, c.Name) {
				continue
			}
			toStart = append(toStart, i)
		}
		if len(toStart) == 0 && state.HasAnyRegularContainerCreated(pod) {
			a.CreateSandbox = false
			return a
		}
		if len(pod.Spec.InitContainers) != 0 {
			a.InitContainersToStart = []int{0}
			return a
		}
		a.ContainersToStart = toStart
		return a
	}

	initialized := computeInitContainerActions(pod, state, probes, &a)
	if a.KillPod || !initialized {
		return a
	}

	keep := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := state.Find(c.Name)
		if cs == nil || cs.State != runtime.ContainerRunning {
			if status.ShouldContainerBeRestarted(c, pod, state) {
				a.ContainersToStart = append(a.ContainersToStart, i)
				if cs != nil && cs.State == runtime.ContainerUnknown {
					a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c,
						message: fmt.Sprintf("Container is in %q state, try killing it before restart", cs.State)}
				}
			}
			continue
		}
		restart := pod.Spec.RestartPolicy != v1.RestartPolicyNever
		if c.RestartPolicy != nil {
			restart = *c.RestartPolicy != v1.ContainerRestartPolicyNever
		}
		var message string
		var reason killReason
		if podstate.ContainerChanged(c, cs) {
			message = fmt.Sprintf("Container %s definition changed", c.Name)
			restart = true
		} else if r, ok := probes.Result(id(cs), prober.Liveness); ok && r == prober.Failure {
			message = fmt.Sprintf("Container %s failed liveness probe", c.Name)
			reason = killLivenessProbe
		} else if r, ok := probes.Result(id(cs), prober.Startup); ok && r == prober.Failure {
			message = fmt.Sprintf("Container %s failed startup probe", c.Name)
			reason = killStartupProbe
		} else {
			keep++
			continue
		}
		if restart {
			message += ", will be restarted"
			a.ContainersToStart = append(a.ContainersToStart, i)
		}
		a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c, message: message, reason: reason}
	}
	if keep == 0 && len(a.ContainersToStart) == 0 {
		// Nothing left to run: stop the pod (sidecars included).
		a.KillPod = true
		a.InitContainersToStart = nil
	}
	return a
}

func succeeded(state *podstate.PodState, name string) bool {
	c := state.Find(name)
	return c != nil && c.State == runtime.ContainerExited && c.ExitCode == 0
}

func initFailed(c *runtime.ContainerStatus) bool {
	return (c.State == runtime.ContainerExited && c.ExitCode != 0) ||
		(c.State == runtime.ContainerUnknown)
}

// computeInitContainerActions plans init containers and sidecars: start
// the next init container once the previous one completed (a sidecar: once
// started), restart failed ones per policy (a failure with Never fails the
// pod), keep sidecars running. It reports whether initialization is done.
func computeInitContainerActions(pod *v1.Pod, state *podstate.PodState, probes probeResults, a *podActions) bool {
	inits := pod.Spec.InitContainers
	if len(inits) == 0 {
		return true
	}
	id := func(c *runtime.ContainerStatus) string { return status.ContainerID(state.Runtime, c.ID) }
	initialized := state.HasAnyActiveRegularContainer(pod)
	prevInitialized := initialized
	restartOnFailure := pod.Spec.RestartPolicy != v1.RestartPolicyNever

	for i := len(inits) - 1; i >= 0; i-- {
		c := &inits[i]
		sidecar := podutil.IsRestartableInitContainer(c)
		cs := state.FindActive(c.Name)
		if cs == nil {
			if prevInitialized && sidecar {
				a.InitContainersToStart = append(a.InitContainersToStart, i)
			}
			continue
		}
		if prevInitialized && !sidecar {
			continue
		}
		switch cs.State {
		case runtime.ContainerCreated:
			a.InitContainersToStart = append(a.InitContainersToStart, i)
		case runtime.ContainerRunning:
			if !sidecar {
				break
			}
			if c.StartupProbe != nil {
				r, found := probes.Result(id(cs), prober.Startup)
				if !found {
					break
				}
				if r != prober.Success {
					if r == prober.Failure {
						a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c,
							message: fmt.Sprintf("Init container %s failed startup probe", c.Name), reason: killStartupProbe}
						a.InitContainersToStart = append(a.InitContainersToStart, i)
					}
					break
				}
			}
			if i == len(inits)-1 {
				initialized = true
			} else if !prevInitialized {
				a.InitContainersToStart = append(a.InitContainersToStart, i+1)
			}
			if podstate.ContainerChanged(c, cs) {
				a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c,
					message: fmt.Sprintf("Init container %s definition changed", c.Name)}
				a.InitContainersToStart = append(a.InitContainersToStart, i)
				break
			}
			if c.LivenessProbe != nil {
				if r, found := probes.Result(id(cs), prober.Liveness); found && r == prober.Failure {
					a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c,
						message: fmt.Sprintf("Init container %s failed liveness probe", c.Name), reason: killLivenessProbe}
					a.InitContainersToStart = append(a.InitContainersToStart, i)
				}
			}
		case runtime.ContainerExited:
			if sidecar {
				a.InitContainersToStart = append(a.InitContainersToStart, i)
				break
			}
			if initFailed(cs) {
				if !status.ShouldContainerBeRestarted(c, pod, state) {
					a.KillPod = true
					a.InitContainersToStart = nil
					return false
				}
				a.InitContainersToStart = append(a.InitContainersToStart, i)
				break
			}
			if i == len(inits)-1 {
				initialized = true
			} else {
				a.InitContainersToStart = append(a.InitContainersToStart, i+1)
			}
		default: // unknown state
			if !sidecar {
				r := restartOnFailure
				if c.RestartPolicy != nil {
					r = *c.RestartPolicy != v1.ContainerRestartPolicyNever
				}
				if !r {
					a.KillPod = true
					a.InitContainersToStart = nil
					return false
				}
			}
			a.ContainersToKill[cs.ID] = containerToKill{name: c.Name, container: c,
				message: fmt.Sprintf("Init container is in %q state, try killing it before restart", cs.State)}
			a.InitContainersToStart = append(a.InitContainersToStart, i)
		}
		if !prevInitialized {
			prevInitialized = true
		}
	}
	if !prevInitialized {
		a.InitContainersToStart = append(a.InitContainersToStart, 0)
	}
	// the loop ran backwards: start in spec order
	l := len(a.InitContainersToStart)
	for i := 0; i < l/2; i++ {
		a.InitContainersToStart[i], a.InitContainersToStart[l-1-i] = a.InitContainersToStart[l-1-i], a.InitContainersToStart[i]
	}
	return initialized
}
