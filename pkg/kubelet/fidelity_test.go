package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/prober"
	fakeruntime "k1s.dev/k1s/pkg/kubelet/runtime/fake"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The scenarios of ../shared/fidelity, driven on the fake runtime with a
// fake clock: every status the real 1.37 kubelet wrote (testdata/reference,
// copied from ../shared/reference/traces) must be written by ours, in the
// same order, and ours must write no other; the kubelet's events must be
// the same set. This is what ../shared/fidelity/compare checks on the real
// binary.

var (
	durRe = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s|m|h)(\d+(\.\d+)?(ms|s|m))*\b`)
	uidRe = regexp.MustCompile(`\(uid-[a-z0-9-]+\)`)
)

func normalize(s string) string {
	s = strings.ReplaceAll(s, "_ns(", "_<ns>(")
	s = strings.ReplaceAll(s, "ns/", "<ns>/")
	s = uidRe.ReplaceAllString(s, "(<uid>)")
	s = durRe.ReplaceAllString(s, "<dur>")
	s = regexp.MustCompile(`Image size: \d+ bytes`).ReplaceAllString(s, "Image size: <n> bytes")
	return s
}

// timelineLine is ../shared/fidelity/record's pod_state.
func timelineLine(p *v1.Pod) string {
	st := p.Status
	var conds []string
	cs := append([]v1.PodCondition(nil), st.Conditions...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Type < cs[j].Type })
	for _, c := range cs {
		x := fmt.Sprintf("%s=%s", c.Type, c.Status)
		if c.Reason != "" {
			x += "/" + c.Reason
		}
		conds = append(conds, x)
	}
	var parts []string
	if p.DeletionTimestamp != nil {
		parts = append(parts, "deleting")
	}
	parts = append(parts, "phase="+string(st.Phase))
	if len(conds) > 0 {
		parts = append(parts, strings.Join(conds, " "))
	}
	one := func(prefix string, c v1.ContainerStatus) string {
		var k, r, ex, msg string
		switch {
		case c.State.Waiting != nil:
			k, r = "waiting", c.State.Waiting.Reason
			if c.State.Waiting.Message != "" {
				msg = " (" + normalize(c.State.Waiting.Message) + ")"
			}
		case c.State.Running != nil:
			k = "running"
		case c.State.Terminated != nil:
			k, r, ex = "terminated", c.State.Terminated.Reason, fmt.Sprintf(":%d", c.State.Terminated.ExitCode)
		default:
			k = "unknown"
		}
		started := "none"
		if c.Started != nil {
			started = fmt.Sprint(*c.Started)
		}
		return fmt.Sprintf("%s%s=%s/%s%s%s ready=%v started=%s restarts=%d", prefix, c.Name, k, r, ex, msg, c.Ready, started, c.RestartCount)
	}
	for _, c := range st.InitContainerStatuses {
		parts = append(parts, one("init:", c))
	}
	for _, c := range st.ContainerStatuses {
		parts = append(parts, one("", c))
	}
	return strings.Join(parts, " | ")
}

func readLines(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "# ") {
			out = append(out, l)
		}
	}
	return out
}

// compareSeq reports what compare would: missing, extra, order.
func compareSeq(ref, ours []string, transient map[string]bool) []string {
	inRef, inOurs := map[string]bool{}, map[string]bool{}
	for _, l := range ref {
		inRef[l] = true
	}
	for _, l := range ours {
		inOurs[l] = true
	}
	var out, commonRef, commonOurs []string
	for _, l := range ref {
		if !inOurs[l] && !transient[l] {
			out = append(out, "missing  "+l)
		}
		if inOurs[l] {
			commonRef = append(commonRef, l)
		}
	}
	for _, l := range ours {
		if !inRef[l] && !transient[l] {
			out = append(out, "extra    "+l)
		}
		if inRef[l] {
			commonOurs = append(commonOurs, l)
		}
	}
	// ours may repeat a state the reference shows once (A B A): compare the
	// order of first appearances
	if strings.Join(dedupe(commonRef), "\n") != strings.Join(dedupe(commonOurs), "\n") {
		out = append(out, "order    reference "+strings.Join(commonRef, " → "), "         ours      "+strings.Join(commonOurs, " → "))
	}
	return out
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range l {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// kubeletEvents are the pod's events as the timeline prints them, minus the
// prober's (Unhealthy), which the fake prober does not emit.
func (h *harness) kubeletEvents(pod string) []string {
	list, _ := h.client.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name != pod || e.Reason == "Unhealthy" {
			continue
		}
		obj := "Pod/" + pod
		if e.InvolvedObject.FieldPath != "" {
			obj += "/" + e.InvolvedObject.FieldPath
		}
		out = append(out, normalize(fmt.Sprintf("%s %s %s [%s] %s", e.Type, e.Reason, obj, e.Source.Component, e.Message)))
	}
	sort.Strings(out)
	return dedupe(out)
}

func (h *harness) checkReference(scenario string, pods ...string) {
	h.t.Helper()
	h.settle()
	transient := map[string]bool{}
	for _, l := range readLines(h.t, "testdata/reference/"+scenario+".transient") {
		transient[l] = true
	}
	var refEvents []string
	for _, l := range readLines(h.t, "testdata/reference/"+scenario+".events") {
		if strings.Contains(l, " Unhealthy ") {
			continue
		}
		refEvents = append(refEvents, l)
	}
	for _, pod := range pods {
		ref := readLines(h.t, "testdata/reference/"+scenario+"."+pod+".status")
		h.watchMu.Lock()
		ours := append([]string(nil), h.timeline[pod]...)
		h.watchMu.Unlock()
		var kept []string
		for _, l := range ours {
			if l != "phase=Pending" && l != "phase=Pending | PodScheduled=True" {
				kept = append(kept, l)
			}
		}
		if diff := compareSeq(ref, kept, transient); len(diff) > 0 {
			h.t.Errorf("%s pod %s:\n  %s\nours:\n  %s", scenario, pod, strings.Join(diff, "\n  "), strings.Join(kept, "\n  "))
		}
		var want []string
		for _, e := range refEvents {
			if strings.Contains(e, " Pod/"+pod+"/") || strings.Contains(e, " Pod/"+pod+" ") {
				want = append(want, e)
			}
		}
		sort.Strings(want)
		got := h.kubeletEvents(pod)
		if diff := compareSeq(want, got, transient); len(diff) > 0 {
			h.t.Errorf("%s pod %s events:\n  %s", scenario, pod, strings.Join(diff, "\n  "))
		}
	}
}

// fidelityPod is a pod as the scenarios write them.
func fidelityPod(name string, policy v1.RestartPolicy, image string, inits []string, apps ...string) *v1.Pod {
	p := podWith(name, policy, inits, apps...)
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = image
	}
	return p
}

// exitRunning ends the running instance of a container once it shows in
// the status as running with the given restart count.
func (h *harness) exitRunning(pod, container string, restarts int, code int32) {
	h.t.Helper()
	h.waitStatus(pod, fmt.Sprintf("%s=running/ ready=", container))
	h.waitStatus(pod, fmt.Sprintf("%s=running/", container))
	h.eventually(container+" running", func() bool {
		st := h.get(pod)
		for _, l := range [][]v1.ContainerStatus{st.Status.ContainerStatuses, st.Status.InitContainerStatuses} {
			for _, c := range l {
				if c.Name == container && c.State.Running != nil && int(c.RestartCount) == restarts {
					return true
				}
			}
		}
		return false
	})
	ids := h.rt.Running(container)
	if len(ids) == 0 {
		h.t.Fatalf("%s not running", container)
	}
	h.rt.Exit(ids[0], code)
}

func TestFidelity01InitSleep(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("myapp-pod", v1.RestartPolicyAlways, []string{"init-one", "init-two"}, "myapp-container"))
	h.exitRunning("myapp-pod", "init-one", 0, 0)
	h.exitRunning("myapp-pod", "init-two", 0, 0)
	h.waitStatus("myapp-pod", "myapp-container=running/ ready=true")
	h.checkReference("01-init-sleep", "myapp-pod")
}

func TestFidelity03InitCrashLoop(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("myapp-pod", v1.RestartPolicyAlways, []string{"init-one", "init-two", "init-failed-test"}, "myapp-container"))
	h.exitRunning("myapp-pod", "init-one", 0, 0)
	h.exitRunning("myapp-pod", "init-two", 0, 0)
	h.exitRunning("myapp-pod", "init-failed-test", 0, 127)
	h.exitRunning("myapp-pod", "init-failed-test", 1, 127)
	h.waitStatus("myapp-pod", "init-failed-test=terminated/Error:127 ready=false started=false restarts=1")
	h.step(10 * time.Second)
	h.exitRunning("myapp-pod", "init-failed-test", 2, 127)
	h.waitStatus("myapp-pod", "init-failed-test=terminated/Error:127 ready=false started=false restarts=2")
	h.step(20 * time.Second)
	h.exitRunning("myapp-pod", "init-failed-test", 3, 127)
	h.waitStatus("myapp-pod", "init-failed-test=terminated/Error:127 ready=false started=false restarts=3")
	h.checkReference("03-init-crashloop", "myapp-pod")
}

func TestFidelity04InitFailNever(t *testing.T) {
	h := newHarness(t)
	p := podWith("once", v1.RestartPolicyNever, []string{"init-failed-test"}, "app")
	h.create(p)
	h.exitRunning("once", "init-failed-test", 0, 127)
	h.waitStatus("once", "phase=Failed")
	h.checkReference("04-init-fail-never", "once")
}

func TestFidelity05ExitCodes(t *testing.T) {
	h := newHarness(t)
	h.create(fidelityPod("ok0", v1.RestartPolicyNever, "busybox", nil, "main"))
	h.create(fidelityPod("fail1", v1.RestartPolicyNever, "busybox", nil, "main"))
	h.create(fidelityPod("retry", v1.RestartPolicyOnFailure, "busybox", nil, "main"))
	for _, p := range []string{"ok0", "fail1", "retry"} {
		h.waitStatus(p, "main=running/ ready=true")
	}
	h.exitRunningIn("ok0", 0)
	h.exitRunningIn("fail1", 1)
	h.exitRunning("retry", "main", 0, 1)
	h.exitRunning("retry", "main", 1, 1)
	h.waitStatus("retry", "main=terminated/Error:1 ready=false started=false restarts=1")
	h.step(10 * time.Second)
	h.exitRunning("retry", "main", 2, 1)
	h.waitStatus("retry", "main=terminated/Error:1 ready=false started=false restarts=2")
	h.waitStatus("ok0", "phase=Succeeded")
	h.waitStatus("fail1", "phase=Failed")
	h.checkReference("05-exit-codes", "ok0", "fail1", "retry")
}

// exitRunningIn ends the only container ("main") of a pod.
func (h *harness) exitRunningIn(pod string, code int32) {
	h.t.Helper()
	st := h.get(pod).Status.ContainerStatuses[0]
	h.rt.Exit(strings.TrimPrefix(st.ContainerID, "host://"), code)
}

func TestFidelity06CrashLoop(t *testing.T) {
	h := newHarness(t)
	h.create(fidelityPod("crasher", v1.RestartPolicyAlways, "busybox", nil, "crasher"))
	h.exitRunning("crasher", "crasher", 0, 3)
	h.exitRunning("crasher", "crasher", 1, 3)
	for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		h.waitStatus("crasher", fmt.Sprintf("crasher=terminated/Error:3 ready=false started=false restarts=%d", i+1))
		h.step(d)
		if i < 2 {
			h.exitRunning("crasher", "crasher", i+2, 3)
		}
	}
	h.waitStatus("crasher", "crasher=running/ ready=true started=true restarts=4")
	h.checkReference("06-crashloop", "crasher")
}

func TestFidelity07LivenessExec(t *testing.T) {
	h := newHarness(t)
	p := fidelityPod("liveness-pod", v1.RestartPolicyAlways, "gcr.io/terrycho-sandbox/liveness:v1", nil, "liveness")
	p.Spec.Containers[0].ImagePullPolicy = v1.PullIfNotPresent
	p.Spec.Containers[0].LivenessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}}
	pod := h.create(p)
	h.waitStatus("liveness-pod", "liveness=running/ ready=true")
	h.probes.set(pod.UID, h.get("liveness-pod").Status.ContainerStatuses[0].ContainerID, prober.Liveness, prober.Failure)
	h.waitStatus("liveness-pod", "liveness=running/ ready=true started=true restarts=1")
	h.checkReference("07-liveness-exec", "liveness-pod")
}

func TestFidelity09StartupProbe(t *testing.T) {
	h := newHarness(t)
	p := fidelityPod("slow-start", v1.RestartPolicyAlways, "busybox", nil, "main")
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/started"}}}}
	p.Spec.Containers[0].StartupProbe, p.Spec.Containers[0].LivenessProbe, p.Spec.Containers[0].ReadinessProbe = probe, probe, probe
	pod := h.create(p)
	h.waitStatus("slow-start", "main=running/ ready=false started=false")
	id := h.get("slow-start").Status.ContainerStatuses[0].ContainerID
	h.probes.set(pod.UID, id, prober.Startup, prober.Success)
	h.waitStatus("slow-start", "main=running/ ready=false started=true")
	h.probes.set(pod.UID, id, prober.Readiness, prober.Success)
	h.waitStatus("slow-start", "main=running/ ready=true started=true")
	h.checkReference("09-startup-probe", "slow-start")
}

func TestFidelity11MultiContainer(t *testing.T) {
	h := newHarness(t)
	p := fidelityPod("two-containers", v1.RestartPolicyAlways, "busybox", nil, "nginx-container", "debian-container")
	p.Spec.Containers[0].Image = "nginx"
	p.Spec.Volumes = []v1.Volume{{Name: "shared-data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "shared-data", MountPath: "/usr/share/nginx/html"}}
	p.Spec.Containers[1].VolumeMounts = []v1.VolumeMount{{Name: "shared-data", MountPath: "/pod-data"}}
	h.create(p)
	h.waitStatus("two-containers", "phase=Running | ContainersReady=True")
	h.checkReference("11-multi-container", "two-containers")
}

func TestFidelity14Eviction(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("c", fakeruntime.Behavior{IgnoreTerm: true})
	h.create(fidelityPod("bare", v1.RestartPolicyAlways, "busybox", nil, "c"))
	h.waitStatus("bare", "c=running/ ready=true")
	// what the eviction API does: a DisruptionTarget condition, then a graceful delete
	p := h.get("bare")
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue,
		Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting", LastTransitionTime: metav1.NewTime(h.clock.Now())})
	p, err := h.client.CoreV1().Pods("ns").UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	now := metav1.NewTime(h.clock.Now())
	grace := int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	h.client.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{})
	h.eventually("deleted", func() bool { return h.wasDeleted("bare") })
	h.checkReference("14-cordon-drain", "bare")
}

func TestFidelity08ReadinessExec(t *testing.T) {
	h := newHarness(t)
	p := fidelityPod("readiness-exec", v1.RestartPolicyAlways, "busybox", nil, "main")
	p.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/ready.txt"}}}}
	pod := h.create(p)
	h.waitStatus("readiness-exec", "main=running/ ready=false started=true")
	id := h.get("readiness-exec").Status.ContainerStatuses[0].ContainerID
	h.probes.set(pod.UID, id, prober.Readiness, prober.Success)
	h.waitStatus("readiness-exec", "main=running/ ready=true started=true")
	h.probes.set(pod.UID, id, prober.Readiness, prober.Failure)
	h.waitStatus("readiness-exec", "main=running/ ready=false started=true")
	h.checkReference("08-readiness-exec", "readiness-exec")
}
