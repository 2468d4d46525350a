package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Workload controllers, seed 003 and SPEC.md section 6.

func deployment(image, v string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: myapp-deployment}
spec:
  replicas: 4
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: myapp}}
  template:
    metadata: {labels: {app: myapp}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: myapp, image: %s, command: ['sh', '-c', 'sleep 3600'], env: [{name: V, value: "%s"}]}]
`, image, v)
}

func TestRollingUpdateHistoryUndo(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, deployment("busybox", "1"))
	out := s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")
	Contains(t, out, `deployment "myapp-deployment" successfully rolled out`)
	Contains(t, s.MustKubectl(t, "set", "image", "deployment/myapp-deployment", "myapp=busybox:1.28", "-n", ns), "deployment.apps/myapp-deployment image updated")
	out = s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")
	Contains(t, out, "new replicas have been updated...", `deployment "myapp-deployment" successfully rolled out`)
	Contains(t, s.MustKubectl(t, "set", "env", "deployment/myapp-deployment", "V=3", "-n", ns), "deployment.apps/myapp-deployment env updated")
	s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")

	out = s.MustKubectl(t, "rollout", "history", "deployment", "myapp-deployment", "-n", ns)
	MatchLines(t, out, `^deployment.apps/myapp-deployment $`, `^REVISION\s+CHANGE-CAUSE$`, `^1\s+<none>$`, `^2\s+<none>$`, `^3\s+<none>$`)
	out = s.MustKubectl(t, "rollout", "history", "deployment", "myapp-deployment", "-n", ns, "--revision=2")
	Contains(t, out, "deployment.apps/myapp-deployment with revision #2", "Image:\tbusybox:1.28")

	Contains(t, s.MustKubectl(t, "rollout", "undo", "deployment", "myapp-deployment", "-n", ns), "deployment.apps/myapp-deployment rolled back")
	s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")
	// revision 2 was renumbered to 4
	out = s.MustKubectl(t, "rollout", "history", "deployment", "myapp-deployment", "-n", ns)
	MatchLines(t, out, `^1\s+<none>$`, `^3\s+<none>$`, `^4\s+<none>$`)
	r := s.Kubectl(t, "rollout", "undo", "deployment", "myapp-deployment", "-n", ns, "--to-revision=2")
	if r.Code == 0 || !strings.Contains(r.Stderr, "error: unable to find specified revision 2 in history") {
		t.Errorf("undo to a renumbered revision: %d %q", r.Code, r.Stderr)
	}
	Contains(t, s.MustKubectl(t, "rollout", "undo", "deployment", "myapp-deployment", "-n", ns, "--to-revision=1"), "rolled back")
	s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")
	out = s.MustKubectl(t, "rollout", "history", "deployment", "myapp-deployment", "-n", ns)
	MatchLines(t, out, `^3\s+<none>$`, `^4\s+<none>$`, `^5\s+<none>$`)
	if strings.Contains(out, "\n1 ") {
		t.Errorf("revision 1 still listed:\n%s", out)
	}
	if got := s.Jsonpath(t, ns, "deploy/myapp-deployment", "{.spec.template.spec.containers[0].image} {.status.availableReplicas} {.status.updatedReplicas}"); got != "busybox 4 4" {
		t.Errorf("after undo to 1: %q", got)
	}
	out = s.MustKubectl(t, "get", "rs", "-n", ns, "-o", "wide")
	MatchLines(t, out, `^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR$`,
		`^myapp-deployment-\w+\s+4\s+4\s+4\s+\d+s\s+myapp\s+busybox\s+app=myapp,pod-template-hash=\w+$`)
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=Deployment", "-o", "jsonpath={.items[*].message}")
	Contains(t, ev, "Scaled up replica set myapp-deployment-", "Scaled down replica set myapp-deployment-")
	// pause / resume / restart
	Contains(t, s.MustKubectl(t, "rollout", "pause", "deployment/myapp-deployment", "-n", ns), "deployment.apps/myapp-deployment paused")
	Contains(t, s.MustKubectl(t, "rollout", "resume", "deployment/myapp-deployment", "-n", ns), "deployment.apps/myapp-deployment resumed")
	Contains(t, s.MustKubectl(t, "rollout", "restart", "deployment/myapp-deployment", "-n", ns), "deployment.apps/myapp-deployment restarted")
	s.MustKubectl(t, "rollout", "status", "deployment", "myapp-deployment", "-n", ns, "--timeout=90s")
}

func TestReplicationControllerHeals(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: ReplicationController
metadata: {name: readiness-rc}
spec:
  replicas: 2
  selector: {app: readiness}
  template:
    metadata: {labels: {app: readiness}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: ['sh', '-c', 'sleep 3600']}]
`)
	Eventually(t, 60*time.Second, "2 ready", func() (bool, string) {
		r := s.Jsonpath(t, ns, "rc/readiness-rc", "{.status.readyReplicas}")
		return r == "2", r
	})
	names := strings.Fields(s.MustKubectl(t, "get", "pods", "-n", ns, "-l", "app=readiness", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(names) != 2 {
		t.Fatalf("pods: %v", names)
	}
	s.MustKubectl(t, "delete", "pod", names[0], "-n", ns)
	Eventually(t, 60*time.Second, "healed", func() (bool, string) {
		got := strings.Fields(s.MustKubectl(t, "get", "pods", "-n", ns, "-l", "app=readiness", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}"))
		return len(got) == 2 && got[0] != names[0] && got[1] != names[0], strings.Join(got, " ")
	})
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=ReplicationController", "-o", "jsonpath={.items[*].source.component} {.items[*].message}")
	Contains(t, ev, "replication-controller", "Created pod: readiness-rc-")
	Contains(t, s.MustKubectl(t, "scale", "rc", "readiness-rc", "-n", ns, "--replicas=3"), "replicationcontroller/readiness-rc scaled")
	Eventually(t, 60*time.Second, "3 ready", func() (bool, string) {
		r := s.Jsonpath(t, ns, "rc/readiness-rc", "{.status.readyReplicas}")
		return r == "3", r
	})
}

func TestJobs(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ['sh', '-c', 'echo done']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ['sh', '-c', 'exit 1']}]
`)
	Contains(t, s.MustKubectl(t, "wait", "--for=condition=Complete", "job/ok", "-n", ns, "--timeout=90s"), "job.batch/ok condition met")
	Contains(t, s.MustKubectl(t, "wait", "--for=condition=Failed", "job/fails", "-n", ns, "--timeout=90s"), "job.batch/fails condition met")
	MatchLines(t, s.MustKubectl(t, "get", "jobs", "-n", ns),
		`^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE$`, `^ok\s+Complete\s+3/3\s+\d+s\s+\d+s$`, `^fails\s+Failed\s+0/1\s+\d+s\s+\d+s$`)
	if got := s.Jsonpath(t, ns, "job/fails", `{.status.failed} {.status.conditions[?(@.type=="Failed")].reason}`); got != "2 BackoffLimitExceeded" {
		t.Errorf("failed job: %q", got)
	}
	out := s.MustKubectl(t, "get", "pods", "-n", ns, "-l", "job-name=ok")
	if n := strings.Count(out, "Completed"); n != 3 {
		t.Errorf("completed pods: %d\n%s", n, out)
	}
	Contains(t, s.MustKubectl(t, "logs", "job/ok", "-n", ns), "done")
}

func TestGarbageCollectionCascade(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	rs := func(name string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: %s}
spec:
  replicas: 2
  selector: {matchLabels: {rs: %s}}
  template:
    metadata: {labels: {rs: %s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: ['sh', '-c', 'sleep 3600']}]
---
`, name, name, name)
	}
	s.MustApply(t, ns, rs("bg")+rs("fg")+rs("orphan"))
	for _, n := range []string{"bg", "fg", "orphan"} {
		Eventually(t, 60*time.Second, n+" ready", func() (bool, string) {
			r := s.Jsonpath(t, ns, "rs/"+n, "{.status.readyReplicas}")
			return r == "2", r
		})
	}
	count := func(sel string) int {
		return len(strings.Fields(s.MustKubectl(t, "get", "pods", "-n", ns, "-l", sel, "-o", "jsonpath={.items[*].metadata.name}")))
	}
	s.MustKubectl(t, "delete", "rs", "bg", "-n", ns, "--cascade=background")
	s.MustKubectl(t, "delete", "rs", "fg", "-n", ns, "--cascade=foreground")
	if n := count("rs=fg"); n != 0 {
		t.Errorf("foreground delete returned with %d pods left", n)
	}
	s.MustKubectl(t, "delete", "rs", "orphan", "-n", ns, "--cascade=orphan")
	Eventually(t, 60*time.Second, "background cascade", func() (bool, string) {
		n := count("rs=bg")
		return n == 0, fmt.Sprint(n)
	})
	if n := count("rs=orphan"); n != 2 {
		t.Errorf("orphaned pods: %d, want 2", n)
	}
	if refs := s.MustKubectl(t, "get", "pods", "-n", ns, "-l", "rs=orphan", "-o", "jsonpath={.items[*].metadata.ownerReferences}"); refs != "" {
		t.Errorf("orphans keep ownerReferences: %s", refs)
	}
}

func TestDaemonSetAndCronJob(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: ['sh', '-c', 'sleep 3600']}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: every-minute}
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox, command: ['sh', '-c', 'echo tick']}]
`)
	nodes := len(strings.Fields(s.MustKubectl(t, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")))
	Eventually(t, 60*time.Second, "one daemon pod per node", func() (bool, string) {
		r := s.Jsonpath(t, ns, "ds/node-agent", "{.status.desiredNumberScheduled} {.status.numberReady}")
		return r == fmt.Sprintf("%d %d", nodes, nodes), r
	})
	MatchLines(t, s.MustKubectl(t, "get", "ds", "-n", ns), `^NAME\s+DESIRED\s+CURRENT\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+NODE SELECTOR\s+AGE$`,
		fmt.Sprintf(`^node-agent\s+%d\s+%d\s+%d\s+%d\s+%d\s+<none>\s+\d+s$`, nodes, nodes, nodes, nodes, nodes))
	s.MustKubectl(t, "set", "env", "ds/node-agent", "-n", ns, "V=2")
	Contains(t, s.MustKubectl(t, "rollout", "status", "ds/node-agent", "-n", ns, "--timeout=90s"), `daemon set "node-agent" successfully rolled out`)
	// a manual run from the CronJob's template, and the scheduled one within a minute
	Contains(t, s.MustKubectl(t, "create", "job", "manual", "--from=cronjob/every-minute", "-n", ns), "job.batch/manual created")
	s.MustKubectl(t, "wait", "--for=condition=Complete", "job/manual", "-n", ns, "--timeout=60s")
	Eventually(t, 90*time.Second, "a scheduled run", func() (bool, string) {
		r := s.Jsonpath(t, ns, "cronjob/every-minute", "{.status.lastScheduleTime}")
		return r != "", r
	})
	Eventually(t, 60*time.Second, "CronJob events", func() (bool, string) {
		ev := s.MustKubectl(t, "get", "events", "-n", ns, "-o", `jsonpath={range .items[*]}{.involvedObject.kind} {.reason} {.message}{"\n"}{end}`)
		return strings.Contains(ev, "CronJob SuccessfulCreate Created job every-minute-") && strings.Contains(ev, "CronJob SawCompletedJob Saw completed job: every-minute-"), ev
	})
}

// Endpoints and EndpointSlices follow pods' readiness (seed 000/001):
// a pod whose readiness probe fails moves to NotReadyAddresses.
func TestEndpointsFollowReadiness(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: ReplicationController
metadata: {name: readiness-rc}
spec:
  replicas: 2
  selector: {app: readiness}
  template:
    metadata: {labels: {app: readiness}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ['sh', '-c', 'touch healthy; sleep 3600']
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          exec: {command: [cat, healthy]}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: readiness-svc}
spec:
  type: LoadBalancer
  selector: {app: readiness}
  ports: [{name: http, port: 8080, targetPort: http}]
`)
	Eventually(t, 60*time.Second, "2 ready endpoints", func() (bool, string) {
		r := s.Kubectl(t, "get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=readiness-svc", "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}")
		return r.Stdout == "true true", r.Stdout
	})
	pods := strings.Fields(s.MustKubectl(t, "get", "pods", "-n", ns, "-l", "app=readiness", "-o", "jsonpath={.items[*].metadata.name}"))
	s.MustKubectl(t, "exec", pods[0], "-n", ns, "--", "rm", "healthy")
	Eventually(t, 30*time.Second, "pod not ready", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/"+pods[0], `{.status.conditions[?(@.type=="Ready")].status}`)
		return r == "False", r
	})
	Eventually(t, 10*time.Second, "NotReadyAddresses", func() (bool, string) {
		r := s.Kubectl(t, "describe", "endpoints", "readiness-svc", "-n", ns)
		return strings.Contains(r.Stdout, "NotReadyAddresses:  "), r.Stdout
	})
	r := s.Kubectl(t, "describe", "endpoints", "readiness-svc", "-n", ns)
	MatchLines(t, r.Stdout, `^Name:\s+readiness-svc$`, `^\s+Addresses:\s+\S+$`, `^\s+NotReadyAddresses:\s+\S+$`, `^\s+Name\s+Port\s+Protocol$`, `^\s+http\s+8080\s+TCP$`)
	Contains(t, r.Stderr, "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
	out := s.MustKubectl(t, "get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=readiness-svc", "-o", `jsonpath={range .items[*].endpoints[*]}{.targetRef.name}={.conditions.ready}/{.conditions.serving}/{.conditions.terminating}{"\n"}{end}`)
	Contains(t, out, pods[0]+"=false/false/false", pods[1]+"=true/true/false")
	MatchLines(t, s.MustKubectl(t, "get", "svc", "readiness-svc", "-n", ns), `^readiness-svc\s+LoadBalancer\s+10\.\d+\.\d+\.\d+\s+\S+\s+8080:3\d{4}/TCP\s+\d+s$`)
}
