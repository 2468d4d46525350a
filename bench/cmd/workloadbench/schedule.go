package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"k1s.dev/k1s/bench/internal/harness"
)

const fakeNodeLabel = "bench.k1s.dev/fake-node"

// schedule makes b.nodes Ready Node objects (nobody runs them: their pods
// stay Pending once bound) and measures the scheduler twice with
// b.schedPods pods each: created by b.clients clients while the nodes match
// (first create → last binding seen: creation and scheduling together), and
// created while no node matches their nodeSelector, then the nodes
// labelled (first label patch → last binding: the scheduler alone).
func (b *bench) schedule(ctx context.Context) error {
	row := fmt.Sprintf("scheduler throughput: %d pending pods, %d Nodes (API objects, no agent), %d clients, first create → last bound", b.schedPods, b.nodes, b.clients)
	rowCreate := "… of which the creates (all requests done) / last create → last bound"
	rowPod := "… per pod create → bound: p50 / p99; pods per node"
	rowLate := fmt.Sprintf("scheduler alone: %d pods created first (no node matched), then the %d nodes labelled to match, first label → last bound", b.schedPods, b.nodes)

	nodes, stopLeases, err := b.fakeNodes(ctx)
	defer b.deleteFakeNodes(ctx, nodes)
	defer stopLeases()
	if err != nil {
		return err
	}
	if msg := b.waitSchedulable(ctx, nodes, 20*time.Second); msg != "" {
		b.log("fake nodes not schedulable: %s", msg)
		b.table.Add(row, na("fake nodes not schedulable: %s", msg), "≥ 500 /s")
		return nil
	}
	clients := make([]kubernetes.Interface, b.clients)
	for i := range clients {
		if clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(b.srv.Config)); err != nil {
			return err
		}
	}

	// 1. Pods created while the nodes match.
	tr, err := watchPods(ctx, b.c, ns, "app=bench-sched")
	if err != nil {
		return err
	}
	starts, createsDone, err := b.createPods(ctx, clients, "sched", fakeNodeLabel)
	if err != nil {
		tr.stop()
		return err
	}
	t0 := starts[0]
	all, ok := b.waitBound(ctx, tr, len(starts))
	if !ok {
		b.table.Add(row, na("%d of %d bound within %s (%s)", count(all, boundAt), len(starts), b.waitTimeout, b.pendingReason(ctx, all)), "≥ 500 /s")
	} else {
		last, n := latest(all, boundAt)
		var lat []time.Duration
		perNode := map[string]int{}
		for i := range starts {
			t := all[podName("sched", i)]
			lat = append(lat, t.bound.Sub(starts[i]))
			perNode[t.node]++
		}
		var counts []string
		for _, nd := range nodes {
			counts = append(counts, fmt.Sprint(perNode[nd]))
		}
		b.table.Add(row, fmt.Sprintf("%s (%d pods in %s)", harness.Rate(n, last.Sub(t0)), n, harness.Ms(last.Sub(t0))), "≥ 500 /s")
		b.table.Add(rowCreate, fmt.Sprintf("%s (%s) / %s", harness.Ms(createsDone.Sub(t0)), harness.Rate(n, createsDone.Sub(t0)), harness.Ms(last.Sub(createsDone))), "")
		b.table.Add(rowPod, fmt.Sprintf("%s; %s", p50p99(lat), strings.Join(counts, " / ")), "")
		b.log("scheduled %d pods in %s", n, last.Sub(t0))
	}
	b.forceDeletePods(ctx, tr, "app=bench-sched")
	tr.stop()

	// 2. Pods created first, nodes labelled to match afterwards.
	tr, err = watchPods(ctx, b.c, ns, "app=bench-sched")
	if err != nil {
		return err
	}
	defer tr.stop()
	defer b.forceDeletePods(ctx, tr, "app=bench-sched")
	starts, _, err = b.createPods(ctx, clients, "late", lateNodeLabel)
	if err != nil {
		return err
	}
	if !harness.WaitFor(ctx, b.waitTimeout, func() bool { return count(tr.snapshot(nil), unschedulableAt) >= len(starts) }) {
		b.table.Add(rowLate, na("%d of %d pods marked unschedulable within %s", count(tr.snapshot(nil), unschedulableAt), len(starts), b.waitTimeout), "≥ 500 /s")
		return nil
	}
	// Let the pods' 1 s scheduling back-off run out, so the node events
	// move them straight to the active queue.
	harness.Sleep(ctx, 2*time.Second)
	t1 := time.Now()
	patch := []byte(`{"metadata":{"labels":{"` + lateNodeLabel + `":"true"}}}`)
	// All nodes at once (one client each): labelled one after the other,
	// the first node alone would be offered every pod and fill up.
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = clients[i%len(clients)].CoreV1().Nodes().Patch(ctx, nd, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	labelled := time.Now()
	all, ok = b.waitBound(ctx, tr, len(starts))
	if !ok {
		b.table.Add(rowLate, na("%d of %d bound within %s (%s)", count(all, boundAt), len(starts), b.waitTimeout, b.pendingReason(ctx, all)), "≥ 500 /s")
		return nil
	}
	last, n := latest(all, boundAt)
	b.table.Add(rowLate, fmt.Sprintf("%s (%d pods in %s; label patches took %s)", harness.Rate(n, last.Sub(t1)), n, harness.Ms(last.Sub(t1)), harness.Ms(labelled.Sub(t1))), "≥ 500 /s")
	b.log("scheduled %d waiting pods in %s", n, last.Sub(t1))
	return nil
}

const lateNodeLabel = "bench.k1s.dev/late"

func boundAt(t podTimes) time.Time         { return t.bound }
func unschedulableAt(t podTimes) time.Time { return t.unschedulable }

func count(all map[string]podTimes, field func(podTimes) time.Time) int {
	_, n := latest(all, field)
	return n
}

func podName(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// createPods creates b.schedPods pods selecting nodeLabel=true, one worker
// per client; it returns when each create request started and when the
// last one ended.
func (b *bench) createPods(ctx context.Context, clients []kubernetes.Interface, prefix, nodeLabel string) ([]time.Time, time.Time, error) {
	starts := make([]time.Time, b.schedPods)
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var createErr error
	for _, cc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(starts) {
					return
				}
				starts[i] = time.Now()
				if _, err := cc.CoreV1().Pods(ns).Create(ctx, schedPod(podName(prefix, i), nodeLabel), metav1.CreateOptions{}); err != nil {
					errOnce.Do(func() { createErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if createErr != nil {
		return nil, time.Time{}, fmt.Errorf("creating pods: %w", createErr)
	}
	return starts, time.Now(), nil
}

// waitBound waits until n pods were seen bound.
func (b *bench) waitBound(ctx context.Context, tr *pods, n int) (map[string]podTimes, bool) {
	ok := harness.WaitFor(ctx, b.waitTimeout, func() bool { return count(tr.snapshot(nil), boundAt) >= n })
	return tr.snapshot(nil), ok
}

// fakeNodes creates the Node objects, sets their status (Ready, capacity)
// through the status subresource and keeps their Leases renewed (every
// 5 s) until stop is called, so the node lifecycle controller sees them
// alive.
func (b *bench) fakeNodes(ctx context.Context) (names []string, stop func(), err error) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() { cancel(); wg.Wait() }
	for i := 1; i <= b.nodes; i++ {
		name := fmt.Sprintf("bench-node-%d", i)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			fakeNodeLabel:            "true",
			"kubernetes.io/hostname": name,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
		}}}
		created, err := b.c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return names, stop, err
		}
		names = append(names, name)
		now := metav1.Now()
		rl := corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("32"),
			corev1.ResourceMemory:           resource.MustParse("128Gi"),
			corev1.ResourcePods:             resource.MustParse("300"),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}
		status := corev1.NodeStatus{
			Capacity:    rl,
			Allocatable: rl,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
			},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.0.2.%d", i)}, {Type: corev1.NodeHostName, Address: name}},
			NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "bench://0"},
		}
		// Controllers (ttl, node lifecycle) may change the new Node first.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			created.Status = status
			_, err := b.c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				if cur, gerr := b.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); gerr == nil {
					created = cur
				}
			}
			return err
		})
		if err != nil {
			return names, stop, err
		}
		dur := int32(40)
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &dur, RenewTime: &metav1.MicroTime{Time: time.Now()}},
		}
		if _, err := b.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return names, stop, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				harness.Sleep(lctx, 5*time.Second)
				if lctx.Err() != nil {
					return
				}
				l, err := b.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(lctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				b.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(lctx, l, metav1.UpdateOptions{})
			}
		}()
	}
	return names, stop, nil
}

// waitSchedulable waits until no fake node has a NoSchedule or NoExecute
// taint (a new Node gets node.kubernetes.io/not-ready until the node
// lifecycle controller sees it Ready); it returns what is left otherwise.
func (b *bench) waitSchedulable(ctx context.Context, nodes []string, timeout time.Duration) string {
	var left string
	ok := harness.WaitEvery(ctx, 100*time.Millisecond, timeout, func() bool {
		left = ""
		for _, name := range nodes {
			n, err := b.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				left = err.Error()
				return false
			}
			for _, t := range n.Spec.Taints {
				if t.Effect != corev1.TaintEffectPreferNoSchedule {
					left = fmt.Sprintf("%s has taint %s:%s", name, t.Key, t.Effect)
					return false
				}
			}
		}
		return true
	})
	if ok {
		return ""
	}
	return left
}

func (b *bench) deleteFakeNodes(ctx context.Context, nodes []string) {
	for _, n := range nodes {
		if err := b.c.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			b.log("deleting node %s: %v", n, err)
		}
		b.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, n, metav1.DeleteOptions{})
	}
}

// forceDeletePods deletes the pods at once (grace period 0: no agent will
// ever confirm them) and waits until they are gone.
func (b *bench) forceDeletePods(ctx context.Context, tr *pods, selector string) {
	zero := int64(0)
	if err := b.c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: selector}); err != nil {
		b.log("deleting pods: %v", err)
	}
	if !harness.WaitFor(ctx, b.waitTimeout, func() bool { return tr.live(nil) == 0 }) {
		b.log("%d pods still there %s after their delete", tr.live(nil), b.waitTimeout)
	}
}

// pendingReason is the PodScheduled message of one unbound pod.
func (b *bench) pendingReason(ctx context.Context, all map[string]podTimes) string {
	var unbound []string
	for name, t := range all {
		if t.bound.IsZero() {
			unbound = append(unbound, name)
		}
	}
	if len(unbound) == 0 {
		return "all seen bound"
	}
	sort.Strings(unbound)
	p, err := b.c.CoreV1().Pods(ns).Get(ctx, unbound[0], metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return fmt.Sprintf("%s: %s %s", p.Name, c.Reason, c.Message)
		}
	}
	return p.Name + ": no PodScheduled condition"
}

func schedPod(name, nodeLabel string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench-sched"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{nodeLabel: "true"},
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   "busybox",
				Command: []string{"sleep", "3600"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("10m"),
					corev1.ResourceMemory: resource.MustParse("16Mi"),
				}},
			}},
		},
	}
}
