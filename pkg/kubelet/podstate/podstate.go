// Package podstate is what the runtime knows of one pod: its sandboxes and
// containers (like upstream's kubecontainer.PodStatus), plus the labels and
// annotations the kubelet writes on them so it can find them again after a
// restart. It is shared by the planner (what to do) and the status generator
// (what to report).
package podstate

import (
	"time"

	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels and annotations on sandboxes and containers (upstream's names).
const (
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelContainerName = "io.kubernetes.container.name"

	AnnotationContainerHash = "io.kubernetes.container.hash"
	AnnotationRestartCount  = "io.kubernetes.container.restartCount"
	// AnnotationTerminationMessageHostPath: where the kubelet reads the
	// termination message of this attempt on the host.
	AnnotationTerminationMessageHostPath = "k1s.dev/termination-message-host-path"
	AnnotationTerminationMessagePolicy   = "io.kubernetes.container.terminationMessagePolicy"
	// AnnotationRuntimeHandler names the runtime a sandbox runs on.
	AnnotationRuntimeHandler = "k1s.dev/runtime-handler"
)

// Sandbox messages of the PodReadyToStartContainers condition (upstream's).
const (
	MsgNoPodSandbox       = "no pod sandbox exists"
	MsgMultipleSandboxes  = "multiple pod sandboxes are ready and need to be reconciled"
	MsgSandboxNotReady    = "pod sandbox is not ready"
	PodSandboxNotReadyMsg = MsgSandboxNotReady
)

// PodState is the runtime's view of one pod.
type PodState struct {
	UID types.UID
	// Runtime is the RuntimeClass handler the sandboxes run on.
	Runtime string
	// Sandboxes, newest first.
	Sandboxes []*runtime.SandboxStatus
	// Containers of every sandbox, newest first.
	Containers []*runtime.ContainerStatus
}

// New sorts sandboxes and containers newest first.
func New(uid types.UID, rt string, sandboxes []*runtime.SandboxStatus, containers []*runtime.ContainerStatus) *PodState {
	s := &PodState{UID: uid, Runtime: rt, Sandboxes: sandboxes, Containers: containers}
	sort.SliceStable(s.Sandboxes, func(i, j int) bool {
		a, b := s.Sandboxes[i], s.Sandboxes[j]
		if a.CreatedAt.Equal(b.CreatedAt) {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	sort.SliceStable(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.CreatedAt.Equal(b.CreatedAt) {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	return s
}

// ActiveSandbox is the newest sandbox, nil if none.
func (s *PodState) ActiveSandbox() *runtime.SandboxStatus {
	if s == nil || len(s.Sandboxes) == 0 {
		return nil
	}
	return s.Sandboxes[0]
}

// Find returns the newest container named name in any sandbox.
func (s *PodState) Find(name string) *runtime.ContainerStatus {
	if s == nil {
		return nil
	}
	for _, c := range s.Containers {
		if ContainerName(c) == name {
			return c
		}
	}
	return nil
}

// FindActive returns the newest container named name in the newest sandbox.
func (s *PodState) FindActive(name string) *runtime.ContainerStatus {
	sb := s.ActiveSandbox()
	if sb == nil {
		return nil
	}
	for _, c := range s.Containers {
		if c.SandboxID == sb.ID && ContainerName(c) == name {
			return c
		}
	}
	return nil
}

// ByName returns the containers named name, newest first.
func (s *PodState) ByName(name string) []*runtime.ContainerStatus {
	if s == nil {
		return nil
	}
	var out []*runtime.ContainerStatus
	for _, c := range s.Containers {
		if ContainerName(c) == name {
			out = append(out, c)
		}
	}
	return out
}

// Running returns the running (or unknown-state) containers.
func (s *PodState) Running() []*runtime.ContainerStatus {
	if s == nil {
		return nil
	}
	var out []*runtime.ContainerStatus
	for _, c := range s.Containers {
		if c.State == runtime.ContainerRunning || c.State == runtime.ContainerUnknown || c.State == runtime.ContainerCreated {
			out = append(out, c)
		}
	}
	return out
}

// HasAnyActiveRegularContainer: a regular container exists in the newest
// sandbox, which means initialization completed once.
func (s *PodState) HasAnyActiveRegularContainer(pod *v1.Pod) bool {
	for i := range pod.Spec.Containers {
		if s.FindActive(pod.Spec.Containers[i].Name) != nil {
			return true
		}
	}
	return false
}

// HasAnyRegularContainerCreated: any regular container was created, ran or exited.
func (s *PodState) HasAnyRegularContainerCreated(pod *v1.Pod) bool {
	for i := range pod.Spec.Containers {
		c := s.Find(pod.Spec.Containers[i].Name)
		if c != nil && c.State != runtime.ContainerUnknown {
			return true
		}
	}
	return false
}

// SandboxChanged tells whether a new sandbox must be created (as upstream's
// PodSandboxChanged): the attempt for it, the id of the current one and the
// reason (the PodReadyToStartContainers message).
func (s *PodState) SandboxChanged() (changed bool, attempt uint32, sandboxID, reason string) {
	if s == nil || len(s.Sandboxes) == 0 {
		return true, 0, "", MsgNoPodSandbox
	}
	ready := 0
	for _, sb := range s.Sandboxes {
		if sb.State == runtime.SandboxReady {
			ready++
		}
	}
	latest := s.Sandboxes[0]
	if ready > 1 {
		return true, latest.Attempt + 1, latest.ID, MsgMultipleSandboxes
	}
	if latest.State != runtime.SandboxReady {
		return true, latest.Attempt + 1, latest.ID, MsgSandboxNotReady
	}
	return false, latest.Attempt, latest.ID, ""
}

// IPs returns the pod IPs: the sandbox's IP, or the host IP when the
// runtime has none (host-network style runtimes).
func (s *PodState) IPs(hostIP string) []string {
	sb := s.ActiveSandbox()
	if sb == nil {
		return nil
	}
	if sb.IP != "" {
		return []string{sb.IP}
	}
	if hostIP != "" {
		return []string{hostIP}
	}
	return nil
}

// ContainerName is the pod-spec container name of a runtime container.
func ContainerName(c *runtime.ContainerStatus) string {
	if n := c.Labels[LabelContainerName]; n != "" {
		return n
	}
	return c.Name
}

// RestartCount of a runtime container (its attempt).
func RestartCount(c *runtime.ContainerStatus) int32 {
	if v, ok := c.Annotations[AnnotationRestartCount]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return int32(n)
		}
	}
	return int32(c.Attempt)
}

// HashContainer hashes the fields whose change restarts a running container
// (name and image, as upstream since 1.31).
func HashContainer(c *v1.Container) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s", c.Name, c.Image)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// ContainerChanged reports whether the running container was created from
// another definition.
func ContainerChanged(spec *v1.Container, c *runtime.ContainerStatus) bool {
	h, ok := c.Annotations[AnnotationContainerHash]
	return ok && h != HashContainer(spec)
}

// WithStarted is a copy of s in which the containers with the given
// runtime ids are running: what the kubelet knows right after starting
// them, even if one has exited since.
func (s *PodState) WithStarted(ids map[string]bool) *PodState {
	if s == nil {
		return nil
	}
	out := *s
	out.Containers = make([]*runtime.ContainerStatus, len(s.Containers))
	for i, c := range s.Containers {
		if ids[c.ID] && c.State == runtime.ContainerExited {
			cc := *c
			cc.State = runtime.ContainerRunning
			cc.FinishedAt, cc.ExitCode, cc.Signal, cc.Reason, cc.Message = time.Time{}, 0, 0, "", ""
			c = &cc
		}
		out.Containers[i] = c
	}
	return &out
}
