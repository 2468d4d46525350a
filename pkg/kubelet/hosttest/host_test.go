// Package hosttest runs the kubelet end to end on the real host runtime and
// prober (real processes, real clock) against client-go's fake clientset.
package hosttest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
)

const shimEnv = "K1S_HOSTTEST_SHIM"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(process.ShimMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

type env struct {
	t      *testing.T
	client *fake.Clientset
	k      *kubelet.Kubelet
}

func start(t *testing.T) *env {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := t.TempDir()
	exe, _ := os.Executable()
	rt, err := process.New(process.Options{RootDir: filepath.Join(dir, "runtime"), ShimBinary: exe,
		ShimEnv: []string{shimEnv + "=1"}, HostIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewSimpleClientset()
	ready := make(chan struct{})
	k, err := kubelet.New(kubelet.Dependencies{
		KubeClient: client, NodeName: "vm", NodeIP: "127.0.0.1",
		Runtimes: map[string]runtime.Runtime{"host": rt}, DefaultRuntime: "host",
		RootDir: filepath.Join(dir, "agent"), Clock: clock.RealClock{}, ServerAddress: "127.0.0.1",
		Ready: ready, StopPodsOnExit: true, Version: "v0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	return &env{t: t, client: client, k: k}
}

func (e *env) create(p *v1.Pod) {
	e.t.Helper()
	p.Namespace, p.UID, p.Generation = "ns", types.UID("uid-"+p.Name), 1
	p.Spec.NodeName = "vm"
	p.Status = v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}}
	if _, err := e.client.CoreV1().Pods("ns").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pod(name string) *v1.Pod {
	p, err := e.client.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

func (e *env) wait(desc string, timeout time.Duration, cond func(*v1.Pod) bool) *v1.Pod {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p := e.pod(desc); p != nil && cond(p) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := e.pod(desc)
	e.t.Fatalf("pod %s: condition not reached; status %+v", desc, p.Status)
	return nil
}

func (e *env) events(name string) string {
	list, _ := e.client.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, ev := range list.Items {
		if ev.InvolvedObject.Name == name {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return strings.Join(out, "\n")
}

func (e *env) logs(name, container string) string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/containerLogs/ns/%s/%s", e.k.ServerPort(), name, container))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func sh(name, script string) v1.Container {
	return v1.Container{Name: name, Image: "busybox:1.28", Command: []string{"sh", "-c", script},
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError}
}

func ready(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

func TestHostInitAndApp(t *testing.T) {
	e := start(t)
	grace := int64(2)
	e.create(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "myapp"}, Spec: v1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		InitContainers:                []v1.Container{sh("init-one", "echo one"), sh("init-two", "echo two")},
		Containers:                    []v1.Container{sh("app", "echo The app is running! && sleep 3600")},
	}})
	p := e.wait("myapp", 15*time.Second, ready)
	if p.Status.Phase != v1.PodRunning || p.Status.InitContainerStatuses[1].State.Terminated == nil {
		t.Fatalf("status %+v", p.Status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.logs("myapp", "app") != "The app is running!\n" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the shim writes the log asynchronously
	}
	if got := e.logs("myapp", "app"); got != "The app is running!\n" {
		t.Errorf("logs %q", got)
	}
	if got := e.logs("myapp", "init-two"); got != "two\n" {
		t.Errorf("init logs %q", got)
	}
}

func TestHostCrashLoopAndFallbackMessage(t *testing.T) {
	e := start(t)
	e.create(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crasher"}, Spec: v1.PodSpec{
		Containers: []v1.Container{sh("main", "echo boom; exit 3")},
	}})
	p := e.wait("crasher", 15*time.Second, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term.ExitCode != 3 || term.Reason != "Error" || term.Message != "boom\n" {
		t.Errorf("terminated %+v", term)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.events("crasher"), "BackOff: Back-off restarting failed container main in pod crasher_ns(uid-crasher)") {
		if time.Now().After(deadline) {
			t.Fatalf("events:\n%s", e.events("crasher"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHostLivenessAndReadiness(t *testing.T) {
	e := start(t)
	dir := t.TempDir()
	healthy := filepath.Join(dir, "healthy")
	os.WriteFile(healthy, nil, 0o644)
	c := sh("liveness", "sleep 3600")
	c.LivenessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", healthy}}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 1, SuccessThreshold: 1}
	c.ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", healthy}}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 1, SuccessThreshold: 1}
	grace := int64(1)
	e.create(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "liveness-pod"}, Spec: v1.PodSpec{
		TerminationGracePeriodSeconds: &grace, Containers: []v1.Container{c}}})
	e.wait("liveness-pod", 15*time.Second, ready)
	os.Remove(healthy)
	e.wait("liveness-pod", 20*time.Second, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	ev := e.events("liveness-pod")
	if !strings.Contains(ev, "Killing: Container liveness failed liveness probe, will be restarted") ||
		!strings.Contains(ev, "Unhealthy: Liveness probe failed: cat: ") {
		t.Errorf("events:\n%s", ev)
	}
}

func TestHostGracefulDelete(t *testing.T) {
	e := start(t)
	grace := int64(1)
	e.create(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: v1.PodSpec{
		TerminationGracePeriodSeconds: &grace, Containers: []v1.Container{sh("c", "sleep 3600")}}})
	p := e.wait("bare", 15*time.Second, ready)
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	e.client.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{})
	deadline := time.Now().Add(15 * time.Second)
	for e.pod("bare") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("pod not deleted; status %+v", e.pod("bare").Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
