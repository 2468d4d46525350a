package status

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 26, 15, 56, 33, 0, time.UTC)

// summary prints a status the way ../shared/fidelity's timeline does, so
// expectations are copied from the reference traces.
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

type ctr struct {
	name    string
	state   runtime.ContainerState
	code    int32
	attempt uint32
	at      int // seconds after t0 it was created
}

func state(sandbox bool, sandboxReady bool, cs ...ctr) *podstate.PodState {
	var sbs []*runtime.SandboxStatus
	if sandbox {
		st := runtime.SandboxReady
		if !sandboxReady {
			st = runtime.SandboxNotReady
		}
		sbs = append(sbs, &runtime.SandboxStatus{ID: "s1", State: st, CreatedAt: t0, IP: "10.88.0.19"})
	}
	var rcs []*runtime.ContainerStatus
	for i, c := range cs {
		created := t0.Add(time.Duration(c.at) * time.Second)
		rc := &runtime.ContainerStatus{
			ID: fmt.Sprintf("c%d", i), SandboxID: "s1", Name: c.name, Attempt: c.attempt, State: c.state,
			CreatedAt: created, StartedAt: created, Image: "docker.io/library/busybox:1.28", ImageRef: "docker.io/library/busybox@sha256:b7a3",
		}
		if c.state == runtime.ContainerExited {
			rc.ExitCode = c.code
			rc.FinishedAt = created.Add(time.Second)
			if c.code == 0 {
				rc.Reason = "Completed"
			} else {
				rc.Reason = "Error"
			}
		}
		rcs = append(rcs, rc)
	}
	return podstate.New("uid", "host", sbs, rcs)
}

func pod(policy v1.RestartPolicy, inits []string, apps ...string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "myapp-pod", Namespace: "s05", UID: "uid", Generation: 1},
		Spec:       v1.PodSpec{RestartPolicy: policy},
		Status: v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{
			{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)}}},
	}
	for _, n := range inits {
		c := v1.Container{Name: n, Image: "busybox:1.28"}
		if strings.HasPrefix(n, "sidecar") {
			always := v1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	for _, n := range apps {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n, Image: "busybox:1.28"})
	}
	return p
}

// notReady is a prober stub: the named containers have not passed readiness yet.
func notReady(names ...string) func(*v1.Pod, *v1.PodStatus) {
	return func(p *v1.Pod, s *v1.PodStatus) {
		defaultProbe(p, s)
		for i := range s.ContainerStatuses {
			for _, n := range names {
				if s.ContainerStatuses[i].Name == n {
					s.ContainerStatuses[i].Ready = false
				}
			}
		}
	}
}

// notStarted is a prober stub: the named containers' startup probe has not succeeded.
func notStarted(names ...string) func(*v1.Pod, *v1.PodStatus) {
	return func(p *v1.Pod, s *v1.PodStatus) {
		defaultProbe(p, s)
		f := false
		for _, list := range [][]v1.ContainerStatus{s.ContainerStatuses, s.InitContainerStatuses} {
			for i := range list {
				for _, n := range names {
					if list[i].Name == n {
						list[i].Ready, list[i].Started = false, &f
					}
				}
			}
		}
	}
}

const backoffMsg = "back-off 10s restarting failed container=main pod=myapp-pod_s05(uid)"

func TestGenerate(t *testing.T) {
	cases := []struct {
		name     string
		pod      *v1.Pod
		state    *podstate.PodState
		reasons  map[string]Reason
		terminal bool
		probe    func(*v1.Pod, *v1.PodStatus)
		want     string
	}{
		// SPEC.md lifecycle table and the reference traces (01, 03, 04, 05, 06, 09).
		{
			name:  "created, no sandbox yet, init containers pending",
			pod:   pod(v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"),
			state: state(false, false),
			want:  "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/ContainersNotReady | init:init-one=waiting/PodInitializing ready=false started=false restarts=0 | init:init-two=waiting/PodInitializing ready=false started=false restarts=0 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name:  "sandbox ready, nothing started yet",
			pod:   pod(v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"),
			state: state(true, true),
			want:  "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=waiting/PodInitializing ready=false started=false restarts=0 | init:init-two=waiting/PodInitializing ready=false started=false restarts=0 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name:  "init running",
			pod:   pod(v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"),
			state: state(true, true, ctr{name: "init-one", state: runtime.ContainerRunning}),
			want:  "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=running/ ready=false started=true restarts=0 | init:init-two=waiting/PodInitializing ready=false started=false restarts=0 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "first init done, second not started",
			pod:  pod(v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"),
			state: state(true, true,
				ctr{name: "init-one", state: runtime.ContainerExited, code: 0}),
			want: "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | init:init-two=waiting/PodInitializing ready=false started=false restarts=0 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "init done, app not created yet (PodInitializing)",
			pod:  pod(v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"),
			state: state(true, true,
				ctr{name: "init-one", state: runtime.ContainerExited, code: 0},
				ctr{name: "init-two", state: runtime.ContainerExited, code: 0, at: 2}),
			want: "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | init:init-two=terminated/Completed:0 ready=true started=false restarts=0 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "init done, starting (not ready yet)",
			pod:  pod(v1.RestartPolicyAlways, []string{"init-one"}, "myapp-container"),
			state: state(true, true,
				ctr{name: "init-one", state: runtime.ContainerExited, code: 0},
				ctr{name: "myapp-container", state: runtime.ContainerRunning, at: 2}),
			probe: notReady("myapp-container"),
			want:  "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | myapp-container=running/ ready=false started=true restarts=0",
		},
		{
			name: "serving",
			pod:  pod(v1.RestartPolicyAlways, []string{"init-one"}, "myapp-container"),
			state: state(true, true,
				ctr{name: "init-one", state: runtime.ContainerExited, code: 0},
				ctr{name: "myapp-container", state: runtime.ContainerRunning, at: 2}),
			want: "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | myapp-container=running/ ready=true started=true restarts=0",
		},
		{
			name:  "no init containers, creating",
			pod:   pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(false, false),
			want:  "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/ContainersNotReady | main=waiting/ContainerCreating ready=false started=false restarts=0",
		},
		{
			name:  "startup probe not passed yet",
			pod:   pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerRunning}),
			probe: notStarted("main"),
			want:  "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | main=running/ ready=false started=false restarts=0",
		},
		{
			name:  "finished: Succeeded (Never, exit 0)",
			pod:   pod(v1.RestartPolicyNever, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerExited, code: 0}),
			want:  "phase=Succeeded | ContainersReady=False/PodCompleted Initialized=True/PodCompleted PodReadyToStartContainers=True PodScheduled=True Ready=False/PodCompleted | main=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name:  "finished and sandbox stopped: Succeeded",
			pod:   pod(v1.RestartPolicyNever, nil, "main"),
			state: state(true, false, ctr{name: "main", state: runtime.ContainerExited, code: 0}),
			want:  "phase=Succeeded | ContainersReady=False/PodCompleted Initialized=True/PodCompleted PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodCompleted | main=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name:  "finished: Failed (Never, exit 1)",
			pod:   pod(v1.RestartPolicyNever, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerExited, code: 1}),
			want:  "phase=Failed | ContainersReady=False/PodFailed Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/PodFailed | main=terminated/Error:1 ready=false started=false restarts=0",
		},
		{
			name:  "OnFailure, exit 0: Succeeded",
			pod:   pod(v1.RestartPolicyOnFailure, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerExited, code: 0}),
			want:  "phase=Succeeded | ContainersReady=False/PodCompleted Initialized=True/PodCompleted PodReadyToStartContainers=True PodScheduled=True Ready=False/PodCompleted | main=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name:  "Always, exited 0: still Running (will restart)",
			pod:   pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerExited, code: 0}),
			want:  "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | main=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name:  "exited, restart pending without a start failure: terminated shown",
			pod:   pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(true, true, ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 1}),
			want:  "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | main=terminated/Error:1 ready=false started=false restarts=1",
		},
		{
			name: "crash looping",
			pod:  pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(true, true,
				ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 1, at: 5},
				ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 0}),
			reasons: map[string]Reason{"main": {CrashLoopBackOff, backoffMsg}},
			want:    "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | main=waiting/CrashLoopBackOff (" + backoffMsg + ") ready=false started=false restarts=1",
		},
		{
			name: "restarted after a crash",
			pod:  pod(v1.RestartPolicyAlways, nil, "main"),
			state: state(true, true,
				ctr{name: "main", state: runtime.ContainerRunning, attempt: 1, at: 5},
				ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 0}),
			want: "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | main=running/ ready=true started=true restarts=1",
		},
		{
			name: "init container crash looping",
			pod:  pod(v1.RestartPolicyAlways, []string{"init-one", "init-failed-test"}, "myapp-container"),
			state: state(true, true,
				ctr{name: "init-one", state: runtime.ContainerExited, code: 0},
				ctr{name: "init-failed-test", state: runtime.ContainerExited, code: 127, attempt: 1, at: 4},
				ctr{name: "init-failed-test", state: runtime.ContainerExited, code: 127, attempt: 0, at: 2}),
			reasons: map[string]Reason{"init-failed-test": {CrashLoopBackOff, "back-off 10s restarting failed container=init-failed-test pod=myapp-pod_s05(uid)"}},
			want:    "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | init:init-failed-test=waiting/CrashLoopBackOff (back-off 10s restarting failed container=init-failed-test pod=myapp-pod_s05(uid)) ready=false started=false restarts=1 | myapp-container=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "init container failed with Never: Failed",
			pod:  pod(v1.RestartPolicyNever, []string{"init-failed-test"}, "app"),
			state: state(true, true,
				ctr{name: "init-failed-test", state: runtime.ContainerExited, code: 127}),
			want: "phase=Failed | ContainersReady=False/PodFailed Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/PodFailed | init:init-failed-test=terminated/Error:127 ready=false started=false restarts=0 | app=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "sidecar started, app running",
			pod:  pod(v1.RestartPolicyAlways, []string{"sidecar-log"}, "app"),
			state: state(true, true,
				ctr{name: "sidecar-log", state: runtime.ContainerRunning},
				ctr{name: "app", state: runtime.ContainerRunning, at: 1}),
			want: "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | init:sidecar-log=running/ ready=true started=true restarts=0 | app=running/ ready=true started=true restarts=0",
		},
		{
			name:  "sidecar not started yet: Pending, not initialized",
			pod:   pod(v1.RestartPolicyAlways, []string{"sidecar-log"}, "app"),
			state: state(true, true, ctr{name: "sidecar-log", state: runtime.ContainerRunning}),
			probe: notStarted("sidecar-log"),
			want:  "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=False/ContainersNotInitialized PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:sidecar-log=running/ ready=false started=false restarts=0 | app=waiting/PodInitializing ready=false started=false restarts=0",
		},
		{
			name: "sidecar still running after the app completed (Never): Succeeded",
			pod:  pod(v1.RestartPolicyNever, []string{"sidecar-log"}, "app"),
			state: state(true, true,
				ctr{name: "sidecar-log", state: runtime.ContainerRunning},
				ctr{name: "app", state: runtime.ContainerExited, code: 0, at: 1}),
			want: "phase=Running | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | init:sidecar-log=running/ ready=true started=true restarts=0 | app=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name: "deleted and stopped (Always, SIGKILL): Failed",
			pod:  pod(v1.RestartPolicyAlways, nil, "c"),
			state: state(true, false,
				ctr{name: "c", state: runtime.ContainerExited, code: 137}),
			terminal: true,
			want:     "phase=Failed | ContainersReady=False/PodFailed Initialized=True PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodFailed | c=terminated/Error:137 ready=false started=false restarts=0",
		},
		{
			name: "deleted and stopped (Always, exit 0): Succeeded",
			pod:  pod(v1.RestartPolicyAlways, nil, "c"),
			state: state(true, false,
				ctr{name: "c", state: runtime.ContainerExited, code: 0}),
			terminal: true,
			want:     "phase=Succeeded | ContainersReady=False/PodCompleted Initialized=True/PodCompleted PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodCompleted | c=terminated/Completed:0 ready=false started=false restarts=0",
		},
		{
			name:    "config error keeps the container waiting",
			pod:     pod(v1.RestartPolicyAlways, nil, "main"),
			state:   state(true, true),
			reasons: map[string]Reason{"main": {CreateContainerConfigError, `configmap "cfg" not found`}},
			want:    "phase=Pending | ContainersReady=False/ContainersNotReady Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False/ContainersNotReady | main=waiting/CreateContainerConfigError (configmap \"cfg\" not found) ready=false started=false restarts=0",
		},
		{
			name: "two containers, statuses sorted by name",
			pod:  pod(v1.RestartPolicyAlways, nil, "nginx-container", "debian-container"),
			state: state(true, true,
				ctr{name: "nginx-container", state: runtime.ContainerRunning},
				ctr{name: "debian-container", state: runtime.ContainerRunning}),
			want: "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | debian-container=running/ ready=true started=true restarts=0 | nginx-container=running/ ready=true started=true restarts=0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Generate(Input{
				Pod: tc.pod, State: tc.state, Old: tc.pod.Status, Reasons: tc.reasons,
				PodIsTerminal: tc.terminal, HostIPs: []string{"192.0.2.2"}, RuntimeName: "host", Probe: tc.probe,
			})
			if s := summary(got); s != tc.want {
				t.Errorf("got\n  %s\nwant\n  %s", s, tc.want)
			}
		})
	}
}

// The reference's init-running snapshot (recording 05): messages, IPs, ids.
func TestGenerateDetails(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, []string{"init-myservice", "init-mydb"}, "myapp-container")
	for i := range p.Spec.InitContainers {
		p.Spec.InitContainers[i].VolumeMounts = []v1.VolumeMount{{Name: "kube-api-access-dzswm", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	}
	st := state(true, true, ctr{name: "init-myservice", state: runtime.ContainerRunning})
	got := Generate(Input{Pod: p, State: st, Old: p.Status, HostIPs: []string{"192.0.2.2"}, RuntimeName: "host"})

	want := map[v1.PodConditionType]string{
		v1.PodInitialized:            "containers with incomplete status: [init-myservice init-mydb]",
		v1.PodReady:                  "containers with unready status: [myapp-container]",
		v1.ContainersReady:           "containers with unready status: [myapp-container]",
		v1.PodScheduled:              "",
		v1.PodReadyToStartContainers: "",
	}
	var order []string
	for _, c := range got.Conditions {
		order = append(order, string(c.Type))
		if c.Message != want[c.Type] {
			t.Errorf("%s message %q, want %q", c.Type, c.Message, want[c.Type])
		}
		if c.ObservedGeneration != 1 {
			t.Errorf("%s observedGeneration %d", c.Type, c.ObservedGeneration)
		}
	}
	if o := strings.Join(order, ","); o != "PodReadyToStartContainers,Initialized,Ready,ContainersReady,PodScheduled" {
		t.Errorf("condition order %s", o)
	}
	if got.PodIP != "10.88.0.19" || got.HostIP != "192.0.2.2" || len(got.HostIPs) != 1 || got.QOSClass != v1.PodQOSBestEffort || got.ObservedGeneration != 1 {
		t.Errorf("ips/qos/generation: %+v", got)
	}
	ic := got.InitContainerStatuses[0]
	if ic.ContainerID != "host://c0" || ic.ImageID == "" || ic.Resources == nil || len(ic.VolumeMounts) != 1 ||
		ic.VolumeMounts[0].RecursiveReadOnly == nil || *ic.VolumeMounts[0].RecursiveReadOnly != v1.RecursiveReadOnlyDisabled {
		t.Errorf("running init status: %+v", ic)
	}
	wc := got.InitContainerStatuses[1]
	if wc.Image != "busybox:1.28" || wc.ContainerID != "" || wc.Resources != nil {
		t.Errorf("waiting init status: %+v", wc)
	}
	if got.Resources == nil || len(got.Resources.Limits) != 0 {
		t.Errorf("pod resources: %+v", got.Resources)
	}
}

func TestGenerateLastState(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "main")
	st := state(true, true,
		ctr{name: "main", state: runtime.ContainerRunning, attempt: 2, at: 20},
		ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 1, at: 10},
		ctr{name: "main", state: runtime.ContainerExited, code: 1, attempt: 0})
	got := Generate(Input{Pod: p, State: st, Old: p.Status, RuntimeName: "host"})
	cs := got.ContainerStatuses[0]
	if cs.RestartCount != 2 || cs.State.Running == nil || cs.LastTerminationState.Terminated == nil ||
		cs.LastTerminationState.Terminated.ContainerID != "host://c1" || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Fatalf("status %+v", cs)
	}
}

// A terminal phase never goes back.
func TestGenerateTerminalStays(t *testing.T) {
	p := pod(v1.RestartPolicyNever, nil, "main")
	p.Status.Phase = v1.PodSucceeded
	got := Generate(Input{Pod: p, State: state(false, false), Old: p.Status, RuntimeName: "host"})
	if got.Phase != v1.PodSucceeded {
		t.Fatalf("phase %s", got.Phase)
	}
}

func TestReadinessGates(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "main")
	p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/ready"}}
	got := Generate(Input{Pod: p, State: state(true, true, ctr{name: "main", state: runtime.ContainerRunning}), Old: p.Status, RuntimeName: "host"})
	_, c := getCond(got, v1.PodReady)
	if c.Status != v1.ConditionFalse || c.Reason != ReadinessGatesNotReady ||
		c.Message != `corresponding condition of pod readiness gate "example.com/ready" does not exist.` {
		t.Fatalf("ready %+v", c)
	}
}

func getCond(s v1.PodStatus, t v1.PodConditionType) (int, v1.PodCondition) {
	for i, c := range s.Conditions {
		if c.Type == t {
			return i, c
		}
	}
	return -1, v1.PodCondition{}
}
