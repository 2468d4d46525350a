package status

import (
	"context"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// versioned makes the fake API server bump a pod's resourceVersion on
// every status patch, as a real one does, and counts the reads.
func versioned(client *fake.Clientset) (gets func() int) {
	var mu sync.Mutex
	rv, n := 100, 0
	client.PrependReactor("get", "pods", func(core.Action) (bool, kruntime.Object, error) {
		mu.Lock()
		n++
		mu.Unlock()
		return false, nil, nil
	})
	client.PrependReactor("patch", "pods", func(a core.Action) (bool, kruntime.Object, error) {
		_, obj, err := core.ObjectReaction(client.Tracker())(a)
		if err != nil {
			return true, obj, err
		}
		p := obj.(*v1.Pod).DeepCopy()
		mu.Lock()
		rv++
		p.ResourceVersion = strconv.Itoa(rv)
		mu.Unlock()
		if err := client.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), p, p.Namespace); err != nil {
			return true, nil, err
		}
		return true, p, nil
	})
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func withState(s v1.PodStatus, name string, st v1.ContainerState) v1.PodStatus {
	s.ContainerStatuses = []v1.ContainerStatus{{Name: name, Image: "busybox", State: st}}
	return s
}

// Statuses are patched against the newest version of the pod known: no
// read per write, and an older copy delivered late (the informer lagging
// behind our own writes) never becomes the base of a patch, which would
// then leave a field on the API server that the newest status dropped.
func TestManagerPatchesAgainstNewestVersion(t *testing.T) {
	running := v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}
	exited := v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: metav1.NewTime(t0), FinishedAt: metav1.NewTime(t0)}}
	waiting := v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: ContainerCreating}}

	tests := []struct {
		name      string
		rv        string
		stale     bool // feed the manager an old copy of the pod between writes
		wantReads int
	}{
		{"known version: no reads", "7", false, 0},
		{"older copy ignored", "7", true, 0},
		{"unknown version: read before each sync", "", false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pod(v1.RestartPolicyAlways, nil, "main")
			p.ResourceVersion = tt.rv
			var couldRun atomic.Bool
			m, client, _, stop := newManager(t, p, &couldRun)
			defer stop()
			gets := versioned(client)
			if tt.rv == "" {
				// a server without numeric versions
				client.PrependReactor("patch", "pods", func(a core.Action) (bool, kruntime.Object, error) {
					return core.ObjectReaction(client.Tracker())(a)
				})
			}

			m.SetPodStatus(p, withState(statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady), "main", waiting))
			flush(t, m)
			old := apiPod(t, client, p)
			second := withState(statusWith(v1.PodRunning, v1.ConditionTrue, ""), "main", running)
			second.Message = "a message the next status drops"
			m.SetPodStatus(p, second)
			flush(t, m)
			if tt.stale {
				m.UpdatePod(old)
			}
			m.SetPodStatus(p, withState(statusWith(v1.PodRunning, v1.ConditionFalse, ContainersNotReady), "main", exited))
			flush(t, m)

			got := apiPod(t, client, p)
			cs := got.Status.ContainerStatuses
			if len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Running != nil || cs[0].State.Waiting != nil {
				t.Errorf("container state on the API server: %+v", cs)
			}
			if got.Status.Phase != v1.PodRunning || got.Status.Message != "" {
				t.Errorf("phase %s, message %q", got.Status.Phase, got.Status.Message)
			}
			if n := gets() - 2; n != tt.wantReads { // the test read it twice
				t.Errorf("%d reads of the pod, want %d", n, tt.wantReads)
			}
		})
	}
}

// A pod's statuses are all written in order while the writers keep up; when
// more pods wait for a writer than there are writers, each waiting pod gets
// only its newest status written.
func TestManagerBacklogWritesNewestOnly(t *testing.T) {
	tests := []struct {
		name    string
		backlog bool
		want    map[string][]v1.PodPhase // pod -> phases patched, in order
	}{
		{"writers keep up", false, map[string][]v1.PodPhase{"b": {v1.PodPending, v1.PodRunning, v1.PodSucceeded}}},
		{"backlog", true, map[string][]v1.PodPhase{"a": {v1.PodPending}, "b": {v1.PodSucceeded}, "c": {v1.PodPending}, "d": {v1.PodPending}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk := func(name string) *v1.Pod {
				p := pod(v1.RestartPolicyNever, nil, "main")
				p.Name, p.UID = name, types.UID("uid-"+name)
				return p
			}
			pods := map[string]*v1.Pod{}
			client := fake.NewSimpleClientset()
			for _, n := range []string{"a", "b", "c", "d"} {
				pods[n] = mk(n)
				client.Tracker().Add(pods[n])
			}
			var mu sync.Mutex
			patched := map[string][]v1.PodPhase{}
			release := make(chan struct{})
			var blockOnce sync.Once
			client.PrependReactor("patch", "pods", func(a core.Action) (bool, kruntime.Object, error) {
				_, obj, err := core.ObjectReaction(client.Tracker())(a)
				if err != nil {
					return true, obj, err
				}
				p := obj.(*v1.Pod)
				mu.Lock()
				patched[p.Name] = append(patched[p.Name], p.Status.Phase)
				mu.Unlock()
				if p.Name == "a" {
					blockOnce.Do(func() { <-release }) // the only writer is busy
				}
				return true, obj, nil
			})
			m := NewManager(client, testingclock.NewFakeClock(t0), nil)
			m.workers = 1
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { m.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			m.SetPodStatus(pods["a"], statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady))
			for m.queue.Len() > 0 { // a's write started
				time.Sleep(time.Millisecond)
			}
			if tt.backlog {
				m.SetPodStatus(pods["c"], statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady))
				m.SetPodStatus(pods["d"], statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady))
			}
			m.SetPodStatus(pods["b"], statusWith(v1.PodPending, v1.ConditionFalse, ContainersNotReady))
			m.SetPodStatus(pods["b"], statusWith(v1.PodRunning, v1.ConditionTrue, ""))
			m.SetPodStatus(pods["b"], statusWith(v1.PodSucceeded, v1.ConditionFalse, PodCompleted))
			close(release)
			flush(t, m)

			mu.Lock()
			defer mu.Unlock()
			for name, want := range tt.want {
				if got := patched[name]; !reflect.DeepEqual(got, want) {
					t.Errorf("pod %s: phases written %v, want %v", name, got, want)
				}
			}
		})
	}
}
