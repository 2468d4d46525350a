package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/prober"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	fakeruntime "k1s.dev/k1s/pkg/kubelet/runtime/fake"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeProbes is a probe manager whose results the test sets.
type fakeProbeManager struct {
	mu        sync.Mutex
	results   map[string]prober.Result // "<containerID>/<type>"
	liveness  chan prober.Update
	readiness chan prober.Update
	startup   chan prober.Update
	added     map[types.UID]bool
}

func newFakeProbeManager() *fakeProbeManager {
	return &fakeProbeManager{results: map[string]prober.Result{}, added: map[types.UID]bool{},
		liveness: make(chan prober.Update, 10), readiness: make(chan prober.Update, 10), startup: make(chan prober.Update, 10)}
}

func (f *fakeProbeManager) AddPod(pod *v1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added[pod.UID] = true
}
func (f *fakeProbeManager) RemovePod(pod *v1.Pod)                  {}
func (f *fakeProbeManager) StopLivenessAndStartup(pod *v1.Pod)     {}
func (f *fakeProbeManager) CleanupPods(map[types.UID]struct{})     {}
func (f *fakeProbeManager) LivenessUpdates() <-chan prober.Update  { return f.liveness }
func (f *fakeProbeManager) ReadinessUpdates() <-chan prober.Update { return f.readiness }
func (f *fakeProbeManager) StartupUpdates() <-chan prober.Update   { return f.startup }

func (f *fakeProbeManager) Result(id string, t prober.ProbeType) (prober.Result, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.results[id+"/"+t.String()]
	return r, ok
}

func (f *fakeProbeManager) set(pod types.UID, id string, t prober.ProbeType, r prober.Result) {
	f.mu.Lock()
	f.results[id+"/"+t.String()] = r
	f.mu.Unlock()
	u := prober.Update{ContainerID: id, PodUID: pod, Type: t, Result: r}
	switch t {
	case prober.Liveness:
		f.liveness <- u
	case prober.Readiness:
		f.readiness <- u
	default:
		f.startup <- u
	}
}

// UpdatePodStatus follows the real prober's rules: started = running and
// (no startup probe or it succeeded); ready = started and (no readiness
// probe or it succeeded); completed init containers are ready.
func (f *fakeProbeManager) UpdatePodStatus(pod *v1.Pod, s *v1.PodStatus) {
	set := func(cs *v1.ContainerStatus, spec *v1.Container) {
		running := cs.State.Running != nil
		started := running
		if spec != nil && spec.StartupProbe != nil {
			r, _ := f.Result(cs.ContainerID, prober.Startup)
			started = running && r == prober.Success
		}
		cs.Started = &started
		ready := started
		if spec != nil && spec.ReadinessProbe != nil {
			r, _ := f.Result(cs.ContainerID, prober.Readiness)
			ready = started && r == prober.Success
		} else if ok := func() bool { r, ok := f.Result(cs.ContainerID, prober.Readiness); return !ok || r == prober.Success }(); !ok {
			ready = false
		}
		cs.Ready = ready
	}
	for i := range s.ContainerStatuses {
		set(&s.ContainerStatuses[i], containerSpec(pod, s.ContainerStatuses[i].Name))
	}
	for i := range s.InitContainerStatuses {
		cs := &s.InitContainerStatuses[i]
		c := pod.Spec.InitContainers[i]
		if podutil.IsRestartableInitContainer(&c) {
			set(cs, &c)
			continue
		}
		running := cs.State.Running != nil
		cs.Started = &running
		cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
	}
}

type harness struct {
	t        *testing.T
	client   *fake.Clientset
	clock    *testingclock.FakeClock
	rt       *fakeruntime.Runtime
	probes   *fakeProbeManager
	k        *Kubelet
	root     string
	cancel   context.CancelFunc
	done     chan error
	watchMu  sync.Mutex
	seen     map[string][]string // pod name -> distinct status summaries, in order
	deleted  map[string]bool
	watching bool
	timeline map[string][]string // pod name -> fidelity timeline lines
}

var t0 = time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, objs ...any) *harness {
	t.Helper()
	h := &harness{t: t, clock: testingclock.NewFakeClock(t0), probes: newFakeProbeManager(), root: t.TempDir(),
		seen: map[string][]string{}, deleted: map[string]bool{}, timeline: map[string][]string{}}
	h.client = fake.NewSimpleClientset()
	h.rt = fakeruntime.New("host", h.clock)
	h.start(h.rt)
	return h
}

// start runs a kubelet on rt (a second start simulates an agent restart).
func (h *harness) start(rt *fakeruntime.Runtime) {
	h.t.Helper()
	ready := make(chan struct{})
	k, err := New(Dependencies{
		KubeClient: h.client, NodeName: "vm", NodeIP: "192.0.2.2",
		Runtimes: map[string]runtime.Runtime{"host": rt}, DefaultRuntime: "host",
		RootDir: h.root, Clock: h.clock, ServerAddress: "127.0.0.1",
		Ready: ready, Probes: h.probes, Version: "v0.1.0",
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.k = k
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- k.Run(ctx) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		h.t.Fatal("node not registered")
	}
	if !h.watching {
		h.watching = true
		h.watchPods()
	}
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.t.Error("kubelet did not stop")
		}
		h.cancel = nil
	}
}

// watchPods records every distinct status each pod goes through.
func (h *harness) watchPods() {
	w, err := h.client.CoreV1().Pods("").Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok {
				continue
			}
			h.watchMu.Lock()
			line := timelineLine(p)
			if ev.Type == watch.Deleted {
				line = "DELETED " + line
			}
			if l := h.timeline[p.Name]; len(l) == 0 || l[len(l)-1] != line {
				h.timeline[p.Name] = append(l, line)
			}
			if ev.Type == watch.Deleted {
				h.deleted[p.Name] = true
			} else if p.Status.Phase != "" && len(p.Status.Conditions) > 1 {
				s := summary(p.Status)
				if l := h.seen[p.Name]; len(l) == 0 || l[len(l)-1] != s {
					h.seen[p.Name] = append(l, s)
				}
			}
			h.watchMu.Unlock()
		}
	}()
	h.t.Cleanup(w.Stop)
}

func (h *harness) history(name string) []string {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	return append([]string(nil), h.seen[name]...)
}

// historyHas waits until some recorded status of the pod has all parts.
func (h *harness) historyHas(name string, parts ...string) bool {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range h.history(name) {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(s, p)
			}
			if all {
				return true
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func (h *harness) wasDeleted(name string) bool {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	return h.deleted[name]
}

// eventually polls cond (real time) until it holds.
func (h *harness) eventually(desc string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", desc)
}

// settle waits until nothing changes for a while (real time).
func (h *harness) settle() {
	time.Sleep(50 * time.Millisecond)
}

func (h *harness) create(p *v1.Pod) *v1.Pod {
	h.t.Helper()
	p.Spec.NodeName = "vm"
	if p.Namespace == "" {
		p.Namespace = "ns"
	}
	if p.UID == "" {
		p.UID = types.UID("uid-" + p.Name)
	}
	p.Generation = 1
	p.Status = v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}}
	out, err := h.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) get(name string) *v1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

// status is the pod's summary as the API server has it.
func (h *harness) status(name string) string {
	p := h.get(name)
	if p == nil {
		return "<gone>"
	}
	return summary(p.Status)
}

func (h *harness) waitStatus(name, want string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(h.status(name), want) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("pod %s: status never contained %q; last %s\nhistory:\n  %s", name, want, h.status(name), strings.Join(h.history(name), "\n  "))
}

// events returns "Type Reason fieldPath: message (xN)" of the kubelet's events on a pod.
func (h *harness) events(name string) []string {
	list, _ := h.client.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name != name {
			continue
		}
		s := fmt.Sprintf("%s %s %s: %s", e.Type, e.Reason, e.InvolvedObject.FieldPath, e.Message)
		if e.Count > 1 {
			s += fmt.Sprintf(" (x%d)", e.Count)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (h *harness) waitEvent(name, want string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range h.events(name) {
			if strings.Contains(e, want) {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("pod %s: no event %q; events:\n  %s", name, want, strings.Join(h.events(name), "\n  "))
}

// step advances the fake clock, letting the workers catch up first.
func (h *harness) step(d time.Duration) {
	h.settle()
	h.clock.Step(d)
}

func (h *harness) callCount(prefix string) int {
	n := 0
	for _, c := range h.rt.Calls() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// summary prints a status as ../shared/fidelity's timeline does.
func summary(s v1.PodStatus) string {
	var conds []string
	for _, c := range s.Conditions {
		x := fmt.Sprintf("%s=%s", c.Type, c.Status)
		if c.Reason != "" {
			x += "/" + c.Reason
		}
		conds = append(conds, x)
	}
	sort.Strings(conds)
	parts := []string{"phase=" + string(s.Phase), strings.Join(conds, " ")}
	one := func(prefix string, c v1.ContainerStatus) string {
		var st string
		switch {
		case c.State.Waiting != nil:
			st = "waiting/" + c.State.Waiting.Reason
			if c.State.Waiting.Message != "" {
				st += " (" + c.State.Waiting.Message + ")"
			}
		case c.State.Running != nil:
			st = "running/"
		case c.State.Terminated != nil:
			st = fmt.Sprintf("terminated/%s:%d", c.State.Terminated.Reason, c.State.Terminated.ExitCode)
		}
		started := c.Started != nil && *c.Started
		return fmt.Sprintf("%s%s=%s ready=%v started=%v restarts=%d", prefix, c.Name, st, c.Ready, started, c.RestartCount)
	}
	for _, c := range s.InitContainerStatuses {
		parts = append(parts, one("init:", c))
	}
	for _, c := range s.ContainerStatuses {
		parts = append(parts, one("", c))
	}
	return strings.Join(parts, " | ")
}

func podWith(name string, policy v1.RestartPolicy, inits []string, apps ...string) *v1.Pod {
	p := planPod(policy, inits, apps...)
	p.Name = name
	p.UID = ""
	grace := int64(30)
	p.Spec.TerminationGracePeriodSeconds = &grace
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = "busybox:1.28"
		p.Spec.Containers[i].Command = []string{"sleep", "3600"}
	}
	for i := range p.Spec.InitContainers {
		p.Spec.InitContainers[i].Image = "busybox:1.28"
		p.Spec.InitContainers[i].Command = []string{"true"}
	}
	return p
}

type runtimeSandboxConfig = runtime.PodSandboxConfig
type runtimeContainerConfig = runtime.ContainerConfig
