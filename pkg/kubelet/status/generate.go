// Package status computes a pod's API status from what the runtime reports
// (pure functions, as upstream's pkg/kubelet/status/generate.go and the
// status half of kubelet_pods.go) and writes it to the API server (Manager).
package status

import (
	"fmt"
	"sort"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
)

// Condition reasons (upstream's exact strings).
const (
	UnknownContainerStatuses = "UnknownContainerStatuses"
	PodCompleted             = "PodCompleted"
	PodFailed                = "PodFailed"
	ContainersNotReady       = "ContainersNotReady"
	ContainersNotInitialized = "ContainersNotInitialized"
	ReadinessGatesNotReady   = "ReadinessGatesNotReady"
	PodSandboxNotReady       = "PodSandboxNotReady"
)

// Container waiting / terminated reasons the kubelet sets.
const (
	ContainerCreating          = "ContainerCreating"
	PodInitializing            = "PodInitializing"
	CrashLoopBackOff           = "CrashLoopBackOff"
	CreateContainerConfigError = "CreateContainerConfigError"
	CreateContainerError       = "CreateContainerError"
	RunContainerError          = "RunContainerError"
	PostStartHookError         = "PostStartHookError"
	ErrImagePull               = "ErrImagePull"
	ImagePullBackOff           = "ImagePullBackOff"
	ErrImageNeverPull          = "ErrImageNeverPull"
	InvalidImageName           = "InvalidImageName"
	ContainerStatusUnknown     = "ContainerStatusUnknown"
	DeadlineExceeded           = "DeadlineExceeded"
)

// Reason is why a container could not be started at the last sync (the
// kubelet's reason cache): it becomes the container's waiting state.
type Reason struct {
	Reason  string
	Message string
}

// Input is everything Generate looks at.
type Input struct {
	Pod   *v1.Pod
	State *podstate.PodState
	// Old is the kubelet's last status of the pod, or the API's when none.
	Old v1.PodStatus
	// Reasons of the last sync, per container name.
	Reasons map[string]Reason
	// PodIsTerminal: the pod will not run containers again (deleted, or
	// finished and stopped); the phase becomes Succeeded or Failed.
	PodIsTerminal bool
	HostIPs       []string
	// RuntimeName prefixes container ids: "host://<id>".
	RuntimeName string
	// Probe fills containers' Ready and Started from probe results. Nil:
	// a running container is started and ready.
	Probe func(pod *v1.Pod, s *v1.PodStatus)
	// Evict, when set, fails the pod with this reason and message (an
	// exceeded activeDeadlineSeconds).
	Evict *Eviction
}

// Eviction fails a pod.
type Eviction struct {
	Reason  string
	Message string
}

// Generate computes the pod's API status (upstream's generateAPIPodStatus).
func Generate(in Input) v1.PodStatus {
	pod := in.Pod
	old := in.Old
	s := convertStatus(in)

	all := append(append([]v1.ContainerStatus{}, s.ContainerStatuses...), s.InitContainerStatuses...)
	s.Phase = Phase(pod, all, in.PodIsTerminal, in.State.HasAnyActiveRegularContainer(pod))

	// A terminal phase, once reported, stays.
	if !isTerminal(s.Phase) {
		switch {
		case isTerminal(old.Phase):
			s.Phase = old.Phase
		case isTerminal(pod.Status.Phase):
			s.Phase = pod.Status.Phase
		}
	}
	if s.Phase == old.Phase {
		s.Reason, s.Message = old.Reason, old.Message
		if s.Reason == "" {
			s.Reason = pod.Status.Reason
		}
		if s.Message == "" {
			s.Message = pod.Status.Message
		}
	}
	if in.Evict != nil {
		s.Phase, s.Reason, s.Message = v1.PodFailed, in.Evict.Reason, in.Evict.Message
	}
	if isTerminal(pod.Status.Phase) && s.Phase != pod.Status.Phase {
		s.Phase = pod.Status.Phase
	}

	if in.Probe != nil {
		in.Probe(pod, &s)
	} else {
		defaultProbe(pod, &s)
	}

	// Conditions: those the kubelet does not own first, then its own, in
	// upstream's order.
	s.Conditions = make([]v1.PodCondition, 0, len(pod.Status.Conditions)+5)
	for _, c := range pod.Status.Conditions {
		if !ownedByKubelet(c.Type) {
			s.Conditions = append(s.Conditions, c)
		}
	}
	if _, c := podutil.GetPodConditionFromList(old.Conditions, v1.DisruptionTarget); c != nil {
		s.Conditions = replaceOrAppend(s.Conditions, *c)
	}
	allStatuses := append(append([]v1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...)
	s.Conditions = append(s.Conditions,
		ReadyToStartContainersCondition(pod, in.State),
		InitializedCondition(pod, allStatuses, s.Phase))
	s.Conditions = append(s.Conditions,
		ReadyCondition(pod, s.Conditions, allStatuses, s.Phase),
		ContainersReadyCondition(pod, allStatuses, s.Phase),
		v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue, ObservedGeneration: pod.Generation})

	if len(in.HostIPs) > 0 {
		s.HostIP = in.HostIPs[0]
		s.HostIPs = nil
		for _, ip := range in.HostIPs {
			s.HostIPs = append(s.HostIPs, v1.HostIP{IP: ip})
		}
		if pod.Spec.HostNetwork && s.PodIP == "" {
			s.PodIP = in.HostIPs[0]
			s.PodIPs = []v1.PodIP{{IP: s.PodIP}}
		}
	}
	s.ObservedGeneration = pod.Generation
	return s
}

func convertStatus(in Input) v1.PodStatus {
	pod := in.Pod
	var s v1.PodStatus
	for _, ip := range in.State.IPs(first(in.HostIPs)) {
		s.PodIPs = append(s.PodIPs, v1.PodIP{IP: ip})
	}
	if len(s.PodIPs) > 0 {
		s.PodIP = s.PodIPs[0].IP
	} else if len(in.Old.PodIPs) > 0 {
		// a stopped sandbox no longer reports its IP: keep the last one
		s.PodIP, s.PodIPs = in.Old.PodIP, in.Old.PodIPs
	}
	s.QOSClass = qos.GetPodQOS(pod)
	hasInit := len(pod.Spec.InitContainers) > 0
	s.ContainerStatuses = containerStatuses(in, in.Old.ContainerStatuses, pod.Spec.Containers, hasInit, false)
	s.InitContainerStatuses = containerStatuses(in, in.Old.InitContainerStatuses, pod.Spec.InitContainers, hasInit, true)

	res := &v1.ResourceRequirements{}
	if pod.Spec.Resources != nil {
		res = pod.Spec.Resources.DeepCopy()
	}
	res.Requests = nonEmpty(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	res.Limits = nonEmpty(resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{}))
	s.Resources = res
	s.AllocatedResources = nonEmpty(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	return s
}

func nonEmpty(l v1.ResourceList) v1.ResourceList {
	if len(l) == 0 {
		return nil
	}
	return l
}

// containerStatuses converts the runtime's containers of one list (regular
// or init) into API statuses, as upstream's convertToAPIContainerStatuses.
func containerStatuses(in Input, previous []v1.ContainerStatus, containers []v1.Container, hasInit, isInit bool) []v1.ContainerStatus {
	pod, state := in.Pod, in.State
	if len(containers) == 0 {
		return nil
	}
	olds := make(map[string]v1.ContainerStatus, len(previous))
	for _, s := range previous {
		olds[s.Name] = s
	}
	defaultWaiting := v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: ContainerCreating}}
	if hasInit {
		defaultWaiting = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: PodInitializing}}
	}

	statuses := make(map[string]*v1.ContainerStatus, len(containers))
	for i := range containers {
		c := &containers[i]
		st := &v1.ContainerStatus{Name: c.Name, Image: c.Image, State: defaultWaiting, VolumeMounts: volumeMountStatuses(c)}
		if old, ok := olds[c.Name]; ok {
			if old.State.Terminated != nil {
				o := *old.DeepCopy()
				st = &o
			} else {
				st.RestartCount = old.RestartCount
				st.LastTerminationState = *old.LastTerminationState.DeepCopy()
			}
		}
		statuses[c.Name] = st
	}

	// A container that was running and is gone from the runtime terminated
	// in an unknown way.
	for i := range containers {
		c := &containers[i]
		if state.Find(c.Name) != nil {
			continue
		}
		old, ok := olds[c.Name]
		if !ok || old.State.Terminated != nil || old.State.Running == nil {
			continue
		}
		st := statuses[c.Name]
		if st.State.Waiting == nil || st.State.Waiting.Reason != defaultWaiting.Waiting.Reason || st.LastTerminationState.Terminated != nil {
			continue
		}
		st.LastTerminationState.Terminated = &v1.ContainerStateTerminated{
			Reason:   ContainerStatusUnknown,
			Message:  "The container could not be located when the pod was deleted.  The container used to be Running",
			ExitCode: 137,
		}
		if pod.DeletionTimestamp == nil {
			st.RestartCount++
		}
	}

	// The newest runtime container of each name is its state, the one
	// before it its last state.
	seen := map[string]int{}
	for _, rc := range state.Containers {
		name := podstate.ContainerName(rc)
		if _, ok := statuses[name]; !ok || seen[name] >= 2 {
			continue
		}
		var oldPtr *v1.ContainerStatus
		if old, ok := olds[name]; ok {
			oldPtr = &old
		}
		cs := convertContainer(in, rc, oldPtr, containerSpec(containers, name))
		if seen[name] == 0 {
			statuses[name] = cs
		} else {
			statuses[name].LastTerminationState = cs.State
		}
		seen[name]++
	}

	// A container that will be started again but failed to start at the
	// last sync waits, with the reason of that failure.
	for i := range containers {
		c := &containers[i]
		latest := state.Find(c.Name)
		if isInit {
			if latest != nil && latest.State == runtime.ContainerExited && latest.ExitCode == 0 {
				continue
			}
			if latest == nil && state.HasAnyRegularContainerCreated(pod) && !podutil.IsRestartableInitContainer(c) && statuses[c.Name].State.Waiting != nil {
				statuses[c.Name].State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					Reason:   "Completed",
					Message:  "Unable to get init container status from container runtime and pod has been initialized, treat it as exited normally",
					ExitCode: 0,
				}}
				continue
			}
		}
		if !ShouldContainerBeRestarted(c, pod, state) {
			continue
		}
		r, ok := in.Reasons[c.Name]
		if !ok {
			continue
		}
		st := statuses[c.Name]
		if st.State.Terminated != nil {
			st.LastTerminationState = st.State
		}
		st.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: r.Reason, Message: r.Message}}
	}

	out := make([]v1.ContainerStatus, 0, len(statuses))
	if isInit {
		for i := range containers {
			out = append(out, *statuses[containers[i].Name])
		}
		return out
	}
	for _, st := range statuses {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func containerSpec(cs []v1.Container, name string) *v1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func convertContainer(in Input, rc *runtime.ContainerStatus, old *v1.ContainerStatus, spec *v1.Container) *v1.ContainerStatus {
	cid := ContainerID(in.RuntimeName, rc.ID)
	st := &v1.ContainerStatus{
		Name:         podstate.ContainerName(rc),
		RestartCount: podstate.RestartCount(rc),
		Image:        rc.Image,
		ImageID:      rc.ImageRef,
		ContainerID:  cid,
	}
	if st.Image == "" && spec != nil {
		st.Image = spec.Image
	}
	if old != nil && len(old.VolumeMounts) > 0 {
		st.VolumeMounts = old.VolumeMounts
	} else if spec != nil {
		st.VolumeMounts = volumeMountStatuses(spec)
	}
	if old != nil {
		if old.RestartCount > st.RestartCount {
			st.RestartCount = old.RestartCount
		}
		if old.ContainerID != st.ContainerID && old.State.Terminated != nil {
			st.LastTerminationState.Terminated = old.State.Terminated.DeepCopy()
		} else if old.LastTerminationState.Terminated != nil {
			st.LastTerminationState.Terminated = old.LastTerminationState.Terminated.DeepCopy()
		}
	}
	switch rc.State {
	case runtime.ContainerRunning:
		st.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(rc.StartedAt)}
	case runtime.ContainerCreated:
		st.State.Waiting = &v1.ContainerStateWaiting{}
	case runtime.ContainerExited:
		st.State.Terminated = &v1.ContainerStateTerminated{
			ExitCode:    rc.ExitCode,
			Reason:      rc.Reason,
			Message:     rc.Message,
			StartedAt:   metav1.NewTime(rc.StartedAt),
			FinishedAt:  metav1.NewTime(rc.FinishedAt),
			ContainerID: cid,
		}
		if st.State.Terminated.Reason == "" {
			if rc.ExitCode == 0 {
				st.State.Terminated.Reason = "Completed"
			} else {
				st.State.Terminated.Reason = "Error"
			}
		}
	default:
		if old != nil && old.State.Running != nil {
			st.State.Terminated = &v1.ContainerStateTerminated{
				Reason:   ContainerStatusUnknown,
				Message:  "The container could not be located when the pod was terminated",
				ExitCode: 137,
			}
			st.RestartCount = old.RestartCount + 1
		} else {
			st.State.Waiting = &v1.ContainerStateWaiting{}
		}
	}
	if spec != nil {
		st.Resources = spec.Resources.DeepCopy()
		st.AllocatedResources = spec.Resources.Requests.DeepCopy()
	}
	return st
}

// ContainerID is the API form of a runtime container id.
func ContainerID(runtimeName, id string) string {
	if id == "" {
		return ""
	}
	return runtimeName + "://" + id
}

func volumeMountStatuses(c *v1.Container) []v1.VolumeMountStatus {
	var out []v1.VolumeMountStatus
	for _, m := range c.VolumeMounts {
		vs := v1.VolumeMountStatus{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly}
		if m.ReadOnly {
			mode := v1.RecursiveReadOnlyDisabled
			vs.RecursiveReadOnly = &mode
		}
		out = append(out, vs)
	}
	return out
}

// ShouldContainerBeRestarted is upstream's rule: never once the pod is
// deleted; always when it never ran or its state is unknown; else by the
// container's or the pod's restart policy and its exit code.
func ShouldContainerBeRestarted(c *v1.Container, pod *v1.Pod, state *podstate.PodState) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	st := state.Find(c.Name)
	if st == nil {
		return true
	}
	switch st.State {
	case runtime.ContainerRunning:
		return false
	case runtime.ContainerUnknown, runtime.ContainerCreated:
		return true
	}
	return podutil.ContainerShouldRestart(*c, pod.Spec, st.ExitCode)
}

// defaultProbe: no prober; a running container is started and ready.
func defaultProbe(pod *v1.Pod, s *v1.PodStatus) {
	set := func(statuses []v1.ContainerStatus, init bool) {
		for i := range statuses {
			st := &statuses[i]
			running := st.State.Running != nil
			started := running
			st.Started = &started
			if init {
				c := containerSpec(pod.Spec.InitContainers, st.Name)
				if c != nil && !podutil.IsRestartableInitContainer(c) {
					// a regular init container is ready once it completed
					st.Ready = st.State.Terminated != nil && st.State.Terminated.ExitCode == 0
					continue
				}
			}
			st.Ready = running
		}
	}
	set(s.ContainerStatuses, false)
	set(s.InitContainerStatuses, true)
}

func ownedByKubelet(t v1.PodConditionType) bool {
	switch t {
	case v1.PodScheduled, v1.PodReady, v1.PodInitialized, v1.ContainersReady, v1.PodReadyToStartContainers,
		v1.PodResizePending, v1.PodResizeInProgress, v1.AllContainersRestarting:
		return true
	}
	return false
}

func replaceOrAppend(cs []v1.PodCondition, c v1.PodCondition) []v1.PodCondition {
	for i := range cs {
		if cs[i].Type == c.Type {
			cs[i] = c
			return cs
		}
	}
	return append(cs, c)
}

func isTerminal(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// ReadyToStartContainersCondition: True once the pod's sandbox is ready.
func ReadyToStartContainersCondition(pod *v1.Pod, state *podstate.PodState) v1.PodCondition {
	changed, _, _, reason := state.SandboxChanged()
	if !changed {
		return v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue, ObservedGeneration: pod.Generation}
	}
	return v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionFalse, ObservedGeneration: pod.Generation,
		Reason: PodSandboxNotReady, Message: reason}
}

// ContainersReadyCondition: True when every regular container and sidecar is ready.
func ContainersReadyCondition(pod *v1.Pod, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	cond := v1.PodCondition{Type: v1.ContainersReady, ObservedGeneration: pod.Generation}
	if statuses == nil {
		cond.Status, cond.Reason = v1.ConditionFalse, UnknownContainerStatuses
		return cond
	}
	var unknown, unready []string
	check := func(c *v1.Container) {
		st, ok := podutil.GetContainerStatus(statuses, c.Name)
		switch {
		case !ok:
			unknown = append(unknown, c.Name)
		case !st.Ready:
			unready = append(unready, c.Name)
		}
	}
	for i := range pod.Spec.InitContainers {
		if podutil.IsRestartableInitContainer(&pod.Spec.InitContainers[i]) {
			check(&pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	if (phase == v1.PodSucceeded && len(unknown) == 0) || phase == v1.PodFailed {
		cond.Status = v1.ConditionFalse
		cond.Reason = terminalReason(phase)
		return cond
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(unready) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unready status: %s", unready))
	}
	if len(msgs) > 0 {
		cond.Status, cond.Reason, cond.Message = v1.ConditionFalse, ContainersNotReady, strings.Join(msgs, ", ")
		return cond
	}
	cond.Status = v1.ConditionTrue
	return cond
}

func terminalReason(phase v1.PodPhase) string {
	if phase == v1.PodFailed {
		return PodFailed
	}
	return PodCompleted
}

// ReadyCondition: ContainersReady, and every readiness gate True.
func ReadyCondition(pod *v1.Pod, conditions []v1.PodCondition, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	cr := ContainersReadyCondition(pod, statuses, phase)
	cond := v1.PodCondition{Type: v1.PodReady, ObservedGeneration: pod.Generation}
	if cr.Status != v1.ConditionTrue {
		cond.Status, cond.Reason, cond.Message = cr.Status, cr.Reason, cr.Message
		return cond
	}
	var msgs []string
	for _, rg := range pod.Spec.ReadinessGates {
		_, c := podutil.GetPodConditionFromList(conditions, rg.ConditionType)
		if c == nil {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		} else if c.Status != v1.ConditionTrue {
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), c.Status))
		}
	}
	if len(msgs) > 0 {
		cond.Status, cond.Reason, cond.Message = v1.ConditionFalse, ReadinessGatesNotReady, strings.Join(msgs, ", ")
		return cond
	}
	cond.Status = v1.ConditionTrue
	return cond
}

// InitializedCondition: True once every init container completed (a
// sidecar: started).
func InitializedCondition(pod *v1.Pod, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	cond := v1.PodCondition{Type: v1.PodInitialized, ObservedGeneration: pod.Generation}
	if statuses == nil && len(pod.Spec.InitContainers) > 0 {
		cond.Status, cond.Reason = v1.ConditionFalse, UnknownContainerStatuses
		return cond
	}
	var unknown, incomplete []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st, ok := podutil.GetContainerStatus(statuses, c.Name)
		if !ok {
			unknown = append(unknown, c.Name)
			continue
		}
		if podutil.IsRestartableInitContainer(c) {
			if st.Started == nil || !*st.Started {
				incomplete = append(incomplete, c.Name)
			}
		} else if !st.Ready {
			incomplete = append(incomplete, c.Name)
		}
	}
	if phase == v1.PodSucceeded && len(unknown) == 0 {
		cond.Status, cond.Reason = v1.ConditionTrue, PodCompleted
		return cond
	}
	if anyRegularContainerStarted(pod, statuses) {
		cond.Status = v1.ConditionTrue
		return cond
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(incomplete) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with incomplete status: %s", incomplete))
	}
	if len(msgs) > 0 {
		cond.Status, cond.Reason, cond.Message = v1.ConditionFalse, ContainersNotInitialized, strings.Join(msgs, ", ")
		return cond
	}
	cond.Status = v1.ConditionTrue
	return cond
}

func anyRegularContainerStarted(pod *v1.Pod, statuses []v1.ContainerStatus) bool {
	for i := range pod.Spec.Containers {
		if st, ok := podutil.GetContainerStatus(statuses, pod.Spec.Containers[i].Name); ok {
			if st.State.Running != nil || st.State.Terminated != nil {
				return true
			}
		}
	}
	return false
}

// Phase is upstream's getPhase (with per-container restart policies).
func Phase(pod *v1.Pod, info []v1.ContainerStatus, podIsTerminal, podHasInitialized bool) v1.PodPhase {
	spec := &pod.Spec
	pendingSidecars, pendingInit, failedInitNotRestartable := 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if podutil.IsRestartableInitContainer(c) {
			continue
		}
		st, ok := podutil.GetContainerStatus(info, c.Name)
		if !ok {
			pendingInit++
			continue
		}
		switch {
		case st.State.Running != nil:
			pendingInit++
		case st.State.Terminated != nil:
			if code := st.State.Terminated.ExitCode; code != 0 && !podutil.ContainerShouldRestart(*c, *spec, code) {
				failedInitNotRestartable++
			}
		case st.State.Waiting != nil:
			if t := st.LastTerminationState.Terminated; t != nil {
				if t.ExitCode != 0 && !podutil.ContainerShouldRestart(*c, *spec, t.ExitCode) {
					failedInitNotRestartable++
				}
			} else {
				pendingInit++
			}
		default:
			pendingInit++
		}
	}

	unknown, running, waiting, stopped, stoppedNotRestartable, succeeded := 0, 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if !podutil.IsRestartableInitContainer(c) {
			continue
		}
		st, ok := podutil.GetContainerStatus(info, c.Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case st.State.Running != nil:
			if st.Started == nil || !*st.Started {
				pendingSidecars++
			}
			running++
		case st.State.Terminated != nil:
		case st.State.Waiting != nil:
			if st.LastTerminationState.Terminated == nil {
				pendingSidecars++
				waiting++
			}
		default:
			pendingSidecars++
			unknown++
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		st, ok := podutil.GetContainerStatus(info, c.Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case st.State.Running != nil:
			running++
		case st.State.Terminated != nil:
			stopped++
			code := st.State.Terminated.ExitCode
			if !podutil.ContainerShouldRestart(*c, *spec, code) {
				stoppedNotRestartable++
			}
			if code == 0 {
				succeeded++
			}
		case st.State.Waiting != nil:
			if t := st.LastTerminationState.Terminated; t != nil {
				stopped++
				if !podutil.ContainerShouldRestart(*c, *spec, t.ExitCode) {
					stoppedNotRestartable++
				}
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}

	if failedInitNotRestartable > 0 {
		return v1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !podHasInitialized), waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if podIsTerminal {
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
		if stopped != stoppedNotRestartable {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		return v1.PodFailed
	default:
		return v1.PodPending
	}
}
