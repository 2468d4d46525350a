package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Test objects.

type nodeOpt func(*v1.Node)

func makeNode(name string, opts ...nodeOpt) *v1.Node {
	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
		Status: v1.NodeStatus{
			Allocatable: v1.ResourceList{
				v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi"),
				v1.ResourcePods: resource.MustParse("110"),
			},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func cordoned(n *v1.Node) {
	n.Spec.Unschedulable = true
	n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule})
}

func tainted(key string, effect v1.TaintEffect) nodeOpt {
	return func(n *v1.Node) { n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Effect: effect}) }
}

func labeled(k, v string) nodeOpt {
	return func(n *v1.Node) { n.Labels[k] = v }
}

func allocatable(cpu, mem, pods string) nodeOpt {
	return func(n *v1.Node) {
		n.Status.Allocatable = v1.ResourceList{
			v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem), v1.ResourcePods: resource.MustParse(pods),
		}
	}
}

type podOpt func(*v1.Pod)

var podSeq int

func makePod(name string, opts ...podOpt) *v1.Pod {
	podSeq++
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%s-%d", name, podSeq))},
		Spec: v1.PodSpec{
			SchedulerName: DefaultSchedulerName,
			Containers:    []v1.Container{{Name: "c", Image: "busybox"}},
		},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func requests(cpu, mem string) podOpt {
	return func(p *v1.Pod) {
		rl := v1.ResourceList{}
		if cpu != "" {
			rl[v1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			rl[v1.ResourceMemory] = resource.MustParse(mem)
		}
		p.Spec.Containers[0].Resources.Requests = rl
	}
}

func onNode(n string) podOpt { return func(p *v1.Pod) { p.Spec.NodeName = n } }

func tolerates(key string, effect v1.TaintEffect) podOpt {
	return func(p *v1.Pod) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: key, Operator: v1.TolerationOpExists, Effect: effect})
	}
}

func nodeSelector(k, v string) podOpt {
	return func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{k: v} }
}

func hostPort(port int32) podOpt {
	return func(p *v1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, v1.ContainerPort{ContainerPort: port, HostPort: port, Protocol: v1.ProtocolTCP})
	}
}

func ownedBy(kind string, uid types.UID) podOpt {
	return func(p *v1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: "owner", UID: uid, Controller: ptr.To(true)}}
	}
}

func nodeAffinityFields(names ...string) podOpt {
	return func(p *v1.Pod) {
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: names}}}},
		}}}
	}
}

func preferNode(label, value string, weight int32) podOpt {
	return func(p *v1.Pod) {
		if p.Spec.Affinity == nil {
			p.Spec.Affinity = &v1.Affinity{}
		}
		if p.Spec.Affinity.NodeAffinity == nil {
			p.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{}
		}
		na := p.Spec.Affinity.NodeAffinity
		na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution, v1.PreferredSchedulingTerm{
			Weight:     weight,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: label, Operator: v1.NodeSelectorOpIn, Values: []string{value}}}},
		})
	}
}

func buildCache(nodes []*v1.Node, pods []*v1.Pod) *nodeCache {
	c := newNodeCache()
	for _, n := range nodes {
		c.setNode(n)
	}
	for _, p := range pods {
		c.setPod(p)
	}
	return c
}

func TestSchedulePod(t *testing.T) {
	const (
		notHelpful = "Preemption is not helpful for scheduling"
		noVictims  = "No preemption victims found for incoming pod"
	)
	tests := []struct {
		name  string
		nodes []*v1.Node
		pods  []*v1.Pod
		pod   *v1.Pod
		// wantHost is the node chosen ("" when the pod fits nowhere).
		wantHost string
		wantErr  string
	}{
		{
			name:    "no nodes",
			pod:     makePod("p"),
			wantErr: "no nodes available to schedule pods",
		},
		{
			name:     "one node",
			nodes:    []*v1.Node{makeNode("a")},
			pod:      makePod("p"),
			wantHost: "a",
		},
		{
			// The reference cluster's text after kubectl cordon.
			name:    "cordoned",
			nodes:   []*v1.Node{makeNode("vm", cordoned)},
			pod:     makePod("p"),
			wantErr: "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 " + notHelpful + ".",
		},
		{
			name:     "cordoned but tolerates unschedulable (DaemonSet pod)",
			nodes:    []*v1.Node{makeNode("vm", cordoned)},
			pod:      makePod("p", tolerates(v1.TaintNodeUnschedulable, v1.TaintEffectNoSchedule)),
			wantHost: "vm",
		},
		{
			name:    "untolerated taint",
			nodes:   []*v1.Node{makeNode("vm", tainted("dedicated", v1.TaintEffectNoSchedule))},
			pod:     makePod("p"),
			wantErr: "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 " + notHelpful + ".",
		},
		{
			name:    "unreachable NoExecute taint",
			nodes:   []*v1.Node{makeNode("vm", tainted(v1.TaintNodeUnreachable, v1.TaintEffectNoExecute))},
			pod:     makePod("p"),
			wantErr: "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 " + notHelpful + ".",
		},
		{
			name:     "PreferNoSchedule does not filter",
			nodes:    []*v1.Node{makeNode("vm", tainted("soft", v1.TaintEffectPreferNoSchedule))},
			pod:      makePod("p"),
			wantHost: "vm",
		},
		{
			name:     "tolerated taint",
			nodes:    []*v1.Node{makeNode("vm", tainted("dedicated", v1.TaintEffectNoSchedule))},
			pod:      makePod("p", tolerates("dedicated", v1.TaintEffectNoSchedule)),
			wantHost: "vm",
		},
		{
			name:     "node selector picks the labelled node",
			nodes:    []*v1.Node{makeNode("a"), makeNode("b", labeled("disk", "ssd")), makeNode("c")},
			pod:      makePod("p", nodeSelector("disk", "ssd")),
			wantHost: "b",
		},
		{
			name:    "node selector matches nothing",
			nodes:   []*v1.Node{makeNode("a"), makeNode("b")},
			pod:     makePod("p", nodeSelector("disk", "ssd")),
			wantErr: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 " + notHelpful + ".",
		},
		{
			name:    "reasons counted and sorted",
			nodes:   []*v1.Node{makeNode("a", cordoned), makeNode("b", tainted("x", v1.TaintEffectNoSchedule)), makeNode("c", tainted("x", v1.TaintEffectNoExecute)), makeNode("d", allocatable("500m", "1Gi", "110"))},
			pod:     makePod("p", requests("1", "")),
			wantErr: "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable, 2 node(s) had untolerated taint(s). preemption: 0/4 nodes are available: 4 " + notHelpful + ".",
		},
		{
			name:    "insufficient cpu and memory on a full node",
			nodes:   []*v1.Node{makeNode("a")},
			pods:    []*v1.Pod{makePod("big", onNode("a"), requests("1500m", "3Gi"))},
			pod:     makePod("p", requests("1", "2Gi")),
			wantErr: "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 nodes are available: 1 " + noVictims + ".",
		},
		{
			name:    "too many pods",
			nodes:   []*v1.Node{makeNode("a", allocatable("2", "4Gi", "1"))},
			pods:    []*v1.Pod{makePod("x", onNode("a"))},
			pod:     makePod("p"),
			wantErr: "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 " + noVictims + ".",
		},
		{
			name:    "host port taken",
			nodes:   []*v1.Node{makeNode("a"), makeNode("b", cordoned)},
			pods:    []*v1.Pod{makePod("x", onNode("a"), hostPort(8080))},
			pod:     makePod("p", hostPort(8080)),
			wantErr: "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 1 " + noVictims + ", 1 " + notHelpful + ".",
		},
		{
			name:     "resources go to the node with room",
			nodes:    []*v1.Node{makeNode("a"), makeNode("b")},
			pods:     []*v1.Pod{makePod("x", onNode("a"), requests("1500m", ""))},
			pod:      makePod("p", requests("1", "")),
			wantHost: "b",
		},
		{
			name:    "terminating pods still hold resources",
			nodes:   []*v1.Node{makeNode("a")},
			pods:    []*v1.Pod{makePod("x", onNode("a"), requests("2", ""), func(p *v1.Pod) { p.DeletionTimestamp = &metav1.Time{} })},
			pod:     makePod("p", requests("1", "")),
			wantErr: "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 " + noVictims + ".",
		},
		{
			name:  "preemptionPolicy Never",
			nodes: []*v1.Node{makeNode("a", allocatable("1", "1Gi", "110"))},
			pod: makePod("p", requests("2", ""), func(p *v1.Pod) {
				p.Spec.PreemptionPolicy = ptr.To(v1.PreemptNever)
			}),
			wantErr: "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
		},
		{
			name:     "matchFields narrows to one node (DaemonSet pod)",
			nodes:    []*v1.Node{makeNode("a"), makeNode("b"), makeNode("c")},
			pod:      makePod("p", nodeAffinityFields("b")),
			wantHost: "b",
		},
		{
			name:    "matchFields node rejects",
			nodes:   []*v1.Node{makeNode("a"), makeNode("b", tainted("x", v1.TaintEffectNoSchedule)), makeNode("c")},
			pod:     makePod("p", nodeAffinityFields("b")),
			wantErr: "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 3 " + notHelpful + ".",
		},
		{
			name:    "matchFields names a missing node",
			nodes:   []*v1.Node{makeNode("a"), makeNode("b")},
			pod:     makePod("p", nodeAffinityFields("gone")),
			wantErr: "0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/2 nodes are available: 2 " + notHelpful + ".",
		},
		{
			name:  "conflicting matchFields terms",
			nodes: []*v1.Node{makeNode("a"), makeNode("b")},
			pod: makePod("p", func(p *v1.Pod) {
				p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
					NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{
						{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}},
						{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"b"}},
					}}},
				}}}
			}),
			wantErr: "0/2 nodes are available: pod affinity terms conflict. preemption: 0/2 nodes are available: 2 " + notHelpful + ".",
		},
		{
			name:     "preferred node affinity",
			nodes:    []*v1.Node{makeNode("a"), makeNode("b", labeled("zone", "z2")), makeNode("c")},
			pod:      makePod("p", preferNode("zone", "z2", 10)),
			wantHost: "b",
		},
		{
			name:     "PreferNoSchedule is avoided",
			nodes:    []*v1.Node{makeNode("a", tainted("soft", v1.TaintEffectPreferNoSchedule)), makeNode("b")},
			pod:      makePod("p"),
			wantHost: "b",
		},
		{
			name:     "least allocated",
			nodes:    []*v1.Node{makeNode("a"), makeNode("b")},
			pods:     []*v1.Pod{makePod("x", onNode("b"), requests("1", "1Gi"))},
			pod:      makePod("p"),
			wantHost: "a",
		},
		{
			name:  "spreads one owner's pods",
			nodes: []*v1.Node{makeNode("a"), makeNode("b")},
			// a has more free resources but already runs two of the owner's pods.
			pods: []*v1.Pod{
				makePod("r1", onNode("a"), ownedBy("ReplicaSet", "rs1")), makePod("r2", onNode("a"), ownedBy("ReplicaSet", "rs1")),
				makePod("other", onNode("b"), requests("1", "1Gi")),
			},
			pod:      makePod("p", ownedBy("ReplicaSet", "rs1")),
			wantHost: "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := buildCache(tt.nodes, tt.pods)
			host, err := schedulePod(newPodInfo(tt.pod), c.list, rand.New(rand.NewPCG(1, 2)))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("error:\n got: %s\nwant: %s", gotErr, tt.wantErr)
			}
			if host != tt.wantHost {
				t.Errorf("host = %q, want %q", host, tt.wantHost)
			}
		})
	}
}

// After assuming each decision, one owner's pods end up evenly spread.
func TestSpreadingAcrossNodes(t *testing.T) {
	nodes := []*v1.Node{makeNode("a"), makeNode("b"), makeNode("c")}
	c := buildCache(nodes, nil)
	rnd := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for i := 0; i < 9; i++ {
		pi := newPodInfo(makePod(fmt.Sprintf("p%d", i), ownedBy("ReplicaSet", "rs1")))
		host, err := schedulePod(pi, c.list, rnd)
		if err != nil {
			t.Fatal(err)
		}
		c.assume(pi, host)
		counts[host]++
	}
	for _, n := range nodes {
		if counts[n.Name] != 3 {
			t.Errorf("pods per node = %v, want 3 each", counts)
			break
		}
	}
}
