package scheduler

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"
)

// Resources are amounts of schedulable resources (upstream's framework.Resource).
type Resources struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// Scalar holds extended resources and hugepages.
	Scalar map[v1.ResourceName]int64
}

func (r *Resources) add(o Resources, sign int64) {
	r.MilliCPU += sign * o.MilliCPU
	r.Memory += sign * o.Memory
	r.EphemeralStorage += sign * o.EphemeralStorage
	for n, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[n] += sign * v
	}
}

func resourcesOf(rl v1.ResourceList) (r Resources, pods int) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case v1.ResourceMemory:
			r.Memory = q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage = q.Value()
		case v1.ResourcePods:
			pods = int(q.Value())
		default:
			if r.Scalar == nil {
				r.Scalar = map[v1.ResourceName]int64{}
			}
			r.Scalar[name] = q.Value()
		}
	}
	return r, pods
}

// Requests without a value count as 100m CPU and 200Mi memory when scoring
// (upstream's schedutil.DefaultMilliCPURequest / DefaultMemoryRequest), so
// that BestEffort pods spread too.
var nonZeroDefaults = v1.ResourceList{
	v1.ResourceCPU:    *resource.NewMilliQuantity(100, resource.DecimalSI),
	v1.ResourceMemory: *resource.NewQuantity(200*1024*1024, resource.DecimalSI),
}

// podInfo is what the scheduler derives from a pod once.
type podInfo struct {
	pod *v1.Pod
	// requests as the filter counts them (init containers, sidecars,
	// overhead and pod-level resources included).
	requests Resources
	// nonZero: requests with the scoring defaults filled in.
	nonZero Resources
	// hostPorts the pod binds on its node.
	hostPorts []v1.ContainerPort
	// spreadOwner is the controller whose pods are spread across nodes,
	// empty when the pod has none (see spreadOwnerOf).
	spreadOwner types.UID
}

func newPodInfo(pod *v1.Pod) *podInfo {
	req, _ := resourcesOf(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	nz, _ := resourcesOf(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{NonMissingContainerRequests: nonZeroDefaults}))
	return &podInfo{pod: pod, requests: req, nonZero: nz, hostPorts: hostPortsOf(pod), spreadOwner: spreadOwnerOf(pod)}
}

// spreadOwnerOf returns the controller that upstream's default topology
// spreading would derive a selector from: ReplicaSets, ReplicationControllers
// and StatefulSets (Services too upstream; see README).
func spreadOwnerOf(pod *v1.Pod) types.UID {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return ""
	}
	switch ref.Kind {
	case "ReplicaSet", "ReplicationController", "StatefulSet":
		return ref.UID
	}
	return ""
}

// hostPortsOf lists the ports a pod binds on the host: regular containers
// and sidecars (restartable init containers), as upstream's GetHostPorts.
func hostPortsOf(pod *v1.Pod) []v1.ContainerPort {
	var ports []v1.ContainerPort
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			continue
		}
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// NodeInfo is one node with the pods bound (or assumed bound) to it and
// their aggregated requests. The cache keeps it up to date incrementally so
// that scheduling a pod never lists pods.
type NodeInfo struct {
	node        *v1.Node
	allocatable Resources
	allowedPods int

	pods      map[types.UID]*podInfo
	requested Resources
	nonZero   Resources
	usedPorts fwk.HostPortInfo
	// owners counts the non-terminating pods of each spread owner.
	owners map[types.UID]int
}

func newNodeInfo() *NodeInfo {
	return &NodeInfo{pods: map[types.UID]*podInfo{}, usedPorts: fwk.HostPortInfo{}, owners: map[types.UID]int{}}
}

func (n *NodeInfo) setNode(node *v1.Node) {
	n.node = node
	n.allocatable, n.allowedPods = resourcesOf(node.Status.Allocatable)
}

// Node returns the node object (nil while only pods reference the node).
func (n *NodeInfo) Node() *v1.Node { return n.node }

func (n *NodeInfo) addPod(pi *podInfo) {
	n.pods[pi.pod.UID] = pi
	n.requested.add(pi.requests, 1)
	n.nonZero.add(pi.nonZero, 1)
	for _, p := range pi.hostPorts {
		n.usedPorts.Add(p.HostIP, string(p.Protocol), p.HostPort)
	}
	if pi.spreadOwner != "" && pi.pod.DeletionTimestamp == nil {
		n.owners[pi.spreadOwner]++
	}
}

func (n *NodeInfo) removePod(uid types.UID) bool {
	pi, ok := n.pods[uid]
	if !ok {
		return false
	}
	delete(n.pods, uid)
	n.requested.add(pi.requests, -1)
	n.nonZero.add(pi.nonZero, -1)
	for _, p := range pi.hostPorts {
		n.usedPorts.Remove(p.HostIP, string(p.Protocol), p.HostPort)
	}
	if pi.spreadOwner != "" && pi.pod.DeletionTimestamp == nil {
		if n.owners[pi.spreadOwner]--; n.owners[pi.spreadOwner] <= 0 {
			delete(n.owners, pi.spreadOwner)
		}
	}
	return true
}
