package kubelet

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/prober"
	fakeruntime "k1s.dev/k1s/pkg/kubelet/runtime/fake"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"
)

func TestScenarioNodeRegistration(t *testing.T) {
	h := newHarness(t)
	node, err := h.client.CoreV1().Nodes().Get(context.Background(), "vm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue && c.Reason == "KubeletReady" && c.Message == "kubelet is posting ready status" {
			ready = true
		}
	}
	if !ready {
		t.Errorf("conditions %+v", node.Status.Conditions)
	}
	if node.Status.NodeInfo.KubeletVersion != "v1.37.2" || node.Status.NodeInfo.ContainerRuntimeVersion != "host://v0.1.0" {
		t.Errorf("node info %+v", node.Status.NodeInfo)
	}
	if p := node.Status.DaemonEndpoints.KubeletEndpoint.Port; p == 0 || int(p) != h.k.ServerPort() {
		t.Errorf("kubelet port %d, server on %d", p, h.k.ServerPort())
	}
	if node.Labels["kubernetes.io/hostname"] != "vm" || node.Status.Addresses[0].Address != "192.0.2.2" {
		t.Errorf("labels %v addresses %v", node.Labels, node.Status.Addresses)
	}
	pods := node.Status.Capacity[v1.ResourcePods]
	if pods.Value() != 110 {
		t.Errorf("capacity %v", node.Status.Capacity)
	}
	h.eventually("lease", func() bool {
		_, err := h.client.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), "vm", metav1.GetOptions{})
		return err == nil
	})
	h.eventually("runtime class", func() bool {
		rc, err := h.client.NodeV1().RuntimeClasses().Get(context.Background(), "host", metav1.GetOptions{})
		return err == nil && rc.Handler == "host"
	})
	// A deleted Node registers again.
	h.client.CoreV1().Nodes().Delete(context.Background(), "vm", metav1.DeleteOptions{})
	h.step(nodeStatusUpdateFrequency)
	h.eventually("node re-registered", func() bool {
		_, err := h.client.CoreV1().Nodes().Get(context.Background(), "vm", metav1.GetOptions{})
		return err == nil
	})
}

func TestScenarioInitContainersInOrder(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("init-one", fakeruntime.Behavior{ExitOnStart: true})
	h.rt.SetBehavior("init-two", fakeruntime.Behavior{ExitOnStart: true})
	h.create(podWith("myapp-pod", v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"))
	h.waitStatus("myapp-pod", "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | init:init-one=terminated/Completed:0 ready=true started=false restarts=0 | init:init-two=terminated/Completed:0 ready=true started=false restarts=0 | myapp-container=running/ ready=true started=true restarts=0")

	var order []string
	for _, c := range h.rt.Calls() {
		if strings.HasPrefix(c, "StartContainer") || strings.HasPrefix(c, "RunPodSandbox") {
			order = append(order, c)
		}
	}
	if got := strings.Join(order, ", "); got != "RunPodSandbox myapp-pod, StartContainer init-one, StartContainer init-two, StartContainer myapp-container" {
		t.Errorf("order: %s", got)
	}
	if !h.historyHas("myapp-pod", "PodReadyToStartContainers=False/PodSandboxNotReady", "init:init-one=waiting/PodInitializing", "Initialized=False/ContainersNotInitialized") {
		t.Errorf("first status: %v", h.history("myapp-pod"))
	}
	h.waitEvent("myapp-pod", `Normal Pulled spec.initContainers{init-one}: Container image "busybox:1.28" already present on machine and can be accessed by the pod`)
	h.waitEvent("myapp-pod", "Normal Created spec.initContainers{init-two}: Container created")
	h.waitEvent("myapp-pod", "Normal Started spec.containers{myapp-container}: Container started")

	p := h.get("myapp-pod")
	c := p.Status.ContainerStatuses[0]
	if !strings.HasPrefix(c.ContainerID, "host://") || c.ImageID == "" || p.Status.PodIP != "192.0.2.2" || p.Status.HostIP != "192.0.2.2" ||
		p.Status.QOSClass != v1.PodQOSBestEffort || p.Status.StartTime == nil || p.Status.ObservedGeneration != 1 {
		t.Errorf("status details %+v", p.Status)
	}
}

func TestScenarioCrashLoopBackOff(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("main", fakeruntime.Behavior{ExitOnStart: true, ExitCode: 1})
	pod := h.create(podWith("crasher", v1.RestartPolicyAlways, nil, "main"))
	msg := func(d string) string {
		return "waiting/CrashLoopBackOff (back-off " + d + " restarting failed container=main pod=crasher_ns(" + string(pod.UID) + "))"
	}

	// first exit: restarted at once; second exit: back-off 10s
	h.waitEvent("crasher", "Warning BackOff spec.containers{main}: Back-off restarting failed container main in pod crasher_ns("+string(pod.UID)+")")
	h.waitStatus("crasher", "main=terminated/Error:1 ready=false started=false restarts=1")
	if n := h.callCount("StartContainer main"); n != 2 {
		t.Fatalf("%d starts before the back-off, want 2", n)
	}
	want := []struct {
		wait    time.Duration
		delay   string
		restart int
	}{{10 * time.Second, "10s", 2}, {20 * time.Second, "20s", 3}, {40 * time.Second, "40s", 4}}
	for _, w := range want {
		h.step(w.wait - time.Second)
		h.settle()
		if n := h.callCount("StartContainer main"); n != w.restart {
			t.Fatalf("restarted before the %s back-off ended (%d starts)", w.delay, n)
		}
		h.step(time.Second)
		h.eventually("restart after "+w.delay, func() bool { return h.callCount("StartContainer main") == w.restart+1 })
		h.waitStatus("crasher", "restarts="+string(rune('0'+w.restart)))
		if !h.historyHas("crasher", msg(w.delay), "phase=Running") {
			t.Fatalf("no CrashLoopBackOff %s status; history:\n  %s", w.delay, strings.Join(h.history("crasher"), "\n  "))
		}
	}
	// one BackOff event per restart cycle
	h.settle()
	for _, e := range h.events("crasher") {
		if strings.Contains(e, "BackOff") && !strings.HasSuffix(e, "(x4)") {
			t.Errorf("back-off event count: %s", e)
		}
	}
}

func TestScenarioLivenessKill(t *testing.T) {
	h := newHarness(t)
	p := podWith("liveness-pod", v1.RestartPolicyAlways, nil, "liveness")
	grace := int64(5)
	p.Spec.Containers[0].LivenessProbe = &v1.Probe{TerminationGracePeriodSeconds: &grace}
	pod := h.create(p)
	h.waitStatus("liveness-pod", "liveness=running/ ready=true started=true restarts=0")
	id := h.get("liveness-pod").Status.ContainerStatuses[0].ContainerID

	h.probes.set(pod.UID, id, prober.Liveness, prober.Failure)
	h.waitEvent("liveness-pod", "Normal Killing spec.containers{liveness}: Container liveness failed liveness probe, will be restarted")
	h.waitStatus("liveness-pod", "liveness=running/ ready=true started=true restarts=1")
	if n := h.callCount("StopContainer liveness 5s"); n != 1 {
		t.Errorf("stop calls %v", h.rt.Calls())
	}
	st := h.get("liveness-pod").Status.ContainerStatuses[0]
	if st.LastTerminationState.Terminated == nil || st.LastTerminationState.Terminated.ExitCode != 143 {
		t.Errorf("last state %+v", st.LastTerminationState)
	}
	for _, s := range h.history("liveness-pod") {
		if strings.Contains(s, "terminated") {
			t.Errorf("the kill and the restart are one sync, no terminated state in between: %s", s)
		}
	}
}

func TestScenarioGracefulDelete(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("c", fakeruntime.Behavior{IgnoreTerm: true})
	pod := h.create(podWith("bare", v1.RestartPolicyAlways, nil, "c"))
	h.waitStatus("bare", "c=running/")

	deletes := make(chan core.DeleteAction, 1)
	h.client.PrependReactor("delete", "pods", func(a core.Action) (bool, kruntime.Object, error) {
		deletes <- a.(core.DeleteAction)
		return false, nil, nil
	})
	// what the API server does on a graceful delete
	p := h.get("bare")
	now := metav1.NewTime(h.clock.Now())
	grace := int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := h.client.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("bare", "Normal Killing spec.containers{c}: Stopping container c")
	var d core.DeleteAction
	select {
	case d = <-deletes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no final delete; status %s", h.status("bare"))
	}
	opts := d.GetDeleteOptions()
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 || opts.Preconditions == nil || *opts.Preconditions.UID != pod.UID {
		t.Errorf("delete options %+v", opts)
	}
	if n := h.callCount("StopContainer c 30s"); n != 1 {
		t.Errorf("calls %v", h.rt.Calls())
	}
	if !h.historyHas("bare", "phase=Failed | ContainersReady=False/PodFailed Initialized=True PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodFailed | c=terminated/Error:137") {
		t.Errorf("final status; history:\n  %s", strings.Join(h.history("bare"), "\n  "))
	}
	// the pod is gone: the runtime is cleaned up
	h.eventually("runtime cleaned", func() bool { return h.callCount("RemovePodSandbox") == 1 })
}

func TestScenarioSidecar(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("with-sidecar", v1.RestartPolicyAlways, []string{"sidecar-log"}, "app"))
	h.waitStatus("with-sidecar", "phase=Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | init:sidecar-log=running/ ready=true started=true restarts=0 | app=running/ ready=true started=true restarts=0")

	// the sidecar dies: it is restarted, the app keeps running
	h.rt.Exit(h.rt.Running("sidecar-log")[0], 1)
	h.waitStatus("with-sidecar", "init:sidecar-log=running/ ready=true started=true restarts=1")
	if n := h.callCount("StartContainer app"); n != 1 {
		t.Errorf("app restarted: %v", h.rt.Calls())
	}

	p := h.get("with-sidecar")
	now := metav1.NewTime(h.clock.Now())
	grace := int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	h.client.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{})
	h.eventually("pod deleted", func() bool { return h.wasDeleted("with-sidecar") })
	var stops []string
	for _, c := range h.rt.Calls() {
		if strings.HasPrefix(c, "StopContainer") {
			stops = append(stops, strings.Fields(c)[1])
		}
	}
	if got := strings.Join(stops, ","); got != "app,sidecar-log" {
		t.Errorf("stop order %s, want the app before the sidecar", got)
	}
}

func TestScenarioInitFailureNever(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("init-failed-test", fakeruntime.Behavior{ExitOnStart: true, ExitCode: 127})
	h.create(podWith("once", v1.RestartPolicyNever, []string{"init-failed-test"}, "app"))
	h.waitStatus("once", "phase=Failed | ContainersReady=False/PodFailed Initialized=False/ContainersNotInitialized PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodFailed | init:init-failed-test=terminated/Error:127 ready=false started=false restarts=0 | app=waiting/PodInitializing ready=false started=false restarts=0")
	if !h.historyHas("once", "phase=Pending | ContainersReady=False/PodFailed") {
		t.Errorf("the terminal phase was not held back while containers could run:\n  %s", strings.Join(h.history("once"), "\n  "))
	}
	if n := h.callCount("StartContainer init-failed-test"); n != 1 {
		t.Errorf("init container restarted with Never: %v", h.rt.Calls())
	}
}

func TestScenarioCompletedPod(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("ok0", v1.RestartPolicyNever, nil, "main"))
	h.waitStatus("ok0", "phase=Running")
	h.rt.Exit(h.rt.Running("main")[0], 0)
	h.waitStatus("ok0", "phase=Succeeded | ContainersReady=False/PodCompleted Initialized=True/PodCompleted PodReadyToStartContainers=False/PodSandboxNotReady PodScheduled=True Ready=False/PodCompleted | main=terminated/Completed:0")
	if !h.historyHas("ok0", "phase=Running | ContainersReady=False/PodCompleted", "main=terminated/Completed:0") {
		t.Errorf("history:\n  %s", strings.Join(h.history("ok0"), "\n  "))
	}
}

func TestScenarioConfigError(t *testing.T) {
	h := newHarness(t)
	p := podWith("cfg", v1.RestartPolicyAlways, nil, "main")
	p.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
		LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "k"}}}}
	h.create(p)
	h.waitEvent("cfg", `Warning Failed spec.containers{main}: Error: configmap "settings" not found`)
	h.step(errorRequeue)
	h.waitStatus("cfg", `main=waiting/CreateContainerConfigError (configmap "settings" not found)`)
	h.client.CoreV1().ConfigMaps("ns").Create(context.Background(), &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "ns"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	h.step(errorRequeue)
	h.waitStatus("cfg", "main=running/")
	id := h.rt.Running("main")[0]
	env := map[string]string{}
	for _, kv := range h.rt.Config(id).Env {
		env[kv.Key] = kv.Value
	}
	if env["X"] != "v" || env["HOSTNAME"] != "cfg" {
		t.Errorf("env %v", env)
	}
}

func TestScenarioRestartAdoptsContainers(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("keeper", v1.RestartPolicyAlways, nil, "main"))
	h.waitStatus("keeper", "main=running/ ready=true started=true restarts=0")
	// a leftover of a pod that is gone
	ctx := context.Background()
	sb, _ := h.rt.RunPodSandbox(ctx, &runtimeSandboxConfig{UID: "orphan-uid", Name: "orphan", Namespace: "ns",
		Labels: map[string]string{"io.kubernetes.pod.uid": "orphan-uid"}})
	cid, _ := h.rt.CreateContainer(ctx, sb, &runtimeContainerConfig{Name: "x", Labels: map[string]string{"io.kubernetes.pod.uid": "orphan-uid"}})
	h.rt.StartContainer(ctx, cid)

	h.stop()
	starts := h.callCount("StartContainer main")
	h.start(h.rt)
	h.eventually("orphan removed", func() bool { _, err := h.rt.ContainerStatus(ctx, cid); return err != nil })
	h.settle()
	if n := h.callCount("StartContainer main"); n != starts {
		t.Errorf("the running container was started again after the agent restart")
	}
	h.waitStatus("keeper", "main=running/ ready=true started=true restarts=0")
}

func TestScenarioActiveDeadline(t *testing.T) {
	h := newHarness(t)
	p := podWith("deadline", v1.RestartPolicyAlways, nil, "main")
	d := int64(30)
	p.Spec.ActiveDeadlineSeconds = &d
	h.create(p)
	h.waitStatus("deadline", "main=running/")
	h.step(31 * time.Second)
	h.waitStatus("deadline", "phase=Failed")
	got := h.get("deadline")
	if got.Status.Reason != "DeadlineExceeded" || got.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q message %q", got.Status.Reason, got.Status.Message)
	}
	h.waitEvent("deadline", "Normal DeadlineExceeded : Pod was active on the node longer than the specified deadline")
	if h.callCount("StopContainer main") != 1 {
		t.Errorf("calls %v", h.rt.Calls())
	}
}

func TestScenarioHooks(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var execs []string
	h.rt.SetExec(func(id string, cmd []string) ([]byte, []byte, int, error) {
		mu.Lock()
		execs = append(execs, strings.Join(cmd, " "))
		mu.Unlock()
		if cmd[0] == "fail" {
			return nil, []byte("no"), 1, nil
		}
		return nil, nil, 0, nil
	})
	p := podWith("hooked", v1.RestartPolicyAlways, nil, "main")
	p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{
		PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"post"}}},
		PreStop:   &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"pre"}}},
	}
	h.create(p)
	h.waitStatus("hooked", "main=running/")
	q := h.get("hooked")
	now := metav1.NewTime(h.clock.Now())
	grace := int64(30)
	q.DeletionTimestamp, q.DeletionGracePeriodSeconds = &now, &grace
	h.client.CoreV1().Pods("ns").Update(context.Background(), q, metav1.UpdateOptions{})
	h.eventually("pod deleted", func() bool { return h.wasDeleted("hooked") })
	mu.Lock()
	got := strings.Join(execs, ",")
	mu.Unlock()
	if got != "post,pre" {
		t.Errorf("hooks ran: %s", got)
	}

	// a failing postStart hook kills the container
	f := podWith("badhook", v1.RestartPolicyAlways, nil, "main")
	f.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"fail"}}}}
	h.create(f)
	h.waitEvent("badhook", "Warning FailedPostStartHook spec.containers{main}: PostStartHook failed")
	h.waitEvent("badhook", "Normal Killing spec.containers{main}: FailedPostStartHook")
	h.step(time.Second)
	h.waitStatus("badhook", `main=waiting/PostStartHookError (Exec lifecycle hook ([fail]) for Container "main" in Pod "badhook_ns(uid-badhook)" failed - error: command 'fail' exited with 1: no, message: "no")`)
}

func TestScenarioImagePullErrors(t *testing.T) {
	h := newHarness(t)
	h.rt.SetImagePresent("busybox:1.28", true)
	h.rt.SetPullError("k1s.invalid/none/such:1.0", errors.New("failed to resolve reference"))
	p := podWith("nopull", v1.RestartPolicyAlways, nil, "nopull")
	p.Spec.Containers[0].Image = "k1s.invalid/none/such:1.0"
	h.create(p)
	h.waitEvent("nopull", `Normal Pulling spec.containers{nopull}: Pulling image "k1s.invalid/none/such:1.0"`)
	h.waitEvent("nopull", `Warning Failed spec.containers{nopull}: Failed to pull image "k1s.invalid/none/such:1.0": failed to resolve reference`)
	h.waitEvent("nopull", "Warning Failed spec.containers{nopull}: Error: ErrImagePull")
	h.waitStatus("nopull", "nopull=waiting/ErrImagePull (failed to resolve reference)")
	h.waitEvent("nopull", `Normal BackOff spec.containers{nopull}: Back-off pulling image "k1s.invalid/none/such:1.0"`)
	h.waitEvent("nopull", "Warning Failed spec.containers{nopull}: Error: ImagePullBackOff")
	h.step(errorRequeue)
	h.waitStatus("nopull", `nopull=waiting/ImagePullBackOff (Back-off pulling image "k1s.invalid/none/such:1.0": ErrImagePull: failed to resolve reference)`)

	never := podWith("never", v1.RestartPolicyAlways, nil, "c")
	never.Spec.Containers[0].Image = "busybox:absent"
	never.Spec.Containers[0].ImagePullPolicy = v1.PullNever
	h.create(never)
	h.waitEvent("never", `Warning ErrImageNeverPull spec.containers{c}: Container image "busybox:absent" is not present with pull policy of Never`)

	bad := podWith("badname", v1.RestartPolicyAlways, nil, "c")
	bad.Spec.Containers[0].Image = "busybox:1.28:bad"
	h.create(bad)
	h.waitEvent("badname", `Warning InspectFailed spec.containers{c}: Failed to apply default image tag "busybox:1.28:bad": couldn't parse image name "busybox:1.28:bad": invalid reference format`)
	h.waitEvent("badname", "Warning Failed spec.containers{c}: Error: InvalidImageName")
}
