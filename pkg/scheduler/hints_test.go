package scheduler

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

func TestSchedulableAfter(t *testing.T) {
	spec := func(n *v1.Node) { n.Spec.Unschedulable = true } // kubectl cordon, before the taint
	tests := []struct {
		name      string
		pod       *v1.Pod
		rejectors []string
		ev        clusterEvent
		want      bool
	}{
		{"uncordon: spec cleared, taint still there", makePod("p"), []string{NodeUnschedulable},
			clusterEvent{oldNode: makeNode("a", cordoned), newNode: makeNode("a", tainted(v1.TaintNodeUnschedulable, v1.TaintEffectNoSchedule))}, false},
		{"uncordon: taint removed too", makePod("p"), []string{NodeUnschedulable},
			clusterEvent{oldNode: makeNode("a", tainted(v1.TaintNodeUnschedulable, v1.TaintEffectNoSchedule)), newNode: makeNode("a")}, true},
		{"cordon", makePod("p"), []string{NodeUnschedulable},
			clusterEvent{oldNode: makeNode("a"), newNode: makeNode("a", spec)}, false},
		{"schedulable node added", makePod("p"), []string{NodeUnschedulable}, clusterEvent{newNode: makeNode("b")}, true},
		{"cordoned node added", makePod("p"), []string{NodeUnschedulable}, clusterEvent{newNode: makeNode("b", cordoned)}, false},
		{"taint removed", makePod("p"), []string{TaintToleration},
			clusterEvent{oldNode: makeNode("a", tainted("x", v1.TaintEffectNoSchedule)), newNode: makeNode("a")}, true},
		{"other taint remains", makePod("p"), []string{TaintToleration},
			clusterEvent{oldNode: makeNode("a", tainted("x", v1.TaintEffectNoSchedule), tainted("y", v1.TaintEffectNoExecute)), newNode: makeNode("a", tainted("y", v1.TaintEffectNoExecute))}, false},
		{"node Ready flip does not concern a taint rejection", makePod("p"), []string{TaintToleration},
			clusterEvent{oldNode: makeNode("a", tainted("x", v1.TaintEffectNoSchedule)), newNode: makeNode("a", tainted("x", v1.TaintEffectNoSchedule), func(n *v1.Node) {
				n.Status.Conditions[0].Status = v1.ConditionFalse
			})}, false},
		{"label now matches the selector", makePod("p", nodeSelector("disk", "ssd")), []string{NodeAffinity},
			clusterEvent{oldNode: makeNode("a"), newNode: makeNode("a", labeled("disk", "ssd"))}, true},
		{"label change that does not match", makePod("p", nodeSelector("disk", "ssd")), []string{NodeAffinity},
			clusterEvent{oldNode: makeNode("a"), newNode: makeNode("a", labeled("disk", "hdd"))}, false},
		{"bound pod gone frees resources", makePod("p"), []string{NodeResourcesFit}, clusterEvent{assignedPodGone: makePod("x", onNode("a"))}, true},
		{"bound pod gone does not concern a taint", makePod("p"), []string{TaintToleration}, clusterEvent{assignedPodGone: makePod("x", onNode("a"))}, false},
		{"bound pod gone frees the port", makePod("p", hostPort(80)), []string{NodePorts}, clusterEvent{assignedPodGone: makePod("x", onNode("a"), hostPort(80))}, true},
		{"bound pod gone held another port", makePod("p", hostPort(80)), []string{NodePorts}, clusterEvent{assignedPodGone: makePod("x", onNode("a"), hostPort(81))}, false},
		{"allocatable grew", makePod("p"), []string{NodeResourcesFit},
			clusterEvent{oldNode: makeNode("a"), newNode: makeNode("a", allocatable("4", "4Gi", "110"))}, true},
		{"any rejector may be helped", makePod("p"), []string{TaintToleration, NodeResourcesFit},
			clusterEvent{assignedPodGone: makePod("x", onNode("a"))}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := schedulableAfter(tt.pod, sets.New(tt.rejectors...), tt.ev); got != tt.want {
				t.Errorf("schedulableAfter = %v, want %v", got, tt.want)
			}
		})
	}
}
