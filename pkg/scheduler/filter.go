package scheduler

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Plugin names and rejection reasons, as upstream's default plugins spell
// them (pkg/scheduler/framework/plugins/*).
const (
	NodeName          = "NodeName"
	NodeUnschedulable = "NodeUnschedulable"
	TaintToleration   = "TaintToleration"
	NodeAffinity      = "NodeAffinity"
	NodePorts         = "NodePorts"
	NodeResourcesFit  = "NodeResourcesFit"

	ErrReasonNodeName         = "node(s) didn't match the requested node name"
	ErrReasonUnschedulable    = "node(s) were unschedulable"
	ErrReasonTaint            = "node(s) had untolerated taint(s)"
	ErrReasonAffinity         = "node(s) didn't match Pod's node affinity/selector"
	ErrReasonAffinityConflict = "pod affinity terms conflict"
	ErrReasonPorts            = "node(s) didn't have free ports for the requested pod ports"
	ErrReasonTooManyPods      = "Too many pods"
)

// cycleState is what the filters and scores need from one pod, computed
// once per scheduling attempt (upstream's PreFilter / PreScore state).
type cycleState struct {
	pod      *v1.Pod
	info     *podInfo
	required nodeaffinity.RequiredNodeAffinity
	// nodeNames, when not nil, is the only nodes the pod's node affinity
	// allows (matchFields metadata.name, as DaemonSet pods use).
	nodeNames sets.Set[string]
	preferred *nodeaffinity.PreferredSchedulingTerms
	// preferNoSchedule are the tolerations that count against PreferNoSchedule taints.
	preferNoSchedule []v1.Toleration
}

func newCycleState(pi *podInfo) (*cycleState, *Status) {
	pod := pi.pod
	s := &cycleState{pod: pod, info: pi, required: nodeaffinity.GetRequiredNodeAffinity(pod)}
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == v1.TaintEffectPreferNoSchedule {
			s.preferNoSchedule = append(s.preferNoSchedule, t)
		}
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		if terms := a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution; len(terms) > 0 {
			// Parsing errors are ignored as upstream does (validation rejects them).
			s.preferred, _ = nodeaffinity.NewPreferredSchedulingTerms(terms)
		}
		if req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			names, ok := nodeNamesOf(req.NodeSelectorTerms)
			if !ok {
				return nil, newStatus(UnschedulableAndUnresolvable, NodeAffinity, ErrReasonAffinityConflict)
			}
			s.nodeNames = names
		}
	}
	return s, nil
}

// nodeNamesOf is NodeAffinity's PreFilter: when every term names nodes with
// matchFields metadata.name In, only those nodes need filtering. ok is false
// when the terms' names cannot all hold.
func nodeNamesOf(terms []v1.NodeSelectorTerm) (names sets.Set[string], ok bool) {
	if len(terms) == 0 {
		return nil, true
	}
	for _, t := range terms {
		var termNames sets.Set[string]
		for _, r := range t.MatchFields {
			if r.Key == metav1.ObjectNameField && r.Operator == v1.NodeSelectorOpIn {
				s := sets.New(r.Values...)
				if termNames == nil {
					termNames = s
				} else {
					termNames = termNames.Intersection(s)
				}
			}
		}
		if termNames == nil {
			return nil, true
		}
		names = names.Union(termNames)
	}
	if names != nil && names.Len() == 0 {
		return nil, false
	}
	return names, true
}

// filter is one Filter plugin; nil means the node passes.
type filter struct {
	name string
	fn   func(s *cycleState, n *NodeInfo) *Status
}

// filters run in the order of upstream's default profile; the first
// rejection is the node's status.
var filters = []filter{
	{NodeName, filterNodeName},
	{NodeUnschedulable, filterUnschedulable},
	{TaintToleration, filterTaints},
	{NodeAffinity, filterAffinity},
	{NodePorts, filterPorts},
	{NodeResourcesFit, filterResources},
}

func runFilters(s *cycleState, n *NodeInfo) *Status {
	for _, f := range filters {
		if st := f.fn(s, n); st != nil {
			st.Plugin = f.name
			return st
		}
	}
	return nil
}

func filterNodeName(s *cycleState, n *NodeInfo) *Status {
	if s.pod.Spec.NodeName != "" && s.pod.Spec.NodeName != n.node.Name {
		return newStatus(UnschedulableAndUnresolvable, "", ErrReasonNodeName)
	}
	return nil
}

var unschedulableTaint = v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}

func filterUnschedulable(s *cycleState, n *NodeInfo) *Status {
	if !n.node.Spec.Unschedulable {
		return nil
	}
	// A pod that tolerates the unschedulable taint tolerates spec.unschedulable.
	if v1helper.TolerationsTolerateTaint(klog.Background(), s.pod.Spec.Tolerations, &unschedulableTaint, false) {
		return nil
	}
	return newStatus(UnschedulableAndUnresolvable, "", ErrReasonUnschedulable)
}

func doNotSchedule(t *v1.Taint) bool {
	return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
}

func filterTaints(s *cycleState, n *NodeInfo) *Status {
	if _, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), n.node.Spec.Taints, s.pod.Spec.Tolerations, doNotSchedule, false); untolerated {
		return newStatus(UnschedulableAndUnresolvable, "", ErrReasonTaint)
	}
	return nil
}

func filterAffinity(s *cycleState, n *NodeInfo) *Status {
	if ok, _ := s.required.Match(n.node); !ok {
		return newStatus(UnschedulableAndUnresolvable, "", ErrReasonAffinity)
	}
	return nil
}

func filterPorts(s *cycleState, n *NodeInfo) *Status {
	for _, p := range s.info.hostPorts {
		if n.usedPorts.CheckConflict(p.HostIP, string(p.Protocol), p.HostPort) {
			return newStatus(Unschedulable, "", ErrReasonPorts)
		}
	}
	return nil
}

// filterResources is NodeResourcesFit: every insufficient resource is a
// reason; a request larger than the whole node is unresolvable.
func filterResources(s *cycleState, n *NodeInfo) *Status {
	var reasons []string
	code := Unschedulable
	insufficient := func(reason string, req, used, alloc int64) {
		if req > 0 && req > alloc-used {
			reasons = append(reasons, reason)
			if req > alloc {
				code = UnschedulableAndUnresolvable
			}
		}
	}
	if len(n.pods)+1 > n.allowedPods {
		reasons = append(reasons, ErrReasonTooManyPods)
	}
	r := s.info.requests
	insufficient("Insufficient cpu", r.MilliCPU, n.requested.MilliCPU, n.allocatable.MilliCPU)
	insufficient("Insufficient memory", r.Memory, n.requested.Memory, n.allocatable.Memory)
	insufficient("Insufficient ephemeral-storage", r.EphemeralStorage, n.requested.EphemeralStorage, n.allocatable.EphemeralStorage)
	for name, q := range r.Scalar {
		insufficient(fmt.Sprintf("Insufficient %v", name), q, n.requested.Scalar[name], n.allocatable.Scalar[name])
	}
	if len(reasons) == 0 {
		return nil
	}
	return newStatus(code, "", reasons...)
}
