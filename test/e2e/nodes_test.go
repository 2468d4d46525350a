package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Nodes (issue 4, "Nodes"): a second node joins with `k1s agent`; cordon,
// uncordon, drain with and without PodDisruptionBudgets, node loss. Each
// test has its own server and agent; they run in parallel. The texts are
// those of reference recordings 10 (cordon, drain) and 14 (node loss).

// sleeper is a pod spec fragment that runs on the host runtime and stops at
// once (sleep as PID 1 ignores SIGTERM; a short grace keeps drains quick).
const sleeper = `terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'sleep 3600']}]`

func webDeployment(name string, replicas int, extraSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      %[3]s%[4]s
`, name, replicas, extraSpec, sleeper)
}

// barePod is a pod without controller; extraSpec is indented for a
// Deployment's template, like webDeployment's.
func barePod(name, extraSpec string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  %s
`, name, strings.ReplaceAll(extraSpec+sleeper, "\n      ", "\n  "))
}

// onNode pins a pod (template) to a node by its hostname label.
func onNode(node string) string {
	return fmt.Sprintf("nodeSelector: {kubernetes.io/hostname: %s}\n      ", node)
}

func TestNodeAgentJoins(t *testing.T) {
	t.Parallel()
	s := nodesServer(t, false)

	// A token naming another CA: the agent refuses the server before it
	// sends the secret, and no certificate is requested.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := exec.CommandContext(ctx, binary, "agent", "--server", serverURL(t, s), "--token", "K10"+strings.Repeat("ab", 32)+"::"+nodeToken(t, s),
		"--data-dir", t.TempDir(), "--node-name", "impostor", "--kubelet-port", "0")
	out, err := bad.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("agent with a wrong CA hash: %v\n%s", err, out)
	}
	Contains(t, string(out), "does not match the token's CA hash", "not sending the token")

	a := StartNodeAgent(t, s, "agent-join", "--token", fullToken(t, s))
	local := localNode(t, s, a)
	MatchLines(t, s.MustKubectl(t, "get", "nodes"),
		`^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION$`,
		`^agent-join\s+Ready\s+<none>\s+\S+\s+v1\.37\.2$`,
		`^`+regexp.QuoteMeta(local)+`\s+Ready\s+<none>\s+\S+\s+v1\.37\.2$`)
	csrs := s.MustKubectl(t, "get", "csr")
	MatchLines(t, csrs,
		`^node-csr-\S+\s+\S+\s+kubernetes\.io/kube-apiserver-client-kubelet\s+k1s-node-bootstrap\s+<none>\s+Approved,Issued$`,
		`^csr-\S+\s+\S+\s+kubernetes\.io/kubelet-serving\s+system:node:agent-join\s+<none>\s+Approved,Issued$`)
	if strings.Contains(csrs, "impostor") {
		t.Errorf("the refused agent made a CSR:\n%s", csrs)
	}
	// each kubelet has its own port, published for the API server
	ports := s.MustKubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.status.daemonEndpoints.kubeletEndpoint.Port}{" "}{end}`)
	if p := strings.Fields(ports); len(p) != 2 || p[0] == p[1] || p[0] == "0" || p[1] == "0" {
		t.Errorf("kubelet ports %q", ports)
	}

	// logs and exec of a pod on the second node go through the API server
	// to that agent
	ns := s.Namespace(t)
	s.MustApply(t, ns, barePod("on-agent", onNode("agent-join"))+`---
`+strings.Replace(barePod("greeter", onNode("agent-join")), "'sleep 3600'", "'echo hello from agent-join; sleep 3600'", 1))
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/on-agent", "pod/greeter", "--timeout=60s")
	MatchLines(t, s.MustKubectl(t, "get", "pods", "-n", ns, "-o", "wide"),
		`^greeter\s+1/1\s+Running\s+0\s+\S+\s+\S+\s+agent-join\s`,
		`^on-agent\s+1/1\s+Running\s+0\s+\S+\s+\S+\s+agent-join\s`)
	Eventually(t, 20*time.Second, "logs of greeter", func() (bool, string) {
		r := s.Kubectl(t, "logs", "-n", ns, "greeter")
		return r.Code == 0 && r.Stdout == "hello from agent-join\n", r.Stdout + r.Stderr
	})
	if got := s.MustKubectl(t, "exec", "-n", ns, "on-agent", "--", "sh", "-c", "echo exec on $0", "agent-join"); got != "exec on agent-join\n" {
		t.Errorf("exec: %q", got)
	}
	r := s.Kubectl(t, "exec", "-n", ns, "on-agent", "--", "sh", "-c", "exit 3")
	if r.Code != 3 {
		t.Errorf("exec exit code %d, want 3 (%s)", r.Code, r.Stderr)
	}
	Contains(t, s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=greeter"),
		"Successfully assigned "+ns+"/greeter to agent-join")

	// a restarted agent keeps its credentials (no new CSR) and adopts its pods
	a.Stop(t)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitNodeReady(t, s, "agent-join", "True", 60*time.Second)
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/on-agent", "--timeout=60s")
	if n := strings.Count(s.MustKubectl(t, "get", "csr", "--no-headers"), "\n"); n != 2 {
		t.Errorf("%d CSRs after the restart, want 2:\n%s", n, s.MustKubectl(t, "get", "csr"))
	}
	Contains(t, a.Log(), "k1s agent joined")
}

func TestNodeCordonAndDrain(t *testing.T) {
	t.Parallel()
	s := nodesServer(t, false)
	a := StartNodeAgent(t, s, "agent-drain")
	local := localNode(t, s, a)
	ns := s.Namespace(t)

	// cordon: SchedulingDisabled, the unschedulable taint, new pods avoid it
	Contains(t, s.MustKubectl(t, "cordon", "agent-drain"), "node/agent-drain cordoned")
	MatchLines(t, s.MustKubectl(t, "get", "nodes"), `^agent-drain\s+Ready,SchedulingDisabled\s+<none>\s`)
	Eventually(t, 20*time.Second, "unschedulable taint", func() (bool, string) {
		spec := s.MustKubectl(t, "get", "node", "agent-drain", "-o", "jsonpath={.spec}")
		return strings.Contains(spec, `"unschedulable":true`) && strings.Contains(spec, `{"effect":"NoSchedule","key":"node.kubernetes.io/unschedulable","timeAdded":`), spec
	})
	s.MustApply(t, ns, barePod("pinned", onNode("agent-drain"))+"---\n"+webDeployment("spread", 2, ""))
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/spread", "--timeout=60s")
	for pod, where := range podNodes(t, s, ns, "app=spread") {
		if !strings.HasPrefix(where, local+"/") {
			t.Errorf("pod %s on %s while agent-drain is cordoned", pod, where)
		}
	}
	Eventually(t, 30*time.Second, "FailedScheduling of pinned", func() (bool, string) {
		ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=pinned,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
		return strings.Contains(ev, "0/2 nodes are available:") && strings.Contains(ev, "1 node(s) were unschedulable"), ev
	})
	if ph := s.Jsonpath(t, ns, "pod/pinned", "{.status.phase}"); ph != "Pending" {
		t.Errorf("pinned pod on a cordoned node: phase %s", ph)
	}

	// uncordon: the pending pod goes to the node
	Contains(t, s.MustKubectl(t, "uncordon", "agent-drain"), "node/agent-drain uncordoned")
	MatchLines(t, s.MustKubectl(t, "get", "nodes"), `^agent-drain\s+Ready\s+<none>\s`)
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/pinned", "--timeout=60s")

	// drain: put a Deployment and a bare pod on agent-drain (the local node
	// cordoned meanwhile), then drain it
	s.MustKubectl(t, "delete", "-n", ns, "pod/pinned", "deploy/spread", "--timeout=60s")
	s.MustKubectl(t, "cordon", local)
	s.MustApply(t, ns, barePod("bare", "")+"---\n"+webDeployment("web", 2, ""))
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/web", "--timeout=60s")
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/bare", "--timeout=60s")
	s.MustKubectl(t, "uncordon", local)
	before := podNodes(t, s, ns, "app=web")
	for pod, where := range before {
		if !strings.HasPrefix(where, "agent-drain/Running") {
			t.Fatalf("pod %s on %s, want agent-drain", pod, where)
		}
	}

	r := s.Kubectl(t, "drain", "agent-drain")
	if r.Code != 1 {
		t.Errorf("drain without --force: exit %d", r.Code)
	}
	Contains(t, r.Stdout+r.Stderr,
		`error: unable to drain node "agent-drain" due to error: cannot delete cannot delete Pods that declare no controller (use --force to override): `+ns+`/bare, continuing command...`,
		"There are pending nodes to be drained:")
	MatchLines(t, s.MustKubectl(t, "get", "nodes"), `^agent-drain\s+Ready,SchedulingDisabled\s`)

	r = s.Kubectl(t, "drain", "agent-drain", "--ignore-daemonsets", "--force", "--timeout=90s")
	out := r.Stdout + r.Stderr
	if r.Code != 0 {
		t.Fatalf("drain --force: exit %d\n%s", r.Code, out)
	}
	MatchLines(t, out,
		`^node/agent-drain already cordoned$`,
		`^Warning: deleting Pods that declare no controller: `+ns+`/bare$`,
		`^evicting pod `+ns+`/bare$`,
		`^pod/bare evicted$`,
		`^node/agent-drain drained$`)
	for pod := range before {
		MatchLines(t, out, `^evicting pod `+ns+`/`+pod+`$`, `^pod/`+pod+` evicted$`)
	}
	if r := s.Kubectl(t, "get", "pod", "-n", ns, "bare"); r.Code == 0 || !strings.Contains(r.Stderr, `pods "bare" not found`) {
		t.Errorf("bare pod after drain: %s%s", r.Stdout, r.Stderr)
	}
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/web", "--timeout=60s")
	after := podNodes(t, s, ns, "app=web")
	if len(after) != 2 {
		t.Errorf("web pods after drain: %v", after)
	}
	for pod, where := range after {
		if !strings.HasPrefix(where, local+"/Running") {
			t.Errorf("pod %s on %s after drain, want %s", pod, where, local)
		}
	}
	Contains(t, s.MustKubectl(t, "uncordon", "agent-drain"), "node/agent-drain uncordoned")
}

func TestNodeDrainBlockedByDisruptionBudget(t *testing.T) {
	t.Parallel()
	s := nodesServer(t, false)
	a := StartNodeAgent(t, s, "agent-pdb")
	local := localNode(t, s, a)
	ns := s.Namespace(t)

	s.MustKubectl(t, "cordon", local)
	s.MustApply(t, ns, webDeployment("guarded", 2, "")+`---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: guarded}}
`)
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/guarded", "--timeout=60s")
	s.MustKubectl(t, "uncordon", local)
	Eventually(t, 30*time.Second, "budget computed", func() (bool, string) {
		st := s.Jsonpath(t, ns, "pdb/guarded", "{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}")
		return st == "2/2/0", st
	})
	MatchLines(t, s.MustKubectl(t, "get", "pdb", "-n", ns), `^guarded\s+2\s+N/A\s+0\s`)
	pods := podNodes(t, s, ns, "app=guarded")
	var victim string
	for pod, where := range pods {
		if !strings.HasPrefix(where, "agent-pdb/Running") {
			t.Fatalf("pod %s on %s, want agent-pdb", pod, where)
		}
		victim = pod
	}

	// the eviction subresource answers 429
	eviction := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, victim, ns)
	r := s.KubectlIn(t, eviction, "create", "--raw", "/api/v1/namespaces/"+ns+"/pods/"+victim+"/eviction", "-f", "-", "-v=6")
	if r.Code == 0 {
		t.Errorf("eviction allowed despite the budget")
	}
	Contains(t, r.Stderr, "429 Too Many Requests",
		"Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget.")

	// drain keeps retrying, then gives up at its timeout
	r = s.Kubectl(t, "drain", "agent-pdb", "--ignore-daemonsets", "--timeout=7s")
	out := r.Stdout + r.Stderr
	if r.Code == 0 {
		t.Errorf("drain succeeded despite the budget:\n%s", out)
	}
	MatchLines(t, out,
		`^node/agent-pdb cordoned$`,
		`^evicting pod `+ns+`/guarded-`,
		`^error when evicting pods/"guarded-\S+" -n "`+ns+`" \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget\.$`,
		`^error: unable to drain node "agent-pdb" due to error: .*global timeout reached: 7s`)
	if got := podNodes(t, s, ns, "app=guarded"); len(got) != 2 || got[victim] != "agent-pdb/Running" {
		t.Errorf("pods after the blocked drain: %v", got)
	}

	// a budget that allows one disruption lets the drain through, one pod at a time
	s.MustKubectl(t, "patch", "pdb", "guarded", "-n", ns, "--type=merge", "-p", `{"spec":{"minAvailable":1}}`)
	r = s.Kubectl(t, "drain", "agent-pdb", "--ignore-daemonsets", "--timeout=120s")
	if r.Code != 0 {
		t.Fatalf("drain after relaxing the budget: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	MatchLines(t, r.Stdout+r.Stderr, `^node/agent-pdb drained$`)
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/guarded", "--timeout=60s")
	for pod, where := range podNodes(t, s, ns, "app=guarded") {
		if !strings.HasPrefix(where, local+"/Running") {
			t.Errorf("pod %s on %s after drain, want %s", pod, where, local)
		}
	}
}

func TestNodeLoss(t *testing.T) {
	t.Parallel()
	s := nodesServer(t, true)
	a := StartNodeAgent(t, s, "agent-lost")
	local := localNode(t, s, a)
	ns := s.Namespace(t)

	tolerate5s := "tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}]\n      "
	s.MustKubectl(t, "cordon", local)
	s.MustApply(t, ns, barePod("default-tolerations", "")+"---\n"+
		barePod("toleration-5s", tolerate5s)+"---\n"+
		webDeployment("dep", 1, tolerate5s))
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/default-tolerations", "pod/toleration-5s", "--timeout=60s")
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/dep", "--timeout=60s")
	s.MustKubectl(t, "uncordon", local)
	var depPod string
	for pod, where := range podNodes(t, s, ns, "") {
		if where != "agent-lost/Running" {
			t.Fatalf("pod %s on %s, want agent-lost", pod, where)
		}
		if strings.HasPrefix(pod, "dep-") {
			depPod = pod
		}
	}
	// DefaultTolerationSeconds admission, as on a real cluster
	if got := s.Jsonpath(t, ns, "pod/default-tolerations", "{.spec.tolerations}"); got != `[{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300},{"effect":"NoExecute","key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":300}]` {
		t.Errorf("default tolerations: %s", got)
	}

	// the kubelet dies: after the grace period the node is NotReady and
	// tainted unreachable
	a.Kill()
	killed := time.Now()
	grace := 50 * time.Second
	if serverHasGraceFlag() {
		grace = 20 * time.Second
	}
	waitNodeReady(t, s, "agent-lost", "Unknown", grace+60*time.Second)
	t.Logf("node NotReady %s after SIGKILL", time.Since(killed).Round(time.Second))
	MatchLines(t, s.MustKubectl(t, "get", "nodes"), `^agent-lost\s+NotReady\s+<none>\s`, `^`+regexp.QuoteMeta(local)+`\s+Ready\s`)
	Eventually(t, 30*time.Second, "unreachable taints", func() (bool, string) {
		taints := s.MustKubectl(t, "get", "node", "agent-lost", "-o", "jsonpath={.spec.taints}")
		return strings.Contains(taints, `{"effect":"NoExecute","key":"node.kubernetes.io/unreachable","timeAdded":`) &&
			strings.Contains(taints, `{"effect":"NoSchedule","key":"node.kubernetes.io/unreachable","timeAdded":`), taints
	})
	desc := s.MustKubectl(t, "describe", "node", "agent-lost")
	MatchLines(t, desc,
		`^Taints:\s+node\.kubernetes\.io/unreachable:NoExecute$`,
		`^\s+node\.kubernetes\.io/unreachable:NoSchedule$`,
		`^\s+Ready\s+Unknown\s.*\sNodeStatusUnknown\s+Kubelet stopped posting node status\.$`,
		`^\s+MemoryPressure\s+Unknown\s.*\sNodeStatusUnknown\s+Kubelet stopped posting node status\.$`)

	// the 5 s toleration expires: the taint eviction controller deletes the
	// pod; the Deployment's pod is recreated on the remaining node
	Eventually(t, 60*time.Second, "TaintManagerEviction of toleration-5s", func() (bool, string) {
		ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=TaintManagerEviction,involvedObject.name=toleration-5s",
			"-o", "jsonpath={.items[*].source.component}|{.items[*].message}")
		return ev == "taint-eviction-controller|Marking for deletion Pod "+ns+"/toleration-5s", ev
	})
	if got := s.Jsonpath(t, ns, "pod/toleration-5s", `{.status.conditions[?(@.type=="DisruptionTarget")].status} {.status.conditions[?(@.type=="DisruptionTarget")].reason} {.status.conditions[?(@.type=="DisruptionTarget")].message}`); got != "True DeletionByTaintManager Taint manager: deleting due to NoExecute taint" {
		t.Errorf("toleration-5s DisruptionTarget: %q", got)
	}
	MatchLines(t, s.MustKubectl(t, "get", "pods", "-n", ns),
		`^toleration-5s\s+1/1\s+Terminating\s`,
		`^`+depPod+`\s+1/1\s+Terminating\s`,
		`^default-tolerations\s+1/1\s+Running\s`)
	Eventually(t, 60*time.Second, "replacement of "+depPod, func() (bool, string) {
		pods := podNodes(t, s, ns, "app=dep")
		for pod, where := range pods {
			if pod != depPod && where == local+"/Running" {
				return true, ""
			}
		}
		return false, fmt.Sprint(pods)
	})
	s.MustKubectl(t, "rollout", "status", "-n", ns, "deploy/dep", "--timeout=60s")
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=NodeNotReady,involvedObject.name=default-tolerations", "-o", "jsonpath={.items[*].type}|{.items[*].source.component}|{.items[*].message}")
	if ev != "Warning|node-controller|Node is not ready" {
		t.Errorf("NodeNotReady event: %q", ev)
	}
	if got := s.Jsonpath(t, ns, "pod/default-tolerations", `{.metadata.deletionTimestamp}|{.status.phase}|{.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="ContainersReady")].status}`); got != "|Running|False|True" {
		t.Errorf("default-tolerations within its 300 s: %q (deletionTimestamp|phase|Ready|ContainersReady)", got)
	}

	// the agent comes back: Ready again, taints removed, the pods marked
	// for deletion finish terminating
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitNodeReady(t, s, "agent-lost", "True", 60*time.Second)
	Eventually(t, 30*time.Second, "taints removed", func() (bool, string) {
		taints := s.MustKubectl(t, "get", "node", "agent-lost", "-o", "jsonpath={.spec.taints}")
		return taints == "", taints
	})
	s.MustKubectl(t, "wait", "-n", ns, "--for=delete", "pod/toleration-5s", "pod/"+depPod, "--timeout=60s")
	Eventually(t, 30*time.Second, "default-tolerations Ready again", func() (bool, string) {
		got := s.Jsonpath(t, ns, "pod/default-tolerations", `{.metadata.deletionTimestamp}|{.status.phase}|{.status.conditions[?(@.type=="Ready")].status}`)
		return got == "|Running|True", got
	})
}
