package scheduler

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// clusterEvent is a change that may let a rejected pod fit.
type clusterEvent struct {
	// oldNode is nil for a node that was added; newNode is nil for pod events.
	oldNode, newNode *v1.Node
	// assignedPodGone is a bound pod that was deleted or finished.
	assignedPodGone *v1.Pod
}

// schedulableAfter is upstream's queueing hints, small: whether ev may make
// pod schedulable, given the plugins that rejected it. A pod is only retried
// for events that concern what stopped it, so an unrelated change (a node's
// label, a kubelet's Ready flip) does not bring a new FailedScheduling.
func schedulableAfter(pod *v1.Pod, rejectors sets.Set[string], ev clusterEvent) bool {
	for plugin := range rejectors {
		if hint(plugin, pod, ev) {
			return true
		}
	}
	return false
}

func hint(plugin string, pod *v1.Pod, ev clusterEvent) bool {
	if gone := ev.assignedPodGone; gone != nil {
		switch plugin {
		case NodeResourcesFit:
			return true
		case NodePorts:
			return portsConflict(hostPortsOf(gone), hostPortsOf(pod))
		}
		return false
	}
	old, cur := ev.oldNode, ev.newNode
	switch plugin {
	case NodeName:
		return old == nil && (pod.Spec.NodeName == "" || pod.Spec.NodeName == cur.Name)
	case NodeUnschedulable:
		// Uncordon clears spec.unschedulable first; the node lifecycle
		// controller removes the unschedulable taint right after. Retrying
		// only once both are gone saves a spurious "untolerated taint(s)".
		return !cordonedFor(pod, cur) && (old == nil || cordonedFor(pod, old))
	case TaintToleration:
		return !untoleratedFor(pod, cur) && (old == nil || untoleratedFor(pod, old))
	case NodeAffinity:
		req := nodeaffinity.GetRequiredNodeAffinity(pod)
		now, _ := req.Match(cur)
		if !now {
			return false
		}
		if old == nil {
			return true
		}
		before, _ := req.Match(old)
		return !before
	case NodePorts:
		return old == nil
	case NodeResourcesFit:
		return old == nil || !equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable)
	}
	return true
}

func cordonedFor(pod *v1.Pod, n *v1.Node) bool {
	if v1helper.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, &unschedulableTaint, false) {
		return false
	}
	if n.Spec.Unschedulable {
		return true
	}
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].MatchTaint(&unschedulableTaint) {
			return true
		}
	}
	return false
}

func untoleratedFor(pod *v1.Pod, n *v1.Node) bool {
	_, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, pod.Spec.Tolerations, doNotSchedule, false)
	return untolerated
}

func portsConflict(a, b []v1.ContainerPort) bool {
	for _, p := range a {
		for _, q := range b {
			if p.HostPort != q.HostPort || protocolOf(p) != protocolOf(q) {
				continue
			}
			if p.HostIP == q.HostIP || anyIP(p.HostIP) || anyIP(q.HostIP) {
				return true
			}
		}
	}
	return false
}

func protocolOf(p v1.ContainerPort) v1.Protocol {
	if p.Protocol == "" {
		return v1.ProtocolTCP
	}
	return p.Protocol
}

func anyIP(ip string) bool { return ip == "" || ip == "0.0.0.0" }
