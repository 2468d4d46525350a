package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/image/imagetest"
	"k1s.dev/k1s/test/fidelity/seedimages"
)

// The seeds' manifests, verbatim (indentation as the source documents
// print it), and what ../shared/reference/recordings shows for them.

// Seed 001, liveness-pod.yaml (recording 01-liveness-exec-seed001).
const seedLivenessPod = `apiVersion: v1
kind: Pod
metadata:
 name: liveness-pod
spec:
 containers:
 - name: liveness
   image: gcr.io/terrycho-sandbox/liveness:v1
   imagePullPolicy: Always
   ports:
   - containerPort: 8080
   livenessProbe:
     exec:
       command:
       - cat
       - /tmp/healthy
     initialDelaySeconds: 5
     periodSeconds: 5
`

// Seed 001, readiness-rc.yaml and readiness-svc.yaml (recording
// 02-readiness-rc-service-seed001).
const seedReadinessRC = `apiVersion: v1
kind: ReplicationController
metadata:
 name: readiness-rc
spec:
 replicas: 2
 selector:
   app: readiness
 template:
   metadata:
     name: readiness-pod
     labels:
       app: readiness
   spec:
     containers:
     - name: readiness
       image: gcr.io/terrycho-sandbox/readiness:v1
       imagePullPolicy: Always
       ports:
       - containerPort: 8080
       readinessProbe:
         httpGet:
           path: /readiness
           port: 8080
         initialDelaySeconds: 5
         periodSeconds: 5
`

const seedReadinessSvc = `apiVersion: v1
kind: Service
metadata:
 name: readiness-svc
spec:
 selector:
   app: readiness
 ports:
   - name: http
     port: 80
     protocol: TCP
     targetPort: 8080
 type: LoadBalancer
`

// Seed 003's multi-container pod (recording 08-multi-container-emptydir-seed003).
const seedMultiContainer = `apiVersion: v1
kind: Pod
metadata:
  name: multi-container-pod
spec:
  volumes:
  - name: shared-logs
    emptyDir: {}  # 공유 스토리지

  containers:
  - name: main-app
    image: nginx
    volumeMounts:
    - name: shared-logs
      mountPath: /usr/share/nginx/html

  - name: log-writer
    image: busybox
    command: ["sh", "-c", "while true; do echo hello >> /logs/hello.txt; sleep 5; done"]
    volumeMounts:
    - name: shared-logs
      mountPath: /logs
`

// Seed 004's myapp-pod and the services of the kubernetes.io docs it
// waits for (recording 05-init-myapp-pod-seed004).
const seedMyappPod = `apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app: myapp
spec:
  containers:
  - name: myapp-container
    image: busybox:1.28
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
  initContainers:
  - name: init-myservice
    image: busybox:1.28
    command: ['sh', '-c', "until nslookup myservice.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for myservice; sleep 2; done"]
  - name: init-mydb
    image: busybox:1.28
    command: ['sh', '-c', "until nslookup mydb.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for mydb; sleep 2; done"]
`

const seedMyappServices = `apiVersion: v1
kind: Service
metadata:
  name: myservice
spec:
  ports:
  - protocol: TCP
    port: 80
    targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: mydb
spec:
  ports:
  - protocol: TCP
    port: 80
    targetPort: 9377
`

// pulledRe is the Pulled event of a pull that succeeded.
func pulledRe(image string) string {
	return `Successfully pulled image "` + regexp.QuoteMeta(image) +
		`" in [0-9.]+(ns|µs|ms|s) \([0-9.]+(ns|µs|ms|s) including waiting\)\. Image size: [0-9]+ bytes\.`
}

// seedServer is a k1s server set up as the reference cluster was: the
// seed images' stand-ins in a loopback registry that registries.yaml
// mirrors docker.io and gcr.io to, the tagged ones already on the node,
// pods on the oci runtime.
func seedServer(t *testing.T) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the oci runtime needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed")
	}
	if _, err := os.Stat(imagetest.BusyboxBinary); err != nil {
		t.Skip(imagetest.ErrNoBusybox)
	}
	work := t.TempDir()
	app := os.Getenv("K1S_APP_BINARY")
	if app == "" {
		app = filepath.Join(work, "k1s-app")
		if err := seedimages.BuildApp("../..", app); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := seedimages.Build(app, work)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := seedimages.StartRegistry(imgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	cfg := filepath.Join(work, "registries.yaml")
	if err := os.WriteFile(cfg, []byte(reg.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.MkdirTemp("", "k1s-e2e-seeds")
	if err != nil {
		t.Fatal(err)
	}
	if err := seedimages.Import(binary, data, work, imgs); err != nil {
		t.Fatal(err)
	}
	// as the reference cluster: no load-balancer controller
	s, err := StartServer(data, "--registry-config", cfg, "--default-runtime", "oci", "--disable-servicelb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		// --stop-pods-on-exit leaves nothing mounted; never remove a tree
		// with mounts in it
		if m := mountsUnder(data); len(m) > 0 {
			t.Errorf("still mounted under %s after the server stopped:\n%s", data, strings.Join(m, "\n"))
			return
		}
		os.RemoveAll(data)
	})
	Eventually(t, 60*time.Second, "node Ready", func() (bool, string) {
		r := s.Kubectl(t, "get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
		return r.Stdout == "True", r.Stdout + r.Stderr
	})
	return s
}

// TestSeeds applies the seeds' manifests verbatim on a node set up as the
// reference's was and checks what the recordings show for them.
func TestSeeds(t *testing.T) {
	s := seedServer(t)
	t.Run("Seed001Liveness", func(t *testing.T) { t.Parallel(); seed001Liveness(t, s) })
	t.Run("Seed001Readiness", func(t *testing.T) { t.Parallel(); seed001Readiness(t, s) })
	t.Run("Seed003MultiContainer", func(t *testing.T) { t.Parallel(); seed003MultiContainer(t, s) })
	t.Run("Seed004MyappPod", func(t *testing.T) { t.Parallel(); seed004MyappPod(t, s) })
}

// events are "Type|Reason|count|message" lines of an object's events.
func seedEvents(t *testing.T, s *Server, ns, name string) string {
	t.Helper()
	return s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name,
		"-o", `jsonpath={range .items[*]}{.type}|{.reason}|{.count}|{.message}{"\n"}{end}`)
}

func seed001Liveness(t *testing.T, s *Server) {
	ns := s.Namespace(t)
	if out := s.MustApply(t, ns, seedLivenessPod); out != "pod/liveness-pod created\n" {
		t.Errorf("apply: %q", out)
	}
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/liveness-pod", "--timeout=60s")
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pod", "liveness-pod"),
		`^NAME +READY +STATUS +RESTARTS +AGE$`, `^liveness-pod +1/1 +Running +0 +[0-9]+s$`)
	ev := seedEvents(t, s, ns, "liveness-pod")
	Contains(t, ev, `Normal|Pulling|1|Pulling image "gcr.io/terrycho-sandbox/liveness:v1"`,
		"Normal|Created|1|Container created", "Normal|Started|1|Container started")
	MatchLines(t, ev, `^Normal\|Pulled\|1\|`+pulledRe("gcr.io/terrycho-sandbox/liveness:v1")+`$`)

	if r := s.Kubectl(t, "exec", "-n", ns, "liveness-pod", "--", "rm", "/tmp/healthy"); r.Code != 0 || r.Stdout+withoutWebsocketNoise(r.Stderr) != "" {
		t.Fatalf("exec rm: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	Eventually(t, 90*time.Second, "liveness-pod restarted and Ready", func() (bool, string) {
		st := s.Jsonpath(t, ns, "pod/liveness-pod", `{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}`)
		return st == "1 true", st
	})
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pod", "liveness-pod"),
		`^liveness-pod +1/1 +Running +1 \([0-9]+s ago\) +[0-9]+s$`)
	// The server logs only requests: the exec probe made none.
	if r := s.Kubectl(t, "logs", "-n", ns, "liveness-pod", "--previous"); r.Code != 0 || r.Stdout != "" {
		t.Errorf("logs --previous: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if last := s.Jsonpath(t, ns, "pod/liveness-pod", `{.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}`); last != "Completed 0" {
		t.Errorf("last state: %q, want Completed 0 (the server exits at once on SIGTERM)", last)
	}
	ev = seedEvents(t, s, ns, "liveness-pod")
	Contains(t, ev,
		"Warning|Unhealthy|3|Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
		"Normal|Killing|1|Container liveness failed liveness probe, will be restarted",
		`Normal|Pulling|2|Pulling image "gcr.io/terrycho-sandbox/liveness:v1"`,
		"Normal|Created|2|Container created", "Normal|Started|2|Container started")
	if n := len(regexp.MustCompile(`(?m)^Normal\|Pulled\|1\|`+pulledRe("gcr.io/terrycho-sandbox/liveness:v1")+`$`).FindAllString(ev, -1)); n != 2 {
		t.Errorf("%d Pulled events (one per pull, each with its own time), want 2:\n%s", n, ev)
	}
}

func seed001Readiness(t *testing.T, s *Server) {
	ns := s.Namespace(t)
	if out := s.MustApply(t, ns, seedReadinessRC); out != "replicationcontroller/readiness-rc created\n" {
		t.Errorf("apply rc: %q", out)
	}
	if out := s.MustApply(t, ns, seedReadinessSvc); out != "service/readiness-svc created\n" {
		t.Errorf("apply svc: %q", out)
	}
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod", "-l", "app=readiness", "--timeout=90s")
	pods := strings.Fields(s.Jsonpath(t, ns, "pods", `{.items[*].metadata.name}`))
	if len(pods) != 2 {
		t.Fatalf("pods: %v", pods)
	}
	ips := map[string]string{}
	for _, p := range pods {
		ips[p] = s.Jsonpath(t, ns, "pod/"+p, "{.status.podIP}")
	}
	if ips[pods[0]] == ips[pods[1]] {
		t.Errorf("the two pods share IP %s: no pod network", ips[pods[0]])
	}
	wide := s.MustKubectl(t, "get", "-n", ns, "pods", "-o", "wide")
	for _, p := range pods {
		MatchLines(t, wide, `^`+p+` +1/1 +Running +0 +[0-9]+s +`+regexp.QuoteMeta(ips[p])+` `)
	}
	clusterIP := s.Jsonpath(t, ns, "svc/readiness-svc", "{.spec.clusterIP}")
	svc := s.MustKubectl(t, "get", "-n", ns, "svc", "readiness-svc")
	MatchLines(t, svc, `^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE$`,
		`^readiness-svc +LoadBalancer +`+regexp.QuoteMeta(clusterIP)+` +<pending> +80:3[0-9]{4}/TCP +[0-9]+s$`)
	sortedIPs := func(ps ...string) string {
		var l []string
		for _, p := range ps {
			l = append(l, ips[p])
		}
		sort.Strings(l)
		return strings.Join(l, ",")
	}
	describeEndpoints := func(addresses, notReady string) {
		t.Helper()
		r := s.Kubectl(t, "describe", "-n", ns, "endpoints", "readiness-svc")
		Contains(t, r.Stderr, "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
		MatchLines(t, r.Stdout, `^Labels: +endpoints.kubernetes.io/managed-by=endpoint-controller$`,
			`^  Addresses: +`+regexp.QuoteMeta(addresses)+`$`, `^  NotReadyAddresses: +`+regexp.QuoteMeta(notReady)+`$`,
			`^    http +8080 +TCP$`)
	}
	Eventually(t, 30*time.Second, "both pods in the endpoints", func() (bool, string) {
		a := s.Jsonpath(t, ns, "endpoints/readiness-svc", `{.subsets[0].addresses[*].ip}`)
		return len(strings.Fields(a)) == 2, a
	})
	describeEndpoints(sortedIPs(pods...), "<none>")
	// answers: which pods answered 8 requests to the ClusterIP, as the
	// recording's `for i in $(seq 1 8); do curl ...; done`.
	answers := func() (map[string]bool, string) {
		seen := map[string]bool{}
		for i := 0; i < 8; i++ {
			body, err := curl("http://" + clusterIP + "/")
			if err != nil {
				return nil, fmt.Sprintf("curl http://%s/: %v", clusterIP, err)
			}
			m := regexp.MustCompile(`^Hello World! I'm  (readiness-rc-[a-z0-9]{5}) \n$`).FindStringSubmatch(body)
			if m == nil {
				return nil, fmt.Sprintf("curl http://%s/: %q", clusterIP, body)
			}
			seen[m[1]] = true
		}
		return seen, ""
	}
	// hello waits (the service proxy follows the endpoints within a
	// second or so, as kube-proxy's sync does) until only want answer.
	hello := func(want ...string) {
		t.Helper()
		Eventually(t, 5*time.Second, fmt.Sprintf("only %v answering on %s", want, clusterIP), func() (bool, string) {
			seen, errs := answers()
			if errs != "" {
				return false, errs
			}
			for p := range seen {
				if !seedContains(want, p) {
					return false, fmt.Sprintf("answered by %v", seen)
				}
			}
			return true, ""
		})
	}
	hello(pods...)

	unready, ready := pods[0], pods[1]
	if r := s.Kubectl(t, "exec", "-n", ns, unready, "--", "rm", "/tmp/healthy"); r.Code != 0 {
		t.Fatalf("exec rm: %d %s", r.Code, r.Stderr)
	}
	Eventually(t, 60*time.Second, unready+" unready", func() (bool, string) {
		st := s.Jsonpath(t, ns, "pod/"+unready, `{.status.conditions[?(@.type=="Ready")].status}`)
		return st == "False", st
	})
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pods"),
		`^`+unready+` +0/1 +Running +0 +[0-9]+s$`, `^`+ready+` +1/1 +Running +0 +[0-9]+s$`)
	Eventually(t, 10*time.Second, "endpoints follow", func() (bool, string) {
		a := s.Jsonpath(t, ns, "endpoints/readiness-svc", `{.subsets[0].notReadyAddresses[*].ip}`)
		return a == ips[unready], a
	})
	describeEndpoints(ips[ready], ips[unready])
	hello(ready)
	Contains(t, seedEvents(t, s, ns, unready), "Warning|Unhealthy|", "|Readiness probe failed: HTTP probe failed with statuscode: 500")
	ev := seedEvents(t, s, ns, unready)
	Contains(t, ev, `Normal|Pulling|1|Pulling image "gcr.io/terrycho-sandbox/readiness:v1"`)
	MatchLines(t, ev, `^Normal\|Pulled\|1\|`+pulledRe("gcr.io/terrycho-sandbox/readiness:v1")+`$`)

	s.MustKubectl(t, "exec", "-n", ns, unready, "--", "touch", "/tmp/healthy")
	Eventually(t, 30*time.Second, unready+" ready again", func() (bool, string) {
		a := s.Jsonpath(t, ns, "endpoints/readiness-svc", `{.subsets[0].addresses[*].ip}`)
		return len(strings.Fields(a)) == 2, a
	})
	describeEndpoints(sortedIPs(pods...), "<none>")
}

// curl GETs url on a connection of its own, as `curl -s -m 2` does (a
// kept-alive connection would stay with the endpoint it first reached).
func curl(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func seedContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func seed003MultiContainer(t *testing.T, s *Server) {
	ns := s.Namespace(t)
	if out := s.MustApply(t, ns, seedMultiContainer); out != "pod/multi-container-pod created\n" {
		t.Errorf("apply: %q", out)
	}
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/multi-container-pod", "--timeout=60s")
	ip := s.Jsonpath(t, ns, "pod/multi-container-pod", "{.status.podIP}")
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pod", "multi-container-pod", "-o", "wide"),
		`^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE +NOMINATED NODE +READINESS GATES$`,
		`^multi-container-pod +2/2 +Running +0 +[0-9]+s +`+regexp.QuoteMeta(ip)+` +\S+ +<none> +<none>$`)
	r := s.Kubectl(t, "logs", "-n", ns, "multi-container-pod")
	if r.Code != 0 || r.Stdout != "" || !strings.Contains(r.Stderr, `Defaulted container "main-app" out of: main-app, log-writer`) {
		t.Errorf("logs: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, args := range [][]string{{"-c", "log-writer"}, {"-c", "main-app"}, {"--all-containers"}} {
		if out := s.MustKubectl(t, append([]string{"logs", "-n", ns, "multi-container-pod"}, args...)...); out != "" {
			t.Errorf("logs %v: %q", args, out)
		}
	}
	hellos := regexp.MustCompile(`^(hello\n)+$`)
	Eventually(t, 15*time.Second, "hello.txt written", func() (bool, string) {
		r := s.Kubectl(t, "exec", "-n", ns, "multi-container-pod", "--", "cat", "/usr/share/nginx/html/hello.txt")
		return r.Code == 0 && hellos.MatchString(r.Stdout) &&
			strings.Contains(r.Stderr, `Defaulted container "main-app" out of: main-app, log-writer`), r.Stdout + r.Stderr
	})
	// nginx serves the file the other container writes, on the pod's localhost.
	if out := s.MustKubectl(t, "exec", "-n", ns, "multi-container-pod", "-c", "log-writer", "--", "wget", "-qO-", "http://localhost/hello.txt"); !hellos.MatchString(out) {
		t.Errorf("wget localhost: %q", out)
	}
	MatchLines(t, s.MustKubectl(t, "exec", "-n", ns, "multi-container-pod", "-c", "log-writer", "--", "ls", "-la", "/logs"),
		`^total [0-9]+$`, `^drwxrwxrwx +[0-9]+ root +root +[0-9]+ .* \.$`, `^drwxr-xr-x +[0-9]+ root +root +[0-9]+ .* \.\.$`,
		`^-rw-r--r-- +1 root +root +[0-9]+ .* hello\.txt$`)
	if body, err := curl("http://" + ip + "/hello.txt"); err != nil || !hellos.MatchString(body) {
		t.Errorf("curl http://%s/hello.txt: %q %v", ip, body, err)
	}
	ev := seedEvents(t, s, ns, "multi-container-pod")
	Contains(t, ev, `Normal|Pulling|1|Pulling image "nginx"`, `Normal|Pulling|1|Pulling image "busybox"`)
	MatchLines(t, ev, `^Normal\|Pulled\|1\|`+pulledRe("nginx")+`$`, `^Normal\|Pulled\|1\|`+pulledRe("busybox")+`$`)
}

func seed004MyappPod(t *testing.T, s *Server) {
	ns := s.Namespace(t)
	if out := s.MustApply(t, ns, seedMyappPod); out != "pod/myapp-pod created\n" {
		t.Errorf("apply: %q", out)
	}
	Eventually(t, 30*time.Second, "init-myservice waiting for its service", func() (bool, string) {
		r := s.Kubectl(t, "logs", "-n", ns, "myapp-pod", "-c", "init-myservice", "--tail=6")
		return strings.Contains(r.Stdout, "waiting for myservice"), r.Stdout + r.Stderr
	})
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pod", "myapp-pod"), `^myapp-pod +0/1 +Init:0/2 +0 +[0-9]+s$`)
	r := s.Kubectl(t, "logs", "-n", ns, "myapp-pod")
	if r.Code != 1 {
		t.Errorf("logs while initialising: exit %d", r.Code)
	}
	Contains(t, r.Stderr,
		`Defaulted container "myapp-container" out of: myapp-container, init-myservice (init), init-mydb (init)`,
		`Error from server (BadRequest): container "myapp-container" in pod "myapp-pod" is waiting to start: PodInitializing`)
	logs := s.MustKubectl(t, "logs", "-n", ns, "myapp-pod", "-c", "init-myservice", "--tail=6")
	Contains(t, logs, "** server can't find myservice."+ns+".svc.cluster.local: NXDOMAIN\n", "waiting for myservice\n")
	ev := seedEvents(t, s, ns, "myapp-pod")
	Contains(t, ev, `Normal|Pulled|1|Container image "busybox:1.28" already present on machine and can be accessed by the pod`,
		"Normal|Created|1|Container created", "Normal|Started|1|Container started")
	if strings.Contains(ev, "Pulling") {
		t.Errorf("busybox:1.28 is present: no pull expected:\n%s", ev)
	}

	if out := s.MustApply(t, ns, seedMyappServices); out != "service/myservice created\nservice/mydb created\n" {
		t.Errorf("apply services: %q", out)
	}
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/myapp-pod", "--timeout=60s")
	MatchLines(t, s.MustKubectl(t, "get", "-n", ns, "pod", "myapp-pod"), `^myapp-pod +1/1 +Running +0 +[0-9]+s$`)
	r = s.Kubectl(t, "logs", "-n", ns, "myapp-pod")
	if r.Stdout != "The app is running!\n" {
		t.Errorf("logs: %q", r.Stdout)
	}
	Contains(t, r.Stderr, `Defaulted container "myapp-container" out of: myapp-container, init-myservice (init), init-mydb (init)`)
	dbIP := s.Jsonpath(t, ns, "svc/mydb", "{.spec.clusterIP}")
	dns := s.Jsonpath(t, "kube-system", "svc/kube-dns", "{.spec.clusterIP}")
	Contains(t, s.MustKubectl(t, "logs", "-n", ns, "myapp-pod", "-c", "init-mydb"),
		"Server:\t\t"+dns+"\nAddress:\t"+dns+":53\n",
		"Name:\tmydb."+ns+".svc.cluster.local\nAddress: "+dbIP+"\n")
	if tmpl := s.MustKubectl(t, "get", "-n", ns, "pod", "myapp-pod", "--template",
		`{{range .status.initContainerStatuses}}{{.name}} {{.ready}} {{.restartCount}} {{.state.terminated.reason}} {{.state.terminated.exitCode}}{{"\n"}}{{end}}`); tmpl != "init-myservice true 0 Completed 0\ninit-mydb true 0 Completed 0\n" {
		t.Errorf("init container statuses: %q", tmpl)
	}
}

// withoutWebsocketNoise drops kubectl's own log line about a late frame on
// a stream it has finished with ("Unknown stream id 1, discarding message",
// client-go's websocket executor, seen now and then under load): it is not
// the command's output. Known gap, see the closing note.
func withoutWebsocketNoise(stderr string) string {
	var keep []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !strings.Contains(l, "Unknown stream id") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}
