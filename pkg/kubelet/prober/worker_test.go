package prober

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newTestWorker builds a worker for container "c" without its goroutine.
func (e *testEnv) newTestWorker(t ProbeType, p *v1.Probe) (*worker, *v1.Pod) {
	c := v1.Container{Name: "c"}
	switch t {
	case Liveness:
		c.LivenessProbe = p
	case Readiness:
		c.ReadinessProbe = p
	case Startup:
		c.StartupProbe = p
	}
	pod := newPod(c)
	return e.m.newWorker(t, pod, c, false), pod
}

func results(us []Update) []Result {
	var out []Result
	for _, u := range us {
		out = append(out, u.Result)
	}
	return out
}

func TestDoProbeThresholds(t *testing.T) {
	U, S, F := Unknown, Success, Failure
	ok, fail := execOK, execFail
	cases := []struct {
		name             string
		probeType        ProbeType
		success, failure int32
		outcomes         []execOutcome
		want             []Result // cached after each doProbe
		wantCalls        int
		wantUpdates      []Result
	}{
		{"liveness fails at threshold then holds", Liveness, 1, 3,
			[]execOutcome{fail, fail, fail, fail, fail}, []Result{S, S, F, F, F}, 3, []Result{S, F}},
		{"liveness failure run reset by a success", Liveness, 1, 3,
			[]execOutcome{fail, fail, ok, fail, fail, fail}, []Result{S, S, S, S, S, F}, 6, []Result{S, F}},
		{"liveness threshold 1", Liveness, 1, 1,
			[]execOutcome{fail, ok}, []Result{F, F}, 1, []Result{S, F}},
		{"readiness not ready until first success", Readiness, 1, 3,
			[]execOutcome{ok}, []Result{S}, 1, []Result{F, S}},
		{"readiness success threshold", Readiness, 3, 3,
			[]execOutcome{ok, ok, ok}, []Result{F, F, S}, 3, []Result{F, S}},
		{"readiness keeps probing after failure", Readiness, 1, 3,
			[]execOutcome{ok, fail, fail, fail, fail, ok}, []Result{S, S, S, F, F, S}, 6, []Result{F, S, F, S}},
		{"readiness success run interrupted", Readiness, 2, 3,
			[]execOutcome{ok, fail, ok, ok}, []Result{F, F, F, S}, 4, []Result{F, S}},
		{"startup success then holds", Startup, 1, 3,
			[]execOutcome{fail, ok, ok}, []Result{U, S, S}, 2, []Result{U, S}},
		{"startup failure threshold then holds", Startup, 1, 2,
			[]execOutcome{fail, fail, fail}, []Result{U, F, F}, 2, []Result{U, F}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			p := execProbe("cat", "/tmp/healthy")
			p.SuccessThreshold, p.FailureThreshold = tc.success, tc.failure
			w, _ := e.newTestWorker(tc.probeType, p)
			e.exec.push(tc.outcomes...)
			e.status.set(podUID, podStatus(running("c", cid1, t0, tc.probeType != Startup)))

			var got []Result
			for range tc.outcomes {
				if !w.doProbe(context.Background()) {
					t.Fatal("doProbe stopped")
				}
				r, _ := e.m.Result(cid1, tc.probeType)
				got = append(got, r)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if n := e.exec.callCount(); n != tc.wantCalls {
				t.Errorf("exec calls = %d, want %d", n, tc.wantCalls)
			}
			if diff := cmp.Diff(tc.wantUpdates, results(drain(e.m.cache(tc.probeType).updates))); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDoProbeExecCall(t *testing.T) {
	e := newTestEnv()
	p := execProbe("sh", "-c", "test $(X) = $(MISSING)")
	p.TimeoutSeconds = 4
	w, _ := e.newTestWorker(Liveness, p)
	w.container.Env = []v1.EnvVar{{Name: "X", Value: "x"}}
	e.status.set(podUID, podStatus(running("c", cid1, t0, true)))
	w.doProbe(context.Background())
	want := []execCall{{id: "c1", cmd: []string{"sh", "-c", "test x = $(MISSING)"}, timeout: 4 * time.Second}}
	if diff := cmp.Diff(want, e.exec.calls, cmp.AllowUnexported(execCall{})); diff != "" {
		t.Errorf("exec calls (-want +got):\n%s", diff)
	}
}

func TestDoProbeRuntimeContainerID(t *testing.T) {
	e := newTestEnv()
	e.m = NewManager(Options{Status: e.status, Exec: e.exec, Clock: e.clock,
		RuntimeContainerID: func(id string) string { return "rt-" + id }})
	w, _ := e.newTestWorker(Liveness, execProbe("true"))
	e.status.set(podUID, podStatus(running("c", cid1, t0, true)))
	w.doProbe(context.Background())
	if got := e.exec.calls[0].id; got != "rt-host://c1" {
		t.Errorf("runtime id = %q", got)
	}
}

func TestDoProbeInitialDelay(t *testing.T) {
	for _, pt := range []ProbeType{Liveness, Readiness, Startup} {
		t.Run(pt.String(), func(t *testing.T) {
			e := newTestEnv()
			p := execProbe("true")
			p.InitialDelaySeconds = 10
			w, _ := e.newTestWorker(pt, p)
			e.status.set(podUID, podStatus(running("c", cid1, t0, pt != Startup)))
			steps := []struct {
				advance  time.Duration
				wantCall int
			}{{0, 0}, {9900 * time.Millisecond, 0}, {100 * time.Millisecond, 1}, {10 * time.Second, 2}}
			if pt == Startup {
				steps = steps[:3] // on hold after its success
			}
			for _, s := range steps {
				e.clock.Step(s.advance)
				w.doProbe(context.Background())
				if n := e.exec.callCount(); n != s.wantCall {
					t.Fatalf("at +%v: exec calls = %d, want %d", e.clock.Since(t0), n, s.wantCall)
				}
			}
		})
	}
}

func TestDoProbeStartupGating(t *testing.T) {
	cases := []struct {
		probeType ProbeType
		started   bool
		wantCall  bool
		want      Result
	}{
		{Liveness, false, false, Success},
		{Readiness, false, false, Failure},
		{Startup, false, true, Success},
		{Liveness, true, true, Success},
		{Readiness, true, true, Success},
		{Startup, true, false, Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.probeType.String(), func(t *testing.T) {
			e := newTestEnv()
			w, _ := e.newTestWorker(tc.probeType, execProbe("true"))
			e.status.set(podUID, podStatus(running("c", cid1, t0, tc.started)))
			w.doProbe(context.Background())
			if got := e.exec.callCount() > 0; got != tc.wantCall {
				t.Errorf("probed = %v, want %v", got, tc.wantCall)
			}
			if r, _ := e.m.Result(cid1, tc.probeType); r != tc.want {
				t.Errorf("result = %v, want %v", r, tc.want)
			}
		})
	}
}

func TestDoProbeOnHoldUntilNewContainer(t *testing.T) {
	for _, pt := range []ProbeType{Liveness, Startup} {
		t.Run(pt.String(), func(t *testing.T) {
			e := newTestEnv()
			p := execProbe("cat", "/tmp/healthy")
			p.FailureThreshold = 1
			w, _ := e.newTestWorker(pt, p)
			e.exec.push(execFail)
			e.status.set(podUID, podStatus(running("c", cid1, t0, pt != Startup)))
			w.doProbe(context.Background())
			if r, _ := e.m.Result(cid1, pt); r != Failure {
				t.Fatalf("result = %v, want Failure", r)
			}
			want := []Update{
				{ContainerID: cid1, PodUID: podUID, Type: pt, Result: w.initialValue},
				{ContainerID: cid1, PodUID: podUID, Type: pt, Result: Failure},
			}
			if diff := cmp.Diff(want, drain(e.m.cache(pt).updates)); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
			for i := 0; i < 3; i++ {
				w.doProbe(context.Background())
			}
			if n := e.exec.callCount(); n != 1 {
				t.Fatalf("probed %d times while on hold", n)
			}

			// The kubelet restarted the container: a new ID resumes probing.
			e.clock.Step(time.Minute)
			e.status.set(podUID, podStatus(running("c", cid2, e.clock.Now(), pt != Startup)))
			w.doProbe(context.Background())
			if n := e.exec.callCount(); n != 2 {
				t.Fatalf("exec calls = %d, want 2", n)
			}
			if _, ok := e.m.Result(cid1, pt); ok {
				t.Error("old container's result kept")
			}
			if r, _ := e.m.Result(cid2, pt); r != Failure {
				t.Errorf("new container result = %v, want Failure", r)
			}
		})
	}
}

func TestDoProbeNotRunning(t *testing.T) {
	waiting := v1.ContainerStatus{Name: "c", ContainerID: cid1, State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}
	cases := []struct {
		name          string
		restartPolicy v1.RestartPolicy
		status        v1.ContainerStatus
		wantKeepGoing bool
	}{
		{"waiting", v1.RestartPolicyNever, waiting, true},
		{"exited, Always", v1.RestartPolicyAlways, terminated("c", cid1, 0), true},
		{"exited 0, OnFailure", v1.RestartPolicyOnFailure, terminated("c", cid1, 0), false},
		{"exited 1, OnFailure", v1.RestartPolicyOnFailure, terminated("c", cid1, 1), true},
		{"exited 1, Never", v1.RestartPolicyNever, terminated("c", cid1, 1), false},
	}
	for _, tc := range cases {
		for _, pt := range []ProbeType{Liveness, Readiness, Startup} {
			t.Run(tc.name+"/"+pt.String(), func(t *testing.T) {
				e := newTestEnv()
				w, _ := e.newTestWorker(pt, execProbe("true"))
				w.pod.Spec.RestartPolicy = tc.restartPolicy
				e.status.set(podUID, podStatus(tc.status))
				if got := w.doProbe(context.Background()); got != tc.wantKeepGoing {
					t.Errorf("keepGoing = %v, want %v", got, tc.wantKeepGoing)
				}
				if r, _ := e.m.Result(cid1, pt); r != Failure {
					t.Errorf("result = %v, want Failure", r)
				}
				if e.exec.callCount() != 0 {
					t.Error("probed a container that is not running")
				}
			})
		}
	}
}

func TestDoProbeSidecarNotRunning(t *testing.T) {
	e := newTestEnv()
	always := v1.ContainerRestartPolicyAlways
	sc := v1.Container{Name: "s", RestartPolicy: &always, ReadinessProbe: execProbe("true")}
	pod := newPod(v1.Container{Name: "main"})
	pod.Spec.InitContainers = []v1.Container{sc}
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	w := e.m.newWorker(Readiness, pod, sc, true)
	st := podStatus()
	st.InitContainerStatuses = []v1.ContainerStatus{terminated("s", cid1, 0)}
	e.status.set(podUID, st)
	if !w.doProbe(context.Background()) {
		t.Error("sidecar worker stopped though the sidecar restarts")
	}
}

func TestDoProbeStops(t *testing.T) {
	now := metav1.NewTime(t0)
	cases := []struct {
		name          string
		probeType     ProbeType
		phase         v1.PodPhase
		deleting      bool
		wantKeepGoing bool
		wantCall      bool
		want          Result
	}{
		{"succeeded pod", Liveness, v1.PodSucceeded, false, false, false, Unknown},
		{"failed pod", Readiness, v1.PodFailed, false, false, false, Unknown},
		{"deleting: liveness goes quiet", Liveness, v1.PodRunning, true, false, false, Success},
		{"deleting: startup goes quiet", Startup, v1.PodRunning, true, false, false, Success},
		{"deleting: readiness keeps probing", Readiness, v1.PodRunning, true, true, true, Success},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			w, _ := e.newTestWorker(tc.probeType, execProbe("true"))
			if tc.deleting {
				w.pod.DeletionTimestamp = &now
			}
			st := podStatus(running("c", cid1, t0, tc.probeType != Startup))
			st.Phase = tc.phase
			e.status.set(podUID, st)
			if got := w.doProbe(context.Background()); got != tc.wantKeepGoing {
				t.Errorf("keepGoing = %v, want %v", got, tc.wantKeepGoing)
			}
			if got := e.exec.callCount() > 0; got != tc.wantCall {
				t.Errorf("probed = %v, want %v", got, tc.wantCall)
			}
			if r, _ := e.m.Result(cid1, tc.probeType); r != tc.want {
				t.Errorf("result = %v, want %v", r, tc.want)
			}
		})
	}
}

func TestDoProbeWaitsForContainer(t *testing.T) {
	e := newTestEnv()
	w, _ := e.newTestWorker(Liveness, execProbe("true"))
	if !w.doProbe(context.Background()) {
		t.Fatal("stopped without a pod status")
	}
	e.status.set(podUID, podStatus(v1.ContainerStatus{Name: "c", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}))
	if !w.doProbe(context.Background()) {
		t.Fatal("stopped without a container ID")
	}
	if e.exec.callCount() != 0 || len(drain(e.m.liveness.updates)) != 0 {
		t.Error("probed or reported before the container existed")
	}
}

func TestDoProbeErrorIsThrownAway(t *testing.T) {
	e := newTestEnv()
	w, pod := e.newTestWorker(Liveness, execProbe("cat", "/tmp/healthy"))
	boom := execOutcome{err: errors.New("container not found")}
	e.exec.push(execFail, boom, boom, boom, execFail, execFail)
	e.status.set(podUID, podStatus(running("c", cid1, t0, true)))
	var got []Result
	for i := 0; i < 4; i++ {
		w.doProbe(context.Background())
		r, _ := e.m.Result(cid1, Liveness)
		got = append(got, r)
	}
	// The errored probe (3 attempts) neither counts nor resets the run.
	if diff := cmp.Diff([]Result{Success, Success, Success, Failure}, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if n := e.exec.callCount(); n != 6 {
		t.Errorf("exec calls = %d, want 6", n)
	}
	var msgs []string
	for _, ev := range e.rec.take() {
		msgs = append(msgs, ev.reason+": "+ev.m)
	}
	want := []string{
		"Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
		"Unhealthy: Liveness probe errored and resulted in unknown state: container not found",
		"Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
		"Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	_ = pod
}

func TestDoProbeKubeletRestart(t *testing.T) {
	cases := []struct {
		name      string
		startedAt time.Time
		started   bool
		sidecar   bool
		probeType ProbeType
		want      Result
		wantKnown bool
	}{
		{"new container: readiness seeded Failure", t0.Add(-5 * time.Second), true, false, Readiness, Failure, true},
		{"container predates kubelet: readiness not seeded", t0.Add(-time.Hour), true, false, Readiness, 0, false},
		{"container predates kubelet: liveness not seeded", t0.Add(-time.Hour), true, false, Liveness, 0, false},
		{"started sidecar predates kubelet: startup Success", t0.Add(-time.Hour), true, true, Startup, Success, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			p := execProbe("true")
			p.InitialDelaySeconds = 1 << 20 // no probe runs: only the seed is visible
			w, _ := e.newTestWorker(tc.probeType, p)
			w.sidecar = tc.sidecar
			st := running("c", cid1, tc.startedAt, tc.started)
			status := podStatus(st)
			if tc.sidecar {
				status = podStatus()
				status.InitContainerStatuses = []v1.ContainerStatus{st}
			}
			e.status.set(podUID, status)
			w.doProbe(context.Background())
			r, ok := e.m.Result(cid1, tc.probeType)
			if ok != tc.wantKnown || (ok && r != tc.want) {
				t.Errorf("result = %v, %v; want %v, %v", r, ok, tc.want, tc.wantKnown)
			}
		})
	}
}
