package scheduler

import (
	"fmt"
	"math/rand/v2"

	v1 "k8s.io/api/core/v1"
)

// Preemption verdicts (upstream's DefaultPreemption PostFilter texts).
const (
	preemptionNotHelpful = "Preemption is not helpful for scheduling"
	preemptionNoVictims  = "No preemption victims found for incoming pod"
	preemptionNever      = "not eligible due to preemptionPolicy=Never."
)

// schedulePod decides where pod goes: the name of the best node, or a
// *FitError saying why no node fits, or ErrNoNodesAvailable. It only reads
// nodes (the cache's list, under its read lock) and is the whole "decide"
// half of a scheduling cycle.
func schedulePod(pi *podInfo, nodes []*NodeInfo, rnd *rand.Rand) (string, error) {
	if len(nodes) == 0 {
		return "", ErrNoNodesAvailable
	}
	fe := &FitError{NumAllNodes: len(nodes), NodeStatus: map[string]*Status{}}
	s, st := newCycleState(pi)
	if st != nil {
		fe.PreFilterMsg = st.Reasons[0]
		fe.Absent = st
		fe.PostFilterMsg = postFilter(pi.pod, fe)
		return "", fe
	}

	candidates := nodes
	if s.nodeNames != nil {
		candidates = make([]*NodeInfo, 0, s.nodeNames.Len())
		for _, n := range nodes {
			if s.nodeNames.Has(n.node.Name) {
				candidates = append(candidates, n)
			}
		}
		fe.Absent = newStatus(UnschedulableAndUnresolvable, NodeAffinity, fmt.Sprintf("node(s) didn't satisfy plugin(s) %v", []string{NodeAffinity}))
	}

	feasible := make([]*NodeInfo, 0, len(candidates))
	for _, n := range candidates {
		if st := runFilters(s, n); st != nil {
			fe.NodeStatus[n.node.Name] = st
			continue
		}
		feasible = append(feasible, n)
	}
	switch len(feasible) {
	case 0:
		fe.PostFilterMsg = postFilter(pi.pod, fe)
		return "", fe
	case 1:
		return feasible[0].node.Name, nil
	}
	return selectHost(feasible, scoreNodes(s, feasible, nodes), rnd), nil
}

// selectHost picks the highest score, a random one among equals (upstream
// samples ties uniformly).
func selectHost(nodes []*NodeInfo, scores []int64, rnd *rand.Rand) string {
	best, ties := 0, 1
	for i := 1; i < len(nodes); i++ {
		switch {
		case scores[i] > scores[best]:
			best, ties = i, 1
		case scores[i] == scores[best]:
			ties++
			if rnd.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return nodes[best].node.Name
}

// postFilter is upstream's DefaultPreemption verdict when no node fits.
// Only nodes rejected as Unschedulable (resources, ports) could be helped
// by evicting lower-priority pods; k1s does not preempt, so each such node
// reports that no victim was found.
func postFilter(pod *v1.Pod, fe *FitError) string {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return "preemption: " + preemptionNever
	}
	pe := &FitError{
		NumAllNodes: fe.NumAllNodes,
		NodeStatus:  map[string]*Status{},
		Absent:      newStatus(UnschedulableAndUnresolvable, "", preemptionNotHelpful),
	}
	for name, st := range fe.NodeStatus {
		if st.Code == Unschedulable {
			pe.NodeStatus[name] = newStatus(UnschedulableAndUnresolvable, "", preemptionNoVictims)
		}
	}
	return "preemption: " + pe.Error()
}
