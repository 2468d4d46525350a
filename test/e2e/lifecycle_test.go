package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// Pod lifecycle on the host runtime, as SPEC.md sections 1-4 and the
// reference recordings of a real 1.37 cluster show it.

func TestInitContainersInOrder(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: myapp-pod, labels: {app: myapp}}
spec:
  containers:
  - {name: myapp-container, image: busybox:1.28, command: ['sh', '-c', 'echo The app is running! && sleep 3600']}
  initContainers:
  - {name: init-one, image: busybox:1.28, command: ['sh', '-c', 'echo one; sleep 2']}
  - {name: init-two, image: busybox:1.28, command: ['sh', '-c', 'echo two; sleep 2']}
`)
	w.WaitStatus(t, "myapp-pod", "Running", 60*time.Second)
	// trace 01 of the reference: Pending, Init:0/2, Init:1/2, PodInitializing, Running
	ExpectSubsequence(t, "init in order", w.Statuses("myapp-pod"), []string{"Init:0/2", "Init:1/2", "PodInitializing", "Running"})
	if st := w.Statuses("myapp-pod"); st[0] != "Pending" && st[0] != "Init:0/2" {
		t.Errorf("first status %q", st[0])
	}
	Contains(t, s.MustKubectl(t, "logs", "myapp-pod", "-n", ns, "-c", "init-one"), "one")
	Contains(t, s.MustKubectl(t, "logs", "myapp-pod", "-n", ns), "The app is running!")
	Eventually(t, 20*time.Second, "pod Ready", func() (bool, string) {
		c := s.Jsonpath(t, ns, "pod/myapp-pod", `{.status.conditions[?(@.type=="Ready")].status}`)
		return c == "True", c
	})
	out := s.MustKubectl(t, "get", "pod", "myapp-pod", "-n", ns, "-o", "jsonpath={.status.phase} {.status.qosClass} {.status.initContainerStatuses[*].state.terminated.reason} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].started}")
	if out != "Running BestEffort Completed Completed true true" {
		t.Errorf("status: %q", out)
	}
	Contains(t, s.MustKubectl(t, "get", "pod", "myapp-pod", "-n", ns, "--template", "{{.status.initContainerStatuses}}"), "init-one", "reason:Completed")
}

func TestInitializingConditionsAndLogs(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: myapp-pod}
spec:
  containers:
  - {name: myapp-container, image: busybox:1.28, command: ['sh', '-c', 'sleep 3600']}
  initContainers:
  - {name: init-myservice, image: busybox:1.28, command: ['sh', '-c', 'until false; do echo waiting for myservice; sleep 2; done']}
  - {name: init-mydb, image: busybox:1.28, command: ['sh', '-c', 'true']}
`)
	Eventually(t, 30*time.Second, "init running", func() (bool, string) {
		st := s.Jsonpath(t, ns, "pod/myapp-pod", "{.status.initContainerStatuses[0].state.running.startedAt}")
		return st != "", st
	})
	cond := func(typ string) string {
		return s.Jsonpath(t, ns, "pod/myapp-pod", fmt.Sprintf(`{.status.conditions[?(@.type=="%s")].status} {.status.conditions[?(@.type=="%s")].reason} {.status.conditions[?(@.type=="%s")].message}`, typ, typ, typ))
	}
	if got, want := cond("Initialized"), "False ContainersNotInitialized containers with incomplete status: [init-myservice init-mydb]"; got != want {
		t.Errorf("Initialized: %q, want %q", got, want)
	}
	if got, want := cond("Ready"), "False ContainersNotReady containers with unready status: [myapp-container]"; got != want {
		t.Errorf("Ready: %q, want %q", got, want)
	}
	if got, want := cond("ContainersReady"), "False ContainersNotReady containers with unready status: [myapp-container]"; got != want {
		t.Errorf("ContainersReady: %q, want %q", got, want)
	}
	if got := s.Jsonpath(t, ns, "pod/myapp-pod", "{.status.phase} {.status.containerStatuses[0].state.waiting.reason} {.status.initContainerStatuses[1].state.waiting.reason}"); got != "Pending PodInitializing PodInitializing" {
		t.Errorf("waiting states: %q", got)
	}
	r := s.Kubectl(t, "logs", "myapp-pod", "-n", ns)
	Contains(t, r.Stderr, `Defaulted container "myapp-container" out of: myapp-container, init-myservice (init), init-mydb (init)`,
		`Error from server (BadRequest): container "myapp-container" in pod "myapp-pod" is waiting to start: PodInitializing`)
	Contains(t, s.MustKubectl(t, "logs", "myapp-pod", "-n", ns, "-c", "init-myservice"), "waiting for myservice")
	MatchLines(t, s.MustKubectl(t, "get", "pod", "myapp-pod", "-n", ns), `^myapp-pod\s+0/1\s+Init:0/2\s+0\s+\d+s$`)
}

func TestInitFailingCrashLoop(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: myapp-pod}
spec:
  containers:
  - {name: myapp-container, image: busybox:1.28, command: ['sh', '-c', 'echo The app is running! && sleep 3600']}
  initContainers:
  - {name: init-one, image: busybox:1.28, command: ['sh', '-c', 'echo one']}
  - {name: init-two, image: busybox:1.28, command: ['sh', '-c', 'echo two']}
  - {name: init-failed-test, image: busybox:1.28, command: ['sh', '-c', 'hello.sh']}
`)
	msgs := s.WatchJSONPath(t, ns, "pod/myapp-pod", "{.status.initContainerStatuses[2].state.waiting.message}")
	w.WaitStatus(t, "myapp-pod", "Init:CrashLoopBackOff", 60*time.Second)
	// upstream 1.37 (trace 03): Init:Error for the back-off, Init:CrashLoopBackOff
	// at the next sync, then the init container runs again
	ExpectSubsequence(t, "failing init", w.Statuses("myapp-pod"), []string{"Init:2/3", "Init:Error", "Init:2/3", "Init:Error", "Init:CrashLoopBackOff"})
	Contains(t, s.MustKubectl(t, "logs", "myapp-pod", "-n", ns, "-c", "init-failed-test"), "hello.sh: not found")
	Eventually(t, 10*time.Second, "waiting message", func() (bool, string) {
		return msgs.Matches(`back-off 10s restarting failed container=init-failed-test pod=myapp-pod_` + ns + `\([0-9a-f-]+\)`), msgs.String()
	})
	Eventually(t, 30*time.Second, "second failure recorded", func() (bool, string) {
		out := s.Jsonpath(t, ns, "pod/myapp-pod", "{.status.phase} {.status.initContainerStatuses[2].lastState.terminated.exitCode} {.status.initContainerStatuses[2].lastState.terminated.reason}")
		return out == "Pending 127 Error", out
	})
	d := s.MustKubectl(t, "describe", "pod", "myapp-pod", "-n", ns)
	MatchLines(t, d,
		`^Status:\s+Pending$`,
		`^Init Containers:$`,
		`^\s+Last State:\s+Terminated$`,
		`^\s+Exit Code:\s+127$`,
		`Warning\s+BackOff\s+.*kubelet\s+Back-off restarting failed container init-failed-test in pod myapp-pod_`+ns+`\(`,
		`Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned `+ns+`/myapp-pod to `,
	)
}

func TestInitFailingNeverFailsPod(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: init-never}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, command: ['sh', '-c', 'sleep 3600']}
  initContainers:
  - {name: init-ok, image: busybox, command: ['sh', '-c', 'echo ok']}
  - {name: init-fail, image: busybox, command: ['sh', '-c', 'echo failing; exit 1']}
`)
	Eventually(t, 60*time.Second, "pod Failed", func() (bool, string) {
		p := s.Jsonpath(t, ns, "pod/init-never", "{.status.phase}")
		return p == "Failed", p
	})
	w.WaitStatus(t, "init-never", "Init:Error", 10*time.Second)
	ExpectSubsequence(t, "init never", w.Statuses("init-never"), []string{"Init:0/2", "Init:Error"})
	if got := s.Jsonpath(t, ns, "pod/init-never", "{.status.initContainerStatuses[1].state.terminated.exitCode} {.status.containerStatuses[0].state.waiting.reason} {.status.initContainerStatuses[1].restartCount}"); got != "1 PodInitializing 0" {
		t.Errorf("statuses: %q", got)
	}
}

func TestExitCodesAndRestartPolicies(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	pod := func(name, policy, code string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  restartPolicy: %s\n  containers: [{name: c, image: busybox, command: ['sh', '-c', 'sleep 1; exit %s']}]\n---\n", name, policy, code)
	}
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, pod("exit0-never", "Never", "0")+pod("exit1-never", "Never", "1")+pod("exit1-onfailure", "OnFailure", "1")+pod("exit0-always", "Always", "0")+pod("exit0-onfailure", "OnFailure", "0"))
	phase := func(name, want string) {
		Eventually(t, 60*time.Second, name+" "+want, func() (bool, string) {
			p := s.Jsonpath(t, ns, "pod/"+name, "{.status.phase}")
			return p == want, p
		})
	}
	phase("exit0-never", "Succeeded")
	phase("exit1-never", "Failed")
	phase("exit0-onfailure", "Succeeded")
	w.WaitStatus(t, "exit1-onfailure", "CrashLoopBackOff", 60*time.Second)
	w.WaitStatus(t, "exit0-always", "CrashLoopBackOff", 60*time.Second)
	ExpectSubsequence(t, "exit0-never", w.Statuses("exit0-never"), []string{"Running", "Completed"})
	ExpectSubsequence(t, "exit1-never", w.Statuses("exit1-never"), []string{"Running", "Error"})
	ExpectSubsequence(t, "exit1-onfailure", w.Statuses("exit1-onfailure"), []string{"Running", "Error", "Running", "Error", "CrashLoopBackOff"})
	ExpectSubsequence(t, "exit0-always", w.Statuses("exit0-always"), []string{"Running", "Completed", "Running", "Completed", "CrashLoopBackOff"})
	for name, want := range map[string]string{
		"exit0-never": "Completed 0", "exit1-never": "Error 1",
	} {
		if got := s.Jsonpath(t, ns, "pod/"+name, "{.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}"); got != want {
			t.Errorf("%s terminated: %q, want %q", name, got, want)
		}
	}
	// finished pods: PodCompleted / PodFailed, sandbox gone
	cond := s.Jsonpath(t, ns, "pod/exit1-never", `{.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="PodReadyToStartContainers")].status} {.status.conditions[?(@.type=="PodReadyToStartContainers")].reason}`)
	if cond != "PodFailed False PodSandboxNotReady" {
		t.Errorf("exit1-never conditions: %q", cond)
	}
	cond = s.Jsonpath(t, ns, "pod/exit0-never", `{.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="Initialized")].reason}`)
	if cond != "PodCompleted PodCompleted" {
		t.Errorf("exit0-never conditions: %q", cond)
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	w := s.WatchPods(t, ns)
	s.MustKubectl(t, "run", "crasher", "-n", ns, "--image=busybox", "--restart=Always", "--", "sh", "-c", "echo started; sleep 1; exit 3")
	msgs := s.WatchJSONPath(t, ns, "pod/crasher", "{.status.containerStatuses[0].state.waiting.message}")
	Eventually(t, 90*time.Second, "two restarts after back-off", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/crasher", "{.status.containerStatuses[0].restartCount}")
		return r == "3", r
	})
	// trace 12: Running, Error, Running 1, Error (10 s back-off), CrashLoopBackOff, Running 2, Error, ...
	ExpectSubsequence(t, "crash loop", w.Statuses("crasher"), []string{"Running", "Error", "Running", "Error", "CrashLoopBackOff", "Running", "Error", "CrashLoopBackOff", "Running"})
	for _, d := range []string{"10s", "20s"} {
		if !msgs.Matches(`back-off ` + d + ` restarting failed container=crasher pod=crasher_` + ns + `\([0-9a-f-]+\)`) {
			t.Errorf("no %s waiting message in %q", d, msgs.String())
		}
	}
	if got := s.Jsonpath(t, ns, "pod/crasher", "{.status.phase} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].lastState.terminated.reason}"); got != "Running 3 Error" {
		t.Errorf("status %q", got)
	}
	Contains(t, s.MustKubectl(t, "logs", "crasher", "-n", ns, "--previous"), "started")
	MatchLines(t, strings.Join(w.lines("crasher"), "\n"), `^crasher\s+0/1\s+CrashLoopBackOff\s+2\s+\(\d+s\s+ago\)\s+\d+s$`)
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=BackOff", "-o", "jsonpath={.items[*].message}")
	Contains(t, ev, "Back-off restarting failed container crasher in pod crasher_"+ns+"(")
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestLivenessExecRestarts(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: liveness-pod}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: liveness
    image: busybox
    command: ['sh', '-c', 'touch healthy; sleep 3600']
    livenessProbe:
      exec: {command: [cat, healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: liveness-other}
spec:
  containers:
  - name: liveness
    image: busybox
    command: ['sh', '-c', 'touch healthy; sleep 3600']
    livenessProbe:
      exec: {command: [cat, healthy]}
      periodSeconds: 1
`)
	for _, p := range []string{"liveness-pod", "liveness-other"} {
		s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/"+p, "-n", ns, "--timeout=60s")
	}
	s.MustKubectl(t, "exec", "liveness-pod", "-n", ns, "--", "rm", "healthy")
	Eventually(t, 60*time.Second, "restart", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/liveness-pod", "{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running.startedAt}")
		return strings.HasPrefix(r, "1 2"), r
	})
	if r := s.Jsonpath(t, ns, "pod/liveness-other", "{.status.containerStatuses[0].restartCount}"); r != "0" {
		t.Errorf("the other pod restarted: %s", r)
	}
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=liveness-pod", "-o", `jsonpath={range .items[*]}{.reason}|{.message}{"\n"}{end}`)
	Contains(t, ev, "Unhealthy|Liveness probe failed: cat: healthy: No such file or directory\n",
		"Killing|Container liveness failed liveness probe, will be restarted")
	// the restarted container got a fresh working directory: healthy again
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/liveness-pod", "-n", ns, "--timeout=30s")
	if got := s.Jsonpath(t, ns, "pod/liveness-pod", "{.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}"); got != "Error 137" {
		t.Errorf("last state %q", got)
	}
}

func TestLivenessHTTPAndReadinessExec(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	port := freePort(t)
	s.MustApply(t, ns, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: pod-liveness-httpget1}
spec:
  containers:
  - name: container
    image: kubetm/app
    command: [k1s, app, --port, "%d"]
    ports: [{containerPort: %d, name: http}]
    livenessProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: pod-readiness-exec1}
spec:
  containers:
  - name: readiness
    image: kubetm/app
    command: ['sh', '-c', 'sleep 3600']
    readinessProbe:
      exec: {command: [cat, readiness/ready.txt]}
      periodSeconds: 1
      successThreshold: 3
`, port, port))
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/pod-liveness-httpget1", "-n", ns, "--timeout=60s")
	Eventually(t, 30*time.Second, "readiness probe failing", func() (bool, string) {
		ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=pod-readiness-exec1,reason=Unhealthy", "-o", "jsonpath={.items[*].message}")
		return strings.Contains(ev, "Readiness probe failed: cat: readiness/ready.txt: No such file or directory"), ev
	})
	MatchLines(t, s.MustKubectl(t, "get", "pod", "pod-readiness-exec1", "-n", ns), `^pod-readiness-exec1\s+0/1\s+Running\s+0\s+\d+s$`)
	s.MustKubectl(t, "exec", "pod-readiness-exec1", "-n", ns, "--", "sh", "-c", "mkdir -p readiness && touch readiness/ready.txt")
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/pod-readiness-exec1", "-n", ns, "--timeout=30s")

	// liveness httpGet: /status500 makes /health fail, the kubelet restarts the container
	resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/status500", port))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp
	Eventually(t, 60*time.Second, "restart after /status500", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/pod-liveness-httpget1", "{.status.containerStatuses[0].restartCount}")
		return r == "1", r
	})
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=pod-liveness-httpget1", "-o", `jsonpath={range .items[*]}{.reason}|{.message}{"\n"}{end}`)
	Contains(t, ev, "Unhealthy|Liveness probe failed: HTTP probe failed with statuscode: 500", "Killing|Container container failed liveness probe, will be restarted")
}

func TestStartupProbeGates(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: startup}
spec:
  containers:
  - name: c
    image: busybox
    command: ['sh', '-c', 'sleep 3; touch started; sleep 3600']
    startupProbe:
      exec: {command: [cat, started]}
      periodSeconds: 1
      failureThreshold: 20
    readinessProbe:
      exec: {command: ['true']}
      periodSeconds: 1
`)
	Eventually(t, 10*time.Second, "running, not started", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/startup", "{.status.phase} {.status.containerStatuses[0].started} {.status.containerStatuses[0].ready}")
		return r == "Running false false", r
	})
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/startup", "-n", ns, "--timeout=30s")
	if r := s.Jsonpath(t, ns, "pod/startup", "{.status.containerStatuses[0].started} {.status.containerStatuses[0].restartCount}"); r != "true 0" {
		t.Errorf("after start: %q", r)
	}
	ExpectSubsequence(t, "startup", w.Statuses("startup"), []string{"Running"})
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=Unhealthy", "-o", "jsonpath={.items[*].message}")
	Contains(t, ev, "Startup probe failed: cat: started: No such file or directory")
}

func TestGracefulDeleteAndSidecar(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: with-sidecar}
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - {name: logger, image: busybox, restartPolicy: Always, command: ['sh', '-c', 'trap "exit 0" TERM; while true; do echo tick; sleep 1; done']}
  containers:
  - {name: app, image: busybox, command: ['sh', '-c', 'trap "exit 0" TERM; echo app; while true; do sleep 1; done']}
`)
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/with-sidecar", "-n", ns, "--timeout=60s")
	MatchLines(t, s.MustKubectl(t, "get", "pod", "with-sidecar", "-n", ns), `^with-sidecar\s+2/2\s+Running\s+0\s+\d+s$`)
	Contains(t, s.MustKubectl(t, "logs", "with-sidecar", "-n", ns, "-c", "logger"), "tick")
	start := time.Now()
	Contains(t, s.MustKubectl(t, "delete", "pod", "with-sidecar", "-n", ns), `pod "with-sidecar" deleted`)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("graceful delete took %s", d)
	}
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=Killing", "-o", "jsonpath={.items[*].message}")
	Contains(t, ev, "Stopping container app", "Stopping container logger")
}

func TestLogsExecPortForward(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	port := freePort(t)
	s.MustApply(t, ns, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: kubetm/app
    command: [k1s, app, --port, "%d"]
    env: [{name: GREETING, value: hello}, {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
  - name: counter
    image: busybox
    command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line $i; done; sleep 3600']
`, port))
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/web", "-n", ns, "--timeout=60s")
	Eventually(t, 10*time.Second, "log lines", func() (bool, string) {
		r := s.Kubectl(t, "logs", "web", "-n", ns, "-c", "counter")
		return strings.Contains(r.Stdout, "line 5"), r.Stdout
	})
	if out := s.MustKubectl(t, "logs", "web", "-n", ns, "-c", "counter", "--tail=2"); out != "line 4\nline 5\n" {
		t.Errorf("--tail=2: %q", out)
	}
	MatchLines(t, s.MustKubectl(t, "logs", "web", "-n", ns, "-c", "counter", "--timestamps", "--tail=1"), `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 5$`)
	Contains(t, s.MustKubectl(t, "logs", "web", "-n", ns, "--all-containers", "--prefix"), "[pod/web/counter] line 1")
	if out := s.MustKubectl(t, "exec", "web", "-n", ns, "-c", "app", "--", "sh", "-c", "echo $GREETING $POD_NAME $HOSTNAME"); out != "hello web web\n" {
		t.Errorf("exec env: %q", out)
	}
	r := s.Kubectl(t, "exec", "web", "-n", ns, "-c", "app", "--", "sh", "-c", "exit 7")
	if r.Code != 7 || !strings.Contains(r.Stderr, "command terminated with exit code 7") {
		t.Errorf("exec exit code: %d %q", r.Code, r.Stderr)
	}
	if out := s.KubectlIn(t, "from stdin\n", "exec", "-i", "web", "-n", ns, "-c", "app", "--", "cat"); out.Stdout != "from stdin\n" {
		t.Errorf("exec -i: %+v", out)
	}
	// port-forward to the app's port
	local := freePort(t)
	pf := startKubectl(t, s, "port-forward", "-n", ns, "pod/web", fmt.Sprintf("%d:%d", local, port))
	defer pf.Stop()
	Eventually(t, 20*time.Second, "port-forward answers", func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/hostname", local))
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(body, "Hostname : web"), body
	})
}

// kubectl attach -i feeds the main process's stdin (stdinOnce: the stream
// closes at EOF and the container ends).
func TestAttach(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    stdin: true
    stdinOnce: true
    command: ['sh', '-c', 'while read l; do echo got $l; done; echo bye']
`)
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/once", "-n", ns, "--timeout=60s")
	r := s.KubectlIn(t, "hello\n", "attach", "-i", "once", "-n", ns)
	if r.Code != 0 || !strings.Contains(r.Stdout, "got hello\nbye\n") {
		t.Errorf("attach: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	Eventually(t, 30*time.Second, "Succeeded", func() (bool, string) {
		p := s.Jsonpath(t, ns, "pod/once", "{.status.phase}")
		return p == "Succeeded", p
	})
}

func TestLogsFollow(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done']
`)
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/ticker", "-n", ns, "--timeout=60s")
	f := s.WatchOutput(t, "logs", "-f", "ticker", "-n", ns)
	Eventually(t, 20*time.Second, "followed lines", func() (bool, string) { return f.Matches(`tick 3`), f.String() })
	if out := s.MustKubectl(t, "logs", "ticker", "-n", ns, "--since=1h"); !strings.Contains(out, "tick 0") {
		t.Errorf("--since=1h: %q", out)
	}
}
