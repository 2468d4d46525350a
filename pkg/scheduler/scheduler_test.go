package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
)

var podsGVR = v1.SchemeGroupVersion.WithResource("pods")

// testCluster is a fake clientset whose pods/binding behaves as the API
// server's (sets spec.nodeName and PodScheduled=True, 409 when bound), and
// a running scheduler on it.
type testCluster struct {
	cs       *fake.Clientset
	recorder *events.FakeRecorder
	watching sync.WaitGroup
}

func newTestCluster(t *testing.T, objs ...runtime.Object) *testCluster {
	tc := &testCluster{cs: fake.NewClientset(objs...), recorder: events.NewFakeRecorder(4096)}
	tc.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
		obj, err := tc.cs.Tracker().Get(podsGVR, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), b.Name, fmt.Errorf("pod %s is already assigned to node %q", b.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		pod.Status.Conditions = append(pod.Status.Conditions, v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue})
		return true, b, tc.cs.Tracker().Update(podsGVR, pod, pod.Namespace)
	})
	// The fake's watch misses what happens between list and watch: tests
	// change objects only once both informers watch.
	tc.watching.Add(2)
	var once [2]sync.Once
	tc.cs.PrependWatchReactor("*", func(a clienttesting.Action) (bool, watch.Interface, error) {
		switch a.GetResource().Resource {
		case "pods":
			once[0].Do(tc.watching.Done)
		case "nodes":
			once[1].Do(tc.watching.Done)
		}
		return false, nil, nil
	})
	return tc
}

func (tc *testCluster) start(t *testing.T, opts Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(tc.cs, 0)
	if opts.Recorder == nil && tc.recorder != nil {
		opts.Recorder = tc.recorder
	}
	opts.Rand = rand.New(rand.NewPCG(1, 2))
	s, err := New(tc.cs, factory, clock.RealClock{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	tc.watching.Wait()
}

func (tc *testCluster) waitBound(t *testing.T, ns, name string) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := tc.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = p.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not bound: %v", ns, name, err)
	}
	return node
}

func (tc *testCluster) waitEvent(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-tc.recorder.Events:
			if e == want {
				return
			}
		case <-timeout:
			t.Fatalf("no event %q", want)
		}
	}
}

func TestBindsPendingPods(t *testing.T) {
	tc := newTestCluster(t, makeNode("a"), makeNode("b"), makePod("p0"), makePod("p1"))
	tc.start(t, Options{})
	got := map[string]string{}
	for _, name := range []string{"p0", "p1"} {
		got[tc.waitBound(t, "default", name)] = name
	}
	if len(got) != 2 {
		t.Errorf("two pods landed on %v, want one per node (least allocated)", got)
	}
	tc.waitEvent(t, fmt.Sprintf("Normal Scheduled Successfully assigned default/%s to a", got["a"]))
}

func TestIgnoresOtherSchedulersAndAssignedPods(t *testing.T) {
	other := makePod("other", func(p *v1.Pod) { p.Spec.SchedulerName = "my-scheduler" })
	gated := makePod("gated", func(p *v1.Pod) { p.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "wait"}} })
	tc := newTestCluster(t, makeNode("a"), other, gated, makePod("mine"))
	tc.start(t, Options{})
	tc.waitBound(t, "default", "mine")
	for _, name := range []string{"other", "gated"} {
		p, err := tc.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s was bound to %s", name, p.Spec.NodeName)
		}
	}
}

// The reference cluster's cordon scenario: FailedScheduling with upstream's
// text, PodScheduled=False/Unschedulable, then scheduling after uncordon.
func TestCordonThenUncordon(t *testing.T) {
	node := makeNode("vm", cordoned)
	tc := newTestCluster(t, node, makePod("web"))
	tc.start(t, Options{})
	const msg = "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	tc.waitEvent(t, "Warning FailedScheduling "+msg)

	ctx := context.Background()
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := tc.cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled {
				return c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable && c.Message == msg, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("PodScheduled=False/Unschedulable not set: %v", err)
	}

	uncordoned := makeNode("vm")
	if _, err := tc.cs.CoreV1().Nodes().Update(ctx, uncordoned, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := tc.waitBound(t, "default", "web"); got != "vm" {
		t.Errorf("bound to %s", got)
	}
	tc.waitEvent(t, "Normal Scheduled Successfully assigned default/web to vm")
}

func TestNewNodeSchedulesWaitingPod(t *testing.T) {
	tc := newTestCluster(t, makeNode("a", tainted("x", v1.TaintEffectNoSchedule)), makePod("p"))
	tc.start(t, Options{})
	tc.waitEvent(t, "Warning FailedScheduling 0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
	if _, err := tc.cs.CoreV1().Nodes().Create(context.Background(), makeNode("b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := tc.waitBound(t, "default", "p"); got != "b" {
		t.Errorf("bound to %s", got)
	}
}

func TestDeletedPodFreesResources(t *testing.T) {
	big := makePod("big", onNode("a"), requests("2", ""))
	tc := newTestCluster(t, makeNode("a"), big, makePod("p", requests("1", "")))
	tc.start(t, Options{})
	tc.waitEvent(t, "Warning FailedScheduling 0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	if err := tc.cs.CoreV1().Pods("default").Delete(context.Background(), "big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.waitBound(t, "default", "p")
}

func TestBindingConflictIsRetried(t *testing.T) {
	tc := newTestCluster(t, makeNode("a"), makePod("p"))
	var failures int
	var mu sync.Mutex
	tc.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if a.GetSubresource() == "binding" && failures == 0 {
			failures++
			return true, nil, apierrors.NewInternalError(fmt.Errorf("etcd is slow"))
		}
		return false, nil, nil
	})
	tc.start(t, Options{InitialBackoff: 10 * time.Millisecond})
	tc.waitEvent(t, "Warning FailedScheduling Internal error occurred: etcd is slow")
	tc.waitBound(t, "default", "p")
}

// Throughput with the fake clientset: 1,000 pending pods on 5 nodes. The
// target (500 pods/s) is for a real API server; the scheduler's own share
// must be far below it.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 1000
	objs := []runtime.Object{}
	for i := 0; i < 5; i++ {
		objs = append(objs, makeNode(fmt.Sprintf("node-%d", i), allocatable("32", "64Gi", "500")))
	}
	for i := 0; i < n; i++ {
		objs = append(objs, makePod(fmt.Sprintf("p%04d", i), ownedBy("ReplicaSet", "rs"), requests("10m", "10Mi")))
	}
	tc := newTestCluster(t, objs...)
	start := time.Now()
	tc.start(t, Options{Recorder: &events.FakeRecorder{}})
	perNode := map[string]int{}
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := tc.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		clear(perNode)
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				bound++
				perNode[p.Spec.NodeName]++
			}
		}
		return bound == n, nil
	})
	if err != nil {
		t.Fatalf("not all pods bound: %v", err)
	}
	elapsed := time.Since(start)
	t.Logf("%d pods bound in %v (%.0f pods/s), per node %v", n, elapsed, float64(n)/elapsed.Seconds(), perNode)
	for node, c := range perNode {
		if c < n/5-n/50 || c > n/5+n/50 {
			t.Errorf("node %s has %d pods, want about %d", node, c, n/5)
		}
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("x", 2000)
	if got := truncate(long); len(got) != noteLengthLimit || !strings.HasSuffix(got, " ...") {
		t.Errorf("truncate: len %d", len(got))
	}
	if got := truncate("short"); got != "short" {
		t.Errorf("truncate(short) = %q", got)
	}
}

// Without an injected recorder, events go out through events.k8s.io/v1 as
// kube-scheduler's do, reported by default-scheduler.
func TestEventsAPIRecorder(t *testing.T) {
	tc := newTestCluster(t, makeNode("vm"), makePod("web"))
	tc.cs.Resources = []*metav1.APIResourceList{{GroupVersion: "events.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "events", Kind: "Event", Namespaced: true}}}}
	tc.recorder = nil
	tc.start(t, Options{Recorder: nil})
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := tc.cs.EventsV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "Scheduled" && e.Action == "Binding" && e.ReportingController == "default-scheduler" &&
				e.Note == "Successfully assigned default/web to vm" && e.Regarding.Kind == "Pod" && e.Regarding.Name == "web" && e.Type == v1.EventTypeNormal {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no Scheduled event in events.k8s.io/v1: %v", err)
	}
}
