package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

const deployManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sleep", "3600"]
`

func TestDiscoveryAndExplain(t *testing.T) {
	s := SharedServer(t)
	out := s.MustKubectl(t, "api-resources")
	MatchLines(t, out,
		`^pods\s+po\s+v1\s+true\s+Pod$`,
		`^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$`,
		`^nodes\s+no\s+v1\s+false\s+Node$`,
		`^events\s+ev\s+v1\s+true\s+Event$`,
		`^leases\s+coordination.k8s.io/v1\s+true\s+Lease$`,
		`^runtimeclasses\s+node.k8s.io/v1\s+false\s+RuntimeClass$`,
		`^poddisruptionbudgets\s+pdb\s+policy/v1\s+true\s+PodDisruptionBudget$`,
		`^endpointslices\s+discovery.k8s.io/v1\s+true\s+EndpointSlice$`,
		`^cronjobs\s+cj\s+batch/v1\s+true\s+CronJob$`,
	)
	out = s.MustKubectl(t, "api-versions")
	Contains(t, out, "v1\n", "apps/v1\n", "batch/v1\n", "events.k8s.io/v1\n")
	out = s.MustKubectl(t, "explain", "pods.spec.containers.livenessProbe")
	Contains(t, out, "KIND:       Pod", "FIELD: livenessProbe <Probe>", "periodSeconds")
	out = s.MustKubectl(t, "get", "--raw", "/api/v1")
	Contains(t, out, `"kind":"APIResourceList"`, `"name":"pods/log"`, `"name":"pods/exec"`, `"name":"pods/eviction"`)
	out = s.MustKubectl(t, "get", "--raw", "/apis")
	Contains(t, out, `"kind":"APIGroupList"`, `"name":"apps"`)
	out = s.MustKubectl(t, "version", "-o", "json")
	Contains(t, out, `"serverVersion"`, `"minor": "37"`)

	// OpenAPI: v3 (built at start) and v2 (built by k1s on first request,
	// pkg/apiserver/openapi.go), both through the aggregator.
	out = s.MustKubectl(t, "get", "--raw", "/openapi/v3")
	Contains(t, out, `"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=`, `"apis/apps/v1":`)
	out = s.MustKubectl(t, "get", "--raw", "/openapi/v3/apis/apps/v1")
	Contains(t, out, `"io.k8s.api.apps.v1.Deployment":`, `"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale":`)
	for i := 0; i < 2; i++ { // the second request is served from the built document
		out = s.MustKubectl(t, "get", "--raw", "/openapi/v2")
		Contains(t, out, `"swagger":"2.0"`, `"io.k8s.api.core.v1.Pod":`, `"/api/v1/namespaces/{namespace}/pods/{name}/log":`,
			`"io.k8s.api.apps.v1.Deployment":`, `"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition":`,
			`"io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService":`)
	}
	out = s.MustKubectl(t, "explain", "--output=plaintext-openapiv2", "deployments.spec.strategy")
	Contains(t, out, "KIND:     Deployment", "RESOURCE: strategy <Object>", "The deployment strategy to use")
}

func TestHealthAndVersionEndpoints(t *testing.T) {
	s := SharedServer(t)
	cfg, err := clientcmd.LoadFromFile(s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CertificateAuthorityData)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	for _, p := range []string{"/readyz", "/livez", "/healthz"} {
		resp, err := c.Get(cluster.Server + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("anonymous GET %s: %d %q, want 200 ok", p, resp.StatusCode, b)
		}
	}
	resp, err := c.Get(cluster.Server + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("anonymous list namespaces: %d, want 401/403", resp.StatusCode)
	}
	for _, f := range []string{"kubeconfig.yaml", "node-token", "tls/ca.crt"} {
		if _, err := os.Stat(filepath.Join(s.DataDir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}
}

func TestCreateSubcommands(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "configmap", "cm1", "--from-literal=a=1", "--from-literal=b=2"}, "configmap/cm1 created"},
		{[]string{"create", "secret", "generic", "s1", "--from-literal=password=x"}, "secret/s1 created"},
		{[]string{"create", "deployment", "d1", "--image=busybox", "--replicas=2"}, "deployment.apps/d1 created"},
		{[]string{"create", "job", "j1", "--image=busybox", "--", "true"}, "job.batch/j1 created"},
		{[]string{"create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "true"}, "cronjob.batch/cj1 created"},
		{[]string{"create", "service", "clusterip", "svc1", "--tcp=80:8080"}, "service/svc1 created"},
		{[]string{"create", "service", "nodeport", "svc2", "--tcp=80:8080"}, "service/svc2 created"},
		{[]string{"create", "serviceaccount", "sa1"}, "serviceaccount/sa1 created"},
		{[]string{"create", "poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=1"}, "poddisruptionbudget.policy/pdb1 created"},
		{[]string{"create", "priorityclass", "pc-" + ns, "--value=10"}, "priorityclass.scheduling.k8s.io/pc-" + ns + " created"},
	} {
		out := s.MustKubectl(t, append(c.args, "-n", ns)...)
		Contains(t, out, c.want)
	}
	s.MustKubectl(t, "delete", "priorityclass", "pc-"+ns)
	out := s.MustKubectl(t, "get", "svc", "-n", ns)
	MatchLines(t, out,
		`^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$`,
		`^svc1\s+ClusterIP\s+10\.\d+\.\d+\.\d+\s+<none>\s+80/TCP\s+\d+s$`,
		`^svc2\s+NodePort\s+10\.\d+\.\d+\.\d+\s+<none>\s+80:3\d{4}/TCP\s+\d+s$`)
	out = s.MustKubectl(t, "get", "cm", "cm1", "-n", ns, "-o", "jsonpath={.data.b}")
	if out != "2" {
		t.Errorf("jsonpath: %q", out)
	}
}

func TestApplyClientAndServerSide(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	Contains(t, s.MustApply(t, ns, deployManifest), "deployment.apps/web created")
	Contains(t, s.MustApply(t, ns, deployManifest), "deployment.apps/web unchanged")
	Contains(t, s.MustApply(t, ns, strings.Replace(deployManifest, "replicas: 2", "replicas: 3", 1)), "deployment.apps/web configured")
	// server-side apply by another manager conflicts on replicas
	r := s.KubectlIn(t, strings.Replace(deployManifest, "replicas: 2", "replicas: 5", 1), "apply", "--server-side", "--field-manager=other", "-n", ns, "-f", "-")
	if r.Code == 0 || !strings.Contains(r.Stderr, "conflict") {
		t.Errorf("server-side apply by another manager: code %d, stderr %s", r.Code, r.Stderr)
	}
	out := s.MustApply(t, ns, strings.Replace(deployManifest, "replicas: 2", "replicas: 5", 1), "--server-side", "--field-manager=other", "--force-conflicts")
	Contains(t, out, "deployment.apps/web serverside-applied")
	out = s.MustKubectl(t, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}")
	if out != "5" {
		t.Errorf("replicas after SSA: %q", out)
	}
	out = s.MustKubectl(t, "get", "deploy", "web", "-n", ns, "-o", "yaml", "--show-managed-fields")
	Contains(t, out, "manager: other", "operation: Apply")
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: v\n"
	Contains(t, s.MustApply(t, ns, cm, "--server-side"), "configmap/ssa serverside-applied")
}

func TestGetOutputs(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustKubectl(t, "create", "configmap", "c1", "-n", ns, "--from-literal=x=1")
	s.MustKubectl(t, "label", "configmap", "c1", "-n", ns, "tier=db")
	Contains(t, s.MustKubectl(t, "get", "cm", "-n", ns, "-o", "name"), "configmap/c1\n")
	Contains(t, s.MustKubectl(t, "get", "cm", "c1", "-n", ns, "-o", "yaml"), "kind: ConfigMap", "  x: \"1\"", "resourceVersion:", "uid:", "creationTimestamp:")
	var obj map[string]any
	if err := json.Unmarshal([]byte(s.MustKubectl(t, "get", "cm", "c1", "-n", ns, "-o", "json")), &obj); err != nil {
		t.Fatal(err)
	}
	Contains(t, s.MustKubectl(t, "get", "cm", "c1", "-n", ns, "-o", "go-template={{.metadata.name}}-{{.data.x}}"), "c1-1")
	MatchLines(t, s.MustKubectl(t, "get", "cm", "-n", ns, "-o", "custom-columns=N:.metadata.name,X:.data.x"), `^N\s+X$`, `^c1\s+1$`, `^kube-root-ca.crt\s+<none>$`)
	Contains(t, s.MustKubectl(t, "get", "cm", "-n", ns, "-l", "tier=db", "-o", "name"), "configmap/c1")
	if out := s.MustKubectl(t, "get", "cm", "-n", ns, "-l", "tier=web", "-o", "name"); out != "" {
		t.Errorf("label selector tier=web: %q", out)
	}
	Contains(t, s.MustKubectl(t, "get", "cm", "-n", ns, "--field-selector", "metadata.name=c1", "-o", "name"), "configmap/c1")
	Contains(t, s.MustKubectl(t, "get", "ns", "--field-selector", "metadata.name="+ns, "-o", "name"), "namespace/"+ns)
	out := s.MustKubectl(t, "get", "cm", "-A", "--show-labels")
	MatchLines(t, out, `^NAMESPACE\s+NAME\s+DATA\s+AGE\s+LABELS$`, `^`+ns+`\s+c1\s+1\s+\d+s\s+tier=db$`)
	// limit/continue pagination through kubectl's chunking
	for i := 0; i < 7; i++ {
		s.MustKubectl(t, "create", "configmap", "p"+string(rune('a'+i)), "-n", ns)
	}
	out = s.MustKubectl(t, "get", "cm", "-n", ns, "--chunk-size=2", "-o", "name")
	if n := strings.Count(out, "configmap/"); n != 9 { // 7 + c1 + kube-root-ca.crt
		t.Errorf("chunked list: %d items\n%s", n, out)
	}
}

func TestPatchReplaceLabelAnnotateScale(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, deployManifest)
	Contains(t, s.MustKubectl(t, "patch", "deploy", "web", "-n", ns, "-p", `{"spec":{"replicas":3}}`), "deployment.apps/web patched")
	Contains(t, s.MustKubectl(t, "patch", "deploy", "web", "-n", ns, "--type=merge", "-p", `{"metadata":{"labels":{"m":"1"}}}`), "patched")
	Contains(t, s.MustKubectl(t, "patch", "deploy", "web", "-n", ns, "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":4}]`), "patched")
	Contains(t, s.MustKubectl(t, "patch", "deploy", "web", "-n", ns, "--type=strategic", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.28"}]}}}}`), "patched")
	out := s.MustKubectl(t, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas} {.metadata.labels.m} {.spec.template.spec.containers[0].image} {.metadata.generation}")
	if out != "4 1 busybox:1.28 4" {
		t.Errorf("after patches: %q, want %q", out, "4 1 busybox:1.28 4")
	}
	Contains(t, s.MustKubectl(t, "scale", "deploy", "web", "-n", ns, "--replicas=1"), "deployment.apps/web scaled")
	Contains(t, s.MustKubectl(t, "label", "deploy", "web", "-n", ns, "env=dev"), "deployment.apps/web labeled")
	Contains(t, s.MustKubectl(t, "annotate", "deploy", "web", "-n", ns, "note=hi"), "deployment.apps/web annotated")
	y := s.MustKubectl(t, "get", "deploy", "web", "-n", ns, "-o", "yaml")
	y = strings.Replace(y, "note: hi", "note: replaced", 1)
	r := s.KubectlIn(t, y, "replace", "-f", "-")
	if r.Code != 0 || !strings.Contains(r.Stdout, "deployment.apps/web replaced") {
		t.Errorf("replace: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	// the same stale object again: conflict with upstream's message
	r = s.KubectlIn(t, y, "replace", "-f", "-")
	if r.Code == 0 || !strings.Contains(r.Stderr, `Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again`) {
		t.Errorf("stale replace: %d %s", r.Code, r.Stderr)
	}
	// edit with a scripted editor (metadata changes leave generation alone)
	ed := filepath.Join(t.TempDir(), "ed.sh")
	os.WriteFile(ed, []byte("#!/bin/sh\nsed -i 's/note: replaced/note: edited/' \"$1\"\n"), 0o755)
	cmd := s.KubectlWith
	_ = cmd
	os.Setenv("KUBE_EDITOR", ed)
	defer os.Unsetenv("KUBE_EDITOR")
	Contains(t, s.MustKubectl(t, "edit", "deploy", "web", "-n", ns), "deployment.apps/web edited")
	Contains(t, s.MustKubectl(t, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.metadata.annotations.note}"), "edited")
}

func TestValidationErrors(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	bad := `apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: c
    livenessProbe:
      exec: {command: ["true"]}
      successThreshold: 2
  - name: c
    image: busybox
    ports: [{containerPort: 70000}]
`
	r := s.KubectlIn(t, bad, "apply", "-n", ns, "-f", "-")
	if r.Code == 0 {
		t.Fatal("invalid pod accepted")
	}
	Contains(t, r.Stderr, `The Pod "bad" is invalid:`, `spec.containers[0].image: Required value`,
		`spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1`,
		`spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive`,
		`spec.containers[1].name: Duplicate value: "c"`)
	if out := s.MustKubectl(t, "get", "pods", "-n", ns, "-o", "name"); out != "" {
		t.Errorf("invalid pod stored: %q", out)
	}
	// unknown field: strict field validation by the server
	r = s.KubectlIn(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nbogus: 1\n", "apply", "-n", ns, "-f", "-")
	if r.Code == 0 || !strings.Contains(r.Stderr, `unknown field "bogus"`) {
		t.Errorf("unknown field: %d %s", r.Code, r.Stderr)
	}
	// dry run stores nothing
	Contains(t, s.MustKubectl(t, "create", "configmap", "dry", "-n", ns, "--dry-run=server"), "configmap/dry created (server dry run)")
	r = s.Kubectl(t, "get", "cm", "dry", "-n", ns)
	Contains(t, r.Stderr, `configmaps "dry" not found`)
	// immutable pod spec fields
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox, command: [sleep, \"1\"]}]\n"
	s.MustApply(t, ns, pod)
	r = s.KubectlIn(t, strings.Replace(pod, "sleep, \"1\"", "sleep, \"2\"", 1), "apply", "-n", ns, "-f", "-")
	Contains(t, r.Stderr, `The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than`)
}

func TestWatchAndWait(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustKubectl(t, "create", "configmap", "w1", "-n", ns)
	// get -w: the initial list, then the change
	w := s.WatchOutput(t, "get", "cm", "w1", "-n", ns, "-w", "--output-watch-events")
	Eventually(t, 10*time.Second, "ADDED", func() (bool, string) { return w.Matches(`ADDED\s+w1\s+0\s+\d+s`), w.String() })
	s.MustKubectl(t, "label", "cm", "w1", "-n", ns, "a=b")
	Eventually(t, 10*time.Second, "MODIFIED", func() (bool, string) { return w.Matches(`MODIFIED\s+w1\s+0\s+\d+s`), w.String() })
	MatchLines(t, w.String(), `^EVENT\s+NAME\s+DATA\s+AGE$`)
	// wait --for=delete and --for=condition/jsonpath
	s.MustKubectl(t, "create", "configmap", "w2", "-n", ns)
	wait := s.WatchOutput(t, "wait", "--for=delete", "cm/w2", "-n", ns, "--timeout=30s", "-v=6")
	Eventually(t, 10*time.Second, "wait is watching", func() (bool, string) { return wait.Matches(`.*watch=true.* 200 OK.*`), wait.String() })
	s.MustKubectl(t, "delete", "cm", "w2", "-n", ns)
	Eventually(t, 30*time.Second, "wait --for=delete", func() (bool, string) {
		return wait.Matches(`configmap/w2 condition met`), wait.String()
	})
	Contains(t, s.MustKubectl(t, "wait", "--for=jsonpath={.metadata.name}=w1", "cm/w1", "-n", ns, "--timeout=10s"), "configmap/w1 condition met")
}

func TestDescribeResources(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, deployManifest)
	s.MustKubectl(t, "create", "configmap", "c", "-n", ns, "--from-literal=k=v")
	s.MustKubectl(t, "create", "service", "clusterip", "svc", "-n", ns, "--tcp=80:8080")
	out := s.MustKubectl(t, "describe", "deploy", "web", "-n", ns)
	Contains(t, out, "Name:                   web", "Namespace:              "+ns, "StrategyType:           RollingUpdate", "RollingUpdateStrategy:  25% max unavailable, 25% max surge")
	Contains(t, s.MustKubectl(t, "describe", "cm", "c", "-n", ns), "Data\n====\nk:\n----\nv")
	Contains(t, s.MustKubectl(t, "describe", "svc", "svc", "-n", ns), "Type:                     ClusterIP", "Port:                     80-8080  80/TCP")
	Contains(t, s.MustKubectl(t, "describe", "ns", ns), "Status:       Active")
}

func TestDeleteSemantics(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustKubectl(t, "create", "configmap", "f", "-n", ns)
	s.MustKubectl(t, "patch", "cm", "f", "-n", ns, "-p", `{"metadata":{"finalizers":["k1s.dev/test"]}}`)
	Contains(t, s.MustKubectl(t, "delete", "cm", "f", "-n", ns, "--wait=false"), `configmap "f" deleted`)
	Contains(t, s.MustKubectl(t, "get", "cm", "f", "-n", ns, "-o", "jsonpath={.metadata.deletionTimestamp}"), "T")
	s.MustKubectl(t, "patch", "cm", "f", "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	Eventually(t, 10*time.Second, "cm f gone", func() (bool, string) {
		r := s.Kubectl(t, "get", "cm", "f", "-n", ns)
		return strings.Contains(r.Stderr, "not found"), r.Stdout
	})
	s.MustKubectl(t, "create", "configmap", "g", "-n", ns)
	Contains(t, s.MustKubectl(t, "delete", "cm", "g", "-n", ns, "--wait", "--grace-period=0"), `configmap "g" deleted`)
}

func TestOtherKubectlVersions(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	for _, v := range []string{"1.27", "1.33"} {
		k := "/usr/lib/google-cloud-sdk/bin/kubectl." + v
		if _, err := os.Stat(k); err != nil {
			t.Logf("no %s: skipping", k)
			continue
		}
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v" + strings.ReplaceAll(v, ".", "") + "\ndata: {a: b}\n"
		r := s.KubectlWith(t, k, cm, "apply", "-n", ns, "-f", "-")
		if r.Code != 0 || !strings.Contains(r.Stdout, "created") {
			t.Errorf("kubectl %s apply: %d %s %s", v, r.Code, r.Stdout, r.Stderr)
		}
		r = s.KubectlWith(t, k, "", "get", "cm", "-n", ns)
		if r.Code != 0 || !strings.Contains(r.Stdout, "v"+strings.ReplaceAll(v, ".", "")) {
			t.Errorf("kubectl %s get: %d %s %s", v, r.Code, r.Stdout, r.Stderr)
		}
		r = s.KubectlWith(t, k, "", "get", "pods", "-A")
		if r.Code != 0 {
			t.Errorf("kubectl %s get pods: %d %s", v, r.Code, r.Stderr)
		}
	}
}

func TestPersistenceAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	s, err := StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	s.MustKubectl(t, "create", "namespace", "keep")
	s.MustKubectl(t, "create", "configmap", "kept", "-n", "keep", "--from-literal=a=1")
	s.Kill()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	Contains(t, s.MustKubectl(t, "get", "cm", "kept", "-n", "keep", "-o", "jsonpath={.data.a}"), "1")
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("SIGTERM stop took %s", d)
	}
}
