package scheduler

import (
	"math"

	v1 "k8s.io/api/core/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
)

// maxNodeScore is upstream's framework.MaxNodeScore.
const maxNodeScore = 100

// Score plugin weights of upstream's default profile. Not scored here:
// InterPodAffinity, NodeResourcesBalancedAllocation, ImageLocality (README).
const (
	weightTaintToleration   = 3
	weightNodeAffinity      = 2
	weightPodTopologySpread = 2
	weightLeastAllocated    = 1
)

// System default topology spreading (upstream's systemDefaultConstraints),
// applied to pods that declare no constraints of their own.
var defaultSpread = []struct {
	key     string
	maxSkew int64
}{
	{v1.LabelHostname, 3},
	{v1.LabelTopologyZone, 5},
}

// scoreNodes returns the weighted total score of each feasible node.
// all is every node (zone spreading counts pods on infeasible nodes too).
func scoreNodes(s *cycleState, feasible, all []*NodeInfo) []int64 {
	total := make([]int64, len(feasible))
	raw := make([]int64, len(feasible))

	// TaintToleration: fewer intolerable PreferNoSchedule taints is better.
	for i, n := range feasible {
		raw[i] = countIntolerablePreferNoSchedule(n.node.Spec.Taints, s.preferNoSchedule)
	}
	addNormalized(total, raw, weightTaintToleration, true)

	// NodeAffinity: sum of the weights of matching preferred terms.
	if s.preferred != nil {
		for i, n := range feasible {
			raw[i] = s.preferred.Score(n.node)
		}
		addNormalized(total, raw, weightNodeAffinity, false)
	}

	// PodTopologySpread with the system default constraints.
	if s.info.spreadOwner != "" && len(s.pod.Spec.TopologySpreadConstraints) == 0 {
		spread := spreadScores(s, feasible, all)
		for i := range total {
			total[i] += weightPodTopologySpread * spread[i]
		}
	}

	// NodeResourcesFit, LeastAllocated over cpu and memory (weight 1 each).
	for i, n := range feasible {
		cpu := leastRequested(n.nonZero.MilliCPU+s.info.nonZero.MilliCPU, n.allocatable.MilliCPU)
		mem := leastRequested(n.nonZero.Memory+s.info.nonZero.Memory, n.allocatable.Memory)
		var score, weights int64
		if n.allocatable.MilliCPU != 0 {
			score, weights = score+cpu, weights+1
		}
		if n.allocatable.Memory != 0 {
			score, weights = score+mem, weights+1
		}
		if weights > 0 {
			total[i] += weightLeastAllocated * (score / weights)
		}
	}
	return total
}

func countIntolerablePreferNoSchedule(taints []v1.Taint, tolerations []v1.Toleration) int64 {
	var n int64
	for i := range taints {
		if taints[i].Effect != v1.TaintEffectPreferNoSchedule {
			continue
		}
		if !v1helper.TolerationsTolerateTaint(klog.Background(), tolerations, &taints[i], false) {
			n++
		}
	}
	return n
}

// addNormalized scales raw scores to 0..100 against the highest (upstream's
// helper.DefaultNormalizeScore) and adds them with weight.
func addNormalized(total, raw []int64, weight int64, reverse bool) {
	var max int64
	for _, r := range raw {
		if r > max {
			max = r
		}
	}
	for i, r := range raw {
		var s int64
		switch {
		case max == 0 && reverse:
			s = maxNodeScore
		case max == 0:
			s = 0
		default:
			s = maxNodeScore * r / max
			if reverse {
				s = maxNodeScore - s
			}
		}
		total[i] += weight * s
	}
}

func leastRequested(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * maxNodeScore / capacity
}

// spreadScores is PodTopologySpread's Score and NormalizeScore for the
// system default constraints: nodes with fewer pods of the same owner (on
// the node, in its zone) score higher.
func spreadScores(s *cycleState, feasible, all []*NodeInfo) []int64 {
	uid := s.info.spreadOwner
	// Domain sizes count the feasible nodes (hostname) and their zones.
	zones := map[string]int64{}
	for _, n := range feasible {
		if z, ok := n.node.Labels[v1.LabelTopologyZone]; ok {
			zones[z] = 0
		}
	}
	if len(zones) > 0 {
		for _, n := range all {
			z, ok := n.node.Labels[v1.LabelTopologyZone]
			if !ok {
				continue
			}
			if _, counted := zones[z]; !counted {
				continue
			}
			if match, _ := s.required.Match(n.node); !match {
				continue
			}
			zones[z] += int64(n.owners[uid])
		}
	}
	hostWeight := math.Log(float64(len(feasible) + 2))
	zoneWeight := math.Log(float64(len(zones) + 2))

	raw := make([]int64, len(feasible))
	for i, n := range feasible {
		var score float64
		for _, c := range defaultSpread {
			if _, ok := n.node.Labels[c.key]; !ok {
				continue
			}
			if c.key == v1.LabelHostname {
				score += float64(n.owners[uid])*hostWeight + float64(c.maxSkew-1)
			} else {
				score += float64(zones[n.node.Labels[c.key]])*zoneWeight + float64(c.maxSkew-1)
			}
		}
		raw[i] = int64(math.Round(score))
	}
	minS, maxS := int64(math.MaxInt64), int64(0)
	for _, r := range raw {
		minS, maxS = min(minS, r), max(maxS, r)
	}
	out := make([]int64, len(raw))
	for i, r := range raw {
		if maxS == 0 {
			out[i] = maxNodeScore
			continue
		}
		out[i] = maxNodeScore * (maxS + minS - r) / maxS
	}
	return out
}
