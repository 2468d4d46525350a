package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kubectl top against the in-process metrics server (pkg/metrics), as
// seed 003 uses it: `kubectl top node`, `kubectl top pod --all-namespaces`.

// topRows splits kubectl top's table into rows of fields, header first.
func topRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// milliCores parses kubectl top's CPU column ("842m").
func milliCores(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(s, "m"))
	if err != nil || !strings.HasSuffix(s, "m") {
		t.Fatalf("CPU %q", s)
	}
	return n
}

// mebibytes parses kubectl top's memory column ("4Mi").
func mebibytes(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(s, "Mi"))
	if err != nil || !strings.HasSuffix(s, "Mi") {
		t.Fatalf("memory %q", s)
	}
	return n
}

func TestTopNode(t *testing.T) {
	s := SharedServer(t)
	Eventually(t, 60*time.Second, "APIService v1beta1.metrics.k8s.io Available", func() (bool, string) {
		r := s.Kubectl(t, "get", "apiservice", "v1beta1.metrics.k8s.io")
		return r.Code == 0 && regexp.MustCompile(`(?m)^v1beta1\.metrics\.k8s\.io\s+kube-system/metrics-server\s+True\s`).MatchString(r.Stdout), r.Stdout + r.Stderr
	})
	var out string
	Eventually(t, 60*time.Second, "kubectl top node", func() (bool, string) {
		r := s.Kubectl(t, "top", "node")
		out = r.Stdout
		return r.Code == 0, r.Stdout + r.Stderr
	})
	rows := topRows(out)
	// kubectl before 1.33 prints CPU% and MEMORY%, later CPU(%) and MEMORY(%)
	MatchLines(t, out, `^NAME\s+CPU\(cores\)\s+CPU\(?%\)?\s+MEMORY\(bytes\)\s+MEMORY\(?%\)?\s*$`)
	node := strings.TrimSpace(s.MustKubectl(t, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))
	if len(rows) != 2 || rows[1][0] != node {
		t.Fatalf("kubectl top node:\n%s", out)
	}
	MatchLines(t, out, `^`+regexp.QuoteMeta(node)+`\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%\s*$`)
	if mem := mebibytes(t, rows[1][3]); mem < 16 {
		t.Errorf("node memory %dMi", mem)
	}

	// The API as metrics-server serves it.
	raw := s.MustKubectl(t, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/"+node)
	var nm struct {
		Kind, APIVersion string
		Metadata         struct{ Name string }
		Timestamp        time.Time
		Window           string
		Usage            map[string]string
	}
	if err := json.Unmarshal([]byte(raw), &nm); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	window, err := time.ParseDuration(nm.Window)
	if nm.Kind != "NodeMetrics" || nm.APIVersion != "metrics.k8s.io/v1beta1" || nm.Metadata.Name != node || err != nil || window <= 0 || window > 30*time.Second {
		t.Errorf("node metrics: %s", raw)
	}
	if age := time.Since(nm.Timestamp); age > time.Minute {
		t.Errorf("timestamp %s is %s old", nm.Timestamp, age)
	}
	// (a byte count that happens to be whole MiB serializes as Mi, as
	// resource.Quantity canonicalizes it for metrics-server too)
	if !regexp.MustCompile(`^(\d+n|0)$`).MatchString(nm.Usage["cpu"]) || !regexp.MustCompile(`^\d+(Ki|Mi|Gi)$`).MatchString(nm.Usage["memory"]) {
		t.Errorf("usage %v: want nanocores and Ki", nm.Usage)
	}
	Contains(t, s.MustKubectl(t, "api-resources", "--api-group=metrics.k8s.io"), "NodeMetrics", "PodMetrics")
	MatchLines(t, s.MustKubectl(t, "get", "nodemetrics"), `^NAME\s+CPU\s+MEMORY\s+WINDOW`, `^`+regexp.QuoteMeta(node)+`\s+\d+n?\s+\d+(Ki|Mi|Gi)\s+[\d.]+m?s`)
	Contains(t, s.MustKubectl(t, "explain", "podmetrics.containers"), "usage")
}

func TestTopPod(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: burner, labels: {app: top}}
spec:
  containers:
  - name: burn
    image: busybox
    # busy for at most 5 minutes, should the pod outlive the test
    command: ['sh', '-c', 'end=$(($(date +%s)+300)); while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 10000 ]; do i=$((i+1)); done; done; sleep 3600']
  - {name: idle, image: busybox, command: ['sh', '-c', 'sleep 3600']}
  terminationGracePeriodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: sleeper, labels: {app: other}}
spec:
  containers:
  - {name: main, image: busybox, command: ['sh', '-c', 'sleep 3600']}
  terminationGracePeriodSeconds: 1
`)
	// Containers outlive a stopped server: delete them before it stops.
	t.Cleanup(func() { s.Kubectl(t, "delete", "pod", "burner", "sleeper", "-n", ns, "--wait=true", "--timeout=60s") })

	// Metrics appear once two scrapes have seen the containers.
	var out string
	Eventually(t, 90*time.Second, "kubectl top pod shows both pods", func() (bool, string) {
		r := s.Kubectl(t, "top", "pod", "-n", ns)
		out = r.Stdout
		return r.Code == 0 && strings.Contains(out, "burner") && strings.Contains(out, "sleeper"), r.Stdout + r.Stderr
	})
	MatchLines(t, out,
		`^NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\s*$`,
		`^burner\s+\d+m\s+\d+Mi\s*$`,
		`^sleeper\s+\d+m\s+\d+Mi\s*$`)
	usage := map[string]int{}
	for _, r := range topRows(out)[1:] {
		usage[r[0]] = milliCores(t, r[1])
	}
	if usage["burner"] < 100 {
		t.Errorf("a busy loop uses %dm", usage["burner"])
	}
	if usage["sleeper"] > 50 {
		t.Errorf("sleep uses %dm", usage["sleeper"])
	}

	out = s.MustKubectl(t, "top", "pod", "-n", ns, "--containers")
	MatchLines(t, out,
		`^POD\s+NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\s*$`,
		`^burner\s+burn\s+\d+m\s+\d+Mi\s*$`,
		`^burner\s+idle\s+\d+m\s+\d+Mi\s*$`,
		`^sleeper\s+main\s+\d+m\s+\d+Mi\s*$`)
	if rows := topRows(out); len(rows) != 4 {
		t.Errorf("--containers:\n%s", out)
	}

	out = s.MustKubectl(t, "top", "pod", "-n", ns, "--sort-by=cpu")
	if rows := topRows(out); len(rows) != 3 || rows[1][0] != "burner" {
		t.Errorf("--sort-by=cpu:\n%s", out)
	}
	out = s.MustKubectl(t, "top", "pod", "-n", ns, "--sort-by=memory")
	if rows := topRows(out); len(rows) != 3 || mebibytes(t, rows[1][2]) < mebibytes(t, rows[2][2]) {
		t.Errorf("--sort-by=memory:\n%s", out)
	}

	out = s.MustKubectl(t, "top", "pod", "-n", ns, "-l", "app=top")
	if rows := topRows(out); len(rows) != 2 || rows[1][0] != "burner" {
		t.Errorf("-l app=top:\n%s", out)
	}
	out = s.MustKubectl(t, "top", "pod", "sleeper", "-n", ns)
	if rows := topRows(out); len(rows) != 2 || rows[1][0] != "sleeper" {
		t.Errorf("top pod sleeper:\n%s", out)
	}

	out = s.MustKubectl(t, "top", "pod", "--all-namespaces")
	MatchLines(t, out,
		`^NAMESPACE\s+NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\s*$`,
		`^`+regexp.QuoteMeta(ns)+`\s+burner\s+\d+m\s+\d+Mi\s*$`,
		`^`+regexp.QuoteMeta(ns)+`\s+sleeper\s+\d+m\s+\d+Mi\s*$`)

	MatchLines(t, s.MustKubectl(t, "get", "podmetrics", "-n", ns),
		`^NAME\s+CPU\s+MEMORY\s+WINDOW\s*$`,
		`^burner\s+\d+n?\s+\d+(Ki|Mi|Gi)\s+[\d.]+m?s\s*$`)

	r := s.Kubectl(t, "top", "pod", "nosuchpod", "-n", ns)
	if r.Code == 0 || !strings.Contains(r.Stderr, "NotFound") {
		t.Errorf("top of a missing pod: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestTopPodEmptyNamespace(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	Eventually(t, 60*time.Second, "metrics API", func() (bool, string) {
		r := s.Kubectl(t, "top", "pod", "-n", ns)
		return r.Code == 0, r.Stdout + r.Stderr
	})
	r := s.Kubectl(t, "top", "pod", "-n", ns)
	if r.Stdout != "" || strings.TrimSpace(r.Stderr) != "No resources found in "+ns+" namespace." {
		t.Errorf("empty namespace: %q %q", r.Stdout, r.Stderr)
	}
}
