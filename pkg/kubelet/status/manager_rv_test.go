package status

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
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
