package prober

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)

const (
	podUID = types.UID("uid-1")
	cid1   = "host://c1"
	cid2   = "host://c2"
)

type fakeStatus struct {
	mu sync.Mutex
	m  map[types.UID]v1.PodStatus
}

func (f *fakeStatus) GetPodStatus(uid types.UID) (v1.PodStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[uid]
	return *s.DeepCopy(), ok
}

func (f *fakeStatus) set(uid types.UID, s v1.PodStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[types.UID]v1.PodStatus{}
	}
	f.m[uid] = s
}

type execCall struct {
	id      string
	cmd     []string
	timeout time.Duration
}

// fakeExec answers ExecSync from a queue of outcomes; the last one repeats.
type fakeExec struct {
	mu       sync.Mutex
	calls    []execCall
	outcomes []execOutcome
}

type execOutcome struct {
	stdout, stderr string
	code           int
	err            error
}

var (
	execOK   = execOutcome{}
	execFail = execOutcome{stderr: "cat: can't open '/tmp/healthy': No such file or directory\n", code: 1}
)

func (f *fakeExec) ExecSync(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, execCall{id, cmd, timeout})
	o := execOK
	if len(f.outcomes) > 0 {
		o = f.outcomes[0]
		if len(f.outcomes) > 1 {
			f.outcomes = f.outcomes[1:]
		}
	}
	return []byte(o.stdout), []byte(o.stderr), o.code, o.err
}

func (f *fakeExec) push(o ...execOutcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes = append(f.outcomes, o...)
}

func (f *fakeExec) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type event struct {
	ref                  *v1.ObjectReference
	eventType, reason, m string
}

type fakeRecorder struct {
	mu     sync.Mutex
	events []event
}

func (r *fakeRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, _ := obj.(*v1.ObjectReference)
	r.events = append(r.events, event{ref, eventType, reason, message})
}

func (r *fakeRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	r.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

func (r *fakeRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...any) {
	r.Eventf(obj, eventType, reason, format, args...)
}

func (r *fakeRecorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

type testEnv struct {
	m      *Manager
	status *fakeStatus
	exec   *fakeExec
	rec    *fakeRecorder
	clock  *testingclock.FakeClock
}

func newTestEnv() *testEnv {
	e := &testEnv{status: &fakeStatus{}, exec: &fakeExec{}, rec: &fakeRecorder{}, clock: testingclock.NewFakeClock(t0)}
	e.m = NewManager(Options{Status: e.status, Exec: e.exec, Recorder: e.rec, Clock: e.clock})
	return e
}

// drain returns the updates waiting on ch.
func drain(ch <-chan Update) []Update {
	var out []Update
	for {
		select {
		case u := <-ch:
			out = append(out, u)
		default:
			return out
		}
	}
}

// waitFor polls cond (workers run on their own goroutines).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func execProbe(cmd ...string) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{Exec: &v1.ExecAction{Command: cmd}},
		TimeoutSeconds:   1,
		PeriodSeconds:    10,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

func newPod(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: podUID, ResourceVersion: "7"},
		Spec:       v1.PodSpec{Containers: containers, RestartPolicy: v1.RestartPolicyAlways},
	}
}

func boolPtr(b bool) *bool { return &b }

func running(name, id string, startedAt time.Time, started bool) v1.ContainerStatus {
	return v1.ContainerStatus{
		Name:        name,
		ContainerID: id,
		Started:     boolPtr(started),
		State:       v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(startedAt)}},
	}
}

func terminated(name, id string, exitCode int32) v1.ContainerStatus {
	return v1.ContainerStatus{
		Name:        name,
		ContainerID: id,
		Started:     boolPtr(false),
		State:       v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: exitCode}},
	}
}

func podStatus(cs ...v1.ContainerStatus) v1.PodStatus {
	return v1.PodStatus{Phase: v1.PodRunning, PodIP: "127.0.0.1", ContainerStatuses: cs}
}
