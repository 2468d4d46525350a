package kubelet

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/prober"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// planPod builds a pod; init names starting with "sidecar" are native sidecars.
func planPod(policy v1.RestartPolicy, inits []string, apps ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid"}, Spec: v1.PodSpec{RestartPolicy: policy}}
	for _, n := range inits {
		c := v1.Container{Name: n, Image: "busybox"}
		if strings.HasPrefix(n, "sidecar") {
			always := v1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	for _, n := range apps {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n, Image: "busybox"})
	}
	return p
}

type rc struct {
	name  string
	state runtime.ContainerState
	code  int32
	image string // default busybox
}

// planState: one sandbox (ready unless notReady), containers created in
// order (the later, the newer).
func planState(pod *v1.Pod, sandbox, notReady bool, cs ...rc) *podstate.PodState {
	t0 := time.Unix(1000, 0)
	var sbs []*runtime.SandboxStatus
	if sandbox {
		st := runtime.SandboxReady
		if notReady {
			st = runtime.SandboxNotReady
		}
		sbs = []*runtime.SandboxStatus{{ID: "s1", State: st, CreatedAt: t0}}
	}
	var out []*runtime.ContainerStatus
	for i, c := range cs {
		img := c.image
		if img == "" {
			img = "busybox"
		}
		out = append(out, &runtime.ContainerStatus{
			ID: fmt.Sprintf("%s-%d", c.name, i), SandboxID: "s1", Name: c.name, State: c.state, ExitCode: c.code,
			CreatedAt:   t0.Add(time.Duration(i+1) * time.Second),
			Labels:      map[string]string{podstate.LabelContainerName: c.name},
			Annotations: map[string]string{podstate.AnnotationContainerHash: podstate.HashContainer(&v1.Container{Name: c.name, Image: img})},
		})
	}
	return podstate.New(pod.UID, "host", sbs, out)
}

type fakeProbes map[string]prober.Result // "id/Liveness" -> result

func (f fakeProbes) Result(id string, t prober.ProbeType) (prober.Result, bool) {
	r, ok := f[id+"/"+t.String()]
	return r, ok
}

// summarize prints a plan in a stable, readable way.
func summarize(pod *v1.Pod, a podActions) string {
	var parts []string
	if a.KillPod {
		parts = append(parts, "killPod")
	}
	if a.CreateSandbox {
		parts = append(parts, "createSandbox")
	}
	for _, i := range a.InitContainersToStart {
		parts = append(parts, "startInit:"+pod.Spec.InitContainers[i].Name)
	}
	for _, i := range a.ContainersToStart {
		parts = append(parts, "start:"+pod.Spec.Containers[i].Name)
	}
	var kills []string
	for _, k := range a.ContainersToKill {
		kills = append(kills, "kill:"+k.name+" ("+k.message+")")
	}
	sort.Strings(kills)
	parts = append(parts, kills...)
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func TestComputePodActions(t *testing.T) {
	running, exited := runtime.ContainerRunning, runtime.ContainerExited
	cases := []struct {
		name   string
		pod    *v1.Pod
		state  func(*v1.Pod) *podstate.PodState
		probes fakeProbes
		want   string
	}{
		{
			name:  "new pod: sandbox and all containers",
			pod:   planPod(v1.RestartPolicyAlways, nil, "a", "b"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, false, false) },
			want:  "killPod, createSandbox, start:a, start:b",
		},
		{
			name:  "new pod with init containers: sandbox and the first init container",
			pod:   planPod(v1.RestartPolicyAlways, []string{"i1", "i2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, false, false) },
			want:  "killPod, createSandbox, startInit:i1",
		},
		{
			name:  "first init container running: wait",
			pod:   planPod(v1.RestartPolicyAlways, []string{"i1", "i2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"i1", running, 0, ""}) },
			want:  "nothing",
		},
		{
			name:  "first init container done: the next one",
			pod:   planPod(v1.RestartPolicyAlways, []string{"i1", "i2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"i1", exited, 0, ""}) },
			want:  "startInit:i2",
		},
		{
			name: "all init containers done: the app containers",
			pod:  planPod(v1.RestartPolicyAlways, []string{"i1", "i2"}, "a", "b"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"i1", exited, 0, ""}, rc{"i2", exited, 0, ""})
			},
			want: "start:a, start:b",
		},
		{
			name: "init container failed, Always: restart it",
			pod:  planPod(v1.RestartPolicyAlways, []string{"i1", "i2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"i1", exited, 0, ""}, rc{"i2", exited, 127, ""})
			},
			want: "startInit:i2",
		},
		{
			name:  "init container failed, OnFailure: restart it",
			pod:   planPod(v1.RestartPolicyOnFailure, []string{"i1"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"i1", exited, 1, ""}) },
			want:  "startInit:i1",
		},
		{
			name:  "init container failed, Never: the pod fails",
			pod:   planPod(v1.RestartPolicyNever, []string{"i1"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"i1", exited, 127, ""}) },
			want:  "killPod",
		},
		{
			name:  "app running: nothing",
			pod:   planPod(v1.RestartPolicyAlways, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, ""}) },
			want:  "nothing",
		},
		{
			name:   "liveness failure, Always: kill and restart",
			pod:    planPod(v1.RestartPolicyAlways, nil, "a"),
			state:  func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, ""}) },
			probes: fakeProbes{"host://a-0/Liveness": prober.Failure},
			want:   "start:a, kill:a (Container a failed liveness probe, will be restarted)",
		},
		{
			name:   "liveness failure, Never: kill, and nothing left runs",
			pod:    planPod(v1.RestartPolicyNever, nil, "a"),
			state:  func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, ""}) },
			probes: fakeProbes{"host://a-0/Liveness": prober.Failure},
			want:   "killPod, kill:a (Container a failed liveness probe)",
		},
		{
			name:   "startup failure: kill and restart",
			pod:    planPod(v1.RestartPolicyAlways, nil, "a"),
			state:  func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, ""}) },
			probes: fakeProbes{"host://a-0/Startup": prober.Failure},
			want:   "start:a, kill:a (Container a failed startup probe, will be restarted)",
		},
		{
			name:   "liveness success: keep",
			pod:    planPod(v1.RestartPolicyAlways, nil, "a"),
			state:  func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, ""}) },
			probes: fakeProbes{"host://a-0/Liveness": prober.Success},
			want:   "nothing",
		},
		{
			name:  "image changed: restart",
			pod:   planPod(v1.RestartPolicyNever, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", running, 0, "nginx"}) },
			want:  "start:a, kill:a (Container a definition changed, will be restarted)",
		},
		{
			name:  "exited 1, OnFailure: restart",
			pod:   planPod(v1.RestartPolicyOnFailure, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", exited, 1, ""}) },
			want:  "start:a",
		},
		{
			name:  "exited 0, OnFailure: done, stop the pod",
			pod:   planPod(v1.RestartPolicyOnFailure, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", exited, 0, ""}) },
			want:  "killPod",
		},
		{
			name:  "exited 0, Always: restart",
			pod:   planPod(v1.RestartPolicyAlways, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", exited, 0, ""}) },
			want:  "start:a",
		},
		{
			name: "one of two exited, Never: keep the other",
			pod:  planPod(v1.RestartPolicyNever, nil, "a", "b"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"a", exited, 1, ""}, rc{"b", running, 0, ""})
			},
			want: "nothing",
		},
		{
			name:  "sidecar started: the next init container",
			pod:   planPod(v1.RestartPolicyAlways, []string{"sidecar-1", "i2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"sidecar-1", running, 0, ""}) },
			want:  "startInit:i2",
		},
		{
			name: "last sidecar started: the app containers",
			pod:  planPod(v1.RestartPolicyAlways, []string{"i1", "sidecar-2"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"i1", exited, 0, ""}, rc{"sidecar-2", running, 0, ""})
			},
			want: "start:a",
		},
		{
			name: "sidecar with a startup probe not yet run: wait",
			pod: func() *v1.Pod {
				p := planPod(v1.RestartPolicyAlways, []string{"sidecar-1"}, "a")
				p.Spec.InitContainers[0].StartupProbe = &v1.Probe{}
				return p
			}(),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"sidecar-1", running, 0, ""}) },
			want:  "nothing",
		},
		{
			name: "sidecar failed its startup probe: restart it",
			pod: func() *v1.Pod {
				p := planPod(v1.RestartPolicyAlways, []string{"sidecar-1"}, "a")
				p.Spec.InitContainers[0].StartupProbe = &v1.Probe{}
				return p
			}(),
			state:  func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"sidecar-1", running, 0, ""}) },
			probes: fakeProbes{"host://sidecar-1-0/Startup": prober.Failure},
			want:   "startInit:sidecar-1, kill:sidecar-1 (Init container sidecar-1 failed startup probe)",
		},
		{
			name: "sidecar died while the app runs: restart it",
			pod:  planPod(v1.RestartPolicyAlways, []string{"sidecar-1"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"sidecar-1", exited, 1, ""}, rc{"a", running, 0, ""})
			},
			want: "startInit:sidecar-1",
		},
		{
			name: "app completed (Never), sidecar running: stop the pod",
			pod:  planPod(v1.RestartPolicyNever, []string{"sidecar-1"}, "a"),
			state: func(p *v1.Pod) *podstate.PodState {
				return planState(p, true, false, rc{"sidecar-1", running, 0, ""}, rc{"a", exited, 0, ""})
			},
			want: "killPod",
		},
		{
			name:  "sandbox gone, Never, containers ran: no new sandbox",
			pod:   planPod(v1.RestartPolicyNever, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, true, rc{"a", exited, 0, ""}) },
			want:  "killPod",
		},
		{
			name:  "sandbox gone, Always: new sandbox, start again",
			pod:   planPod(v1.RestartPolicyAlways, nil, "a"),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, true, rc{"a", exited, 137, ""}) },
			want:  "killPod, createSandbox, start:a",
		},
		{
			name: "pod being deleted: nothing restarts",
			pod: func() *v1.Pod {
				p := planPod(v1.RestartPolicyAlways, nil, "a")
				now := metav1.Now()
				p.DeletionTimestamp = &now
				return p
			}(),
			state: func(p *v1.Pod) *podstate.PodState { return planState(p, true, false, rc{"a", exited, 1, ""}) },
			want:  "killPod",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(tc.pod, computePodActions(tc.pod, tc.state(tc.pod), tc.probes))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Deciding again after the plan was carried out finds nothing to do.
func TestComputePodActionsSettles(t *testing.T) {
	pod := planPod(v1.RestartPolicyAlways, []string{"i1", "sidecar-2"}, "a", "b")
	var cs []rc
	hasSandbox := false
	for step := 0; step < 10; step++ {
		a := computePodActions(pod, planState(pod, hasSandbox, false, cs...), nil)
		if summarize(pod, a) == "nothing" {
			if step != 3 {
				t.Fatalf("settled after %d steps, want 3", step)
			}
			return
		}
		if a.CreateSandbox {
			hasSandbox = true
		}
		// act: init containers run to completion (sidecars keep running),
		// app containers run
		for _, i := range a.InitContainersToStart {
			c := pod.Spec.InitContainers[i]
			if c.RestartPolicy != nil {
				cs = append(cs, rc{c.Name, runtime.ContainerRunning, 0, ""})
			} else {
				cs = append(cs, rc{c.Name, runtime.ContainerExited, 0, ""})
			}
		}
		for _, i := range a.ContainersToStart {
			cs = append(cs, rc{pod.Spec.Containers[i].Name, runtime.ContainerRunning, 0, ""})
		}
	}
	t.Fatal("never settled")
}
