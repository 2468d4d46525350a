package prober

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func resultPtr(r Result) *Result { return &r }

func TestUpdatePodStatus(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	old := t0.Add(-time.Hour) // started before the kubelet
	cases := []struct {
		name        string
		kind        string // "", "init", "sidecar"
		cs          v1.ContainerStatus
		workers     []ProbeType
		startup     *Result
		readiness   *Result
		podReady    bool
		wantStart   bool
		wantReady   bool
		wantTrigger bool
	}{
		{name: "no probes", cs: running("c", cid1, t0, false), wantStart: true, wantReady: true},
		{name: "not running", cs: terminated("c", cid1, 0), wantStart: false, wantReady: false},
		{name: "startup pending", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup, Readiness}, startup: resultPtr(Unknown), wantStart: false, wantReady: false},
		{name: "startup worker not run yet", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup}, wantStart: false, wantReady: false},
		{name: "startup failed", cs: running("c", cid1, t0, true), workers: []ProbeType{Startup}, startup: resultPtr(Failure), wantStart: false, wantReady: false},
		{name: "startup succeeded", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup}, startup: resultPtr(Success), wantStart: true, wantReady: true},
		{name: "already started, startup result gone", cs: running("c", cid1, t0, true), workers: []ProbeType{Startup}, wantStart: true, wantReady: true},
		{name: "readiness not yet probed", cs: running("c", cid1, t0, false), workers: []ProbeType{Readiness}, wantStart: true, wantReady: false, wantTrigger: true},
		{name: "readiness failure", cs: running("c", cid1, t0, false), workers: []ProbeType{Readiness}, readiness: resultPtr(Failure), wantStart: true, wantReady: false, wantTrigger: true},
		{name: "readiness success", cs: running("c", cid1, t0, false), workers: []ProbeType{Readiness}, readiness: resultPtr(Success), wantStart: true, wantReady: true},
		{name: "readiness success but started is pending", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup, Readiness}, readiness: resultPtr(Success), wantStart: false, wantReady: false},
		{name: "kubelet restart, pod was ready", cs: running("c", cid1, old, false), workers: []ProbeType{Readiness}, podReady: true, wantStart: true, wantReady: true, wantTrigger: true},
		{name: "kubelet restart, pod was not ready", cs: running("c", cid1, old, false), workers: []ProbeType{Readiness}, wantStart: true, wantReady: false, wantTrigger: true},
		{name: "kubelet restart, readiness failed", cs: running("c", cid1, old, false), workers: []ProbeType{Readiness}, readiness: resultPtr(Failure), podReady: true, wantStart: true, wantReady: false, wantTrigger: true},
		{name: "init container succeeded", kind: "init", cs: terminated("c", cid1, 0), wantStart: false, wantReady: true},
		{name: "init container failed", kind: "init", cs: terminated("c", cid1, 1), wantStart: false, wantReady: false},
		{name: "init container running", kind: "init", cs: running("c", cid1, t0, false), wantStart: true, wantReady: false},
		{name: "sidecar without probes", kind: "sidecar", cs: running("c", cid1, t0, false), wantStart: true, wantReady: true},
		{name: "sidecar waiting for readiness", kind: "sidecar", cs: running("c", cid1, t0, false), workers: []ProbeType{Readiness}, wantStart: true, wantReady: false, wantTrigger: true},
		{name: "sidecar startup pending", kind: "sidecar", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup}, wantStart: false, wantReady: false},
		{name: "sidecar ready", kind: "sidecar", cs: running("c", cid1, t0, false), workers: []ProbeType{Startup, Readiness}, startup: resultPtr(Success), readiness: resultPtr(Success), wantStart: true, wantReady: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			c := v1.Container{Name: "c"}
			for _, pt := range tc.workers {
				switch pt {
				case Startup:
					c.StartupProbe = execProbe("true")
				case Readiness:
					c.ReadinessProbe = execProbe("true")
				}
			}
			pod := newPod()
			status := podStatus()
			switch tc.kind {
			case "":
				pod.Spec.Containers = []v1.Container{c}
				status.ContainerStatuses = []v1.ContainerStatus{tc.cs}
			default:
				if tc.kind == "sidecar" {
					c.RestartPolicy = &always
				}
				pod.Spec.InitContainers = []v1.Container{c}
				status.InitContainerStatuses = []v1.ContainerStatus{tc.cs}
			}
			if tc.podReady {
				pod.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
			}
			var readinessWorker *worker
			for _, pt := range tc.workers {
				w := e.m.newWorker(pt, pod, c, tc.kind == "sidecar")
				e.m.workers[w.key] = w
				if pt == Readiness {
					readinessWorker = w
				}
			}
			if tc.startup != nil {
				e.m.startup.set(cid1, *tc.startup, pod, nil)
			}
			if tc.readiness != nil {
				e.m.readiness.set(cid1, *tc.readiness, pod, nil)
			}

			e.m.UpdatePodStatus(pod, &status)

			got := append(status.ContainerStatuses, status.InitContainerStatuses...)[0]
			if got.Started == nil || *got.Started != tc.wantStart || got.Ready != tc.wantReady {
				t.Errorf("started=%v ready=%v, want started=%v ready=%v", deref(got.Started), got.Ready, tc.wantStart, tc.wantReady)
			}
			triggered := false
			if readinessWorker != nil {
				select {
				case <-readinessWorker.trigger:
					triggered = true
				default:
				}
			}
			if triggered != tc.wantTrigger {
				t.Errorf("readiness triggered = %v, want %v", triggered, tc.wantTrigger)
			}
		})
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func probeKeys(m *Manager) []probeKey {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var keys []probeKey
	for _, pt := range [...]ProbeType{Liveness, Readiness, Startup} {
		for _, name := range []string{"a", "b", "init", "side"} {
			for _, uid := range []types.UID{"uid-1", "uid-2"} {
				k := probeKey{uid, name, pt}
				if _, ok := m.workers[k]; ok {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

func TestAddStopRemovePod(t *testing.T) {
	e := newTestEnv()
	always := v1.ContainerRestartPolicyAlways
	pod := newPod(
		v1.Container{Name: "a", LivenessProbe: execProbe("true"), ReadinessProbe: execProbe("true"), StartupProbe: execProbe("true")},
		v1.Container{Name: "b"},
	)
	pod.Spec.InitContainers = []v1.Container{
		{Name: "init", LivenessProbe: execProbe("true")}, // plain init containers are not probed
		{Name: "side", RestartPolicy: &always, LivenessProbe: execProbe("true"), ReadinessProbe: execProbe("true")},
	}
	pod2 := newPod(v1.Container{Name: "a", ReadinessProbe: execProbe("true")})
	pod2.UID = "uid-2"

	e.m.AddPod(pod)
	e.m.AddPod(pod) // idempotent
	e.m.AddPod(pod2)
	want := []probeKey{
		{podUID, "a", Liveness}, {podUID, "side", Liveness},
		{podUID, "a", Readiness}, {"uid-2", "a", Readiness}, {podUID, "side", Readiness},
		{podUID, "a", Startup},
	}
	if diff := cmp.Diff(want, probeKeys(e.m), cmp.AllowUnexported(probeKey{})); diff != "" {
		t.Fatalf("workers (-want +got):\n%s", diff)
	}

	e.m.StopLivenessAndStartup(pod)
	want = []probeKey{{podUID, "side", Liveness}, {podUID, "a", Readiness}, {"uid-2", "a", Readiness}, {podUID, "side", Readiness}}
	waitFor(t, "liveness and startup workers to exit", func() bool { return e.m.workerCount() == len(want) })
	if diff := cmp.Diff(want, probeKeys(e.m), cmp.AllowUnexported(probeKey{})); diff != "" {
		t.Fatalf("workers (-want +got):\n%s", diff)
	}

	e.m.RemovePod(pod)
	waitFor(t, "pod workers to exit", func() bool { return e.m.workerCount() == 1 })
	e.m.CleanupPods(map[types.UID]struct{}{"uid-2": {}})
	e.m.CleanupPods(map[types.UID]struct{}{})
	waitFor(t, "all workers to exit", func() bool { return e.m.workerCount() == 0 })
}

// TestWorkerLoop drives the goroutines with the fake clock: probes run at
// AddPod and then every period; a worker that exits forgets its result.
func TestWorkerLoop(t *testing.T) {
	e := newTestEnv()
	e.clock.Step(time.Hour) // the kubelet started long ago: no jitter
	p := execProbe("cat", "/tmp/healthy")
	p.FailureThreshold = 2
	pod := newPod(v1.Container{Name: "c", LivenessProbe: p})
	e.status.set(podUID, podStatus(running("c", cid1, e.clock.Now(), true)))
	e.exec.push(execFail)

	e.m.AddPod(pod)
	waitFor(t, "first probe", func() bool { return e.exec.callCount() == 1 })
	if u := <-e.m.LivenessUpdates(); u.Result != Success {
		t.Fatalf("first update %+v, want the initial Success", u)
	}
	waitFor(t, "the ticker", e.clock.HasWaiters)
	e.clock.Step(10 * time.Second)
	if u, want := <-e.m.LivenessUpdates(), (Update{ContainerID: cid1, PodUID: podUID, Type: Liveness, Result: Failure}); u != want {
		t.Fatalf("update %+v, want %+v", u, want)
	}
	if n := e.exec.callCount(); n != 2 {
		t.Fatalf("exec calls %d", n)
	}
	if evs := e.rec.take(); len(evs) != 2 {
		t.Fatalf("events %v", evs)
	}

	e.m.RemovePod(pod)
	waitFor(t, "worker exit", func() bool { return e.m.workerCount() == 0 })
	if _, ok := e.m.Result(cid1, Liveness); ok {
		t.Error("result kept after the worker exited")
	}
}

func TestWorkerJitterAndManualTrigger(t *testing.T) {
	e := newTestEnv() // the kubelet just started: first run is jittered
	p := execProbe("true")
	pod := newPod(v1.Container{Name: "c", ReadinessProbe: p})
	e.status.set(podUID, podStatus(running("c", cid1, e.clock.Now(), true)))
	e.exec.push(execFail, execOK)

	e.m.AddPod(pod)
	waitFor(t, "the jitter wait", e.clock.HasWaiters)
	if e.exec.callCount() != 0 {
		t.Fatal("probed before the jitter elapsed")
	}
	e.clock.Step(10 * time.Second)
	waitFor(t, "first probe", func() bool { return e.exec.callCount() == 1 })

	// Not ready: computing the pod's status asks for a probe right away.
	status := podStatus(running("c", cid1, e.clock.Now(), true))
	waitFor(t, "the ticker", e.clock.HasWaiters)
	e.m.UpdatePodStatus(pod, &status)
	if status.ContainerStatuses[0].Ready {
		t.Fatal("ready before a success")
	}
	waitFor(t, "triggered probe", func() bool { return e.exec.callCount() == 2 })
	waitFor(t, "readiness success", func() bool { r, _ := e.m.Result(cid1, Readiness); return r == Success })
	e.m.UpdatePodStatus(pod, &status)
	if !status.ContainerStatuses[0].Ready {
		t.Fatal("not ready after a success")
	}
	e.m.RemovePod(pod)
	waitFor(t, "worker exit", func() bool { return e.m.workerCount() == 0 })
}

func TestWorkerExitsWhenContainerIsDone(t *testing.T) {
	e := newTestEnv()
	e.clock.Step(time.Hour)
	pod := newPod(v1.Container{Name: "c", ReadinessProbe: execProbe("true")})
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	e.status.set(podUID, podStatus(terminated("c", cid1, 0)))
	e.m.AddPod(pod)
	waitFor(t, "worker exit", func() bool { return e.m.workerCount() == 0 })
	if _, ok := e.m.Result(cid1, Readiness); ok {
		t.Error("result kept after the worker exited")
	}
}
