package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeOnce runs container c's probe of type pt once through the prober and
// returns the result and the events it recorded as "Type Reason: message".
func probeOnce(t *testing.T, e *testEnv, pt ProbeType, pod *v1.Pod, c v1.Container) (Result, error, []string) {
	t.Helper()
	return probeOnceIP(t, e, pt, pod, c, "127.0.0.1")
}

func probeOnceIP(t *testing.T, e *testEnv, pt ProbeType, pod *v1.Pod, c v1.Container, podIP string) (Result, error, []string) {
	t.Helper()
	st := podStatus(running(c.Name, cid1, t0, true))
	st.PodIP = podIP
	r, err := e.m.prober.probe(context.Background(), pt, pod, st, &c, cid1)
	var evs []string
	for _, ev := range e.rec.take() {
		evs = append(evs, fmt.Sprintf("%s %s: %s", ev.eventType, ev.reason, ev.m))
	}
	return r, err, evs
}

func withProbe(pt ProbeType, p *v1.Probe) v1.Container {
	c := v1.Container{Name: "c"}
	switch pt {
	case Liveness:
		c.LivenessProbe = p
	case Readiness:
		c.ReadinessProbe = p
	case Startup:
		c.StartupProbe = p
	}
	return c
}

func TestExecProbe(t *testing.T) {
	long := strings.Repeat("x", maxExecOutput+100)
	cases := []struct {
		name     string
		pt       ProbeType
		outcome  execOutcome
		want     Result
		wantErr  bool
		wantEvts []string
	}{
		{"exit 0", Liveness, execOutcome{stdout: "ok\n"}, Success, false, nil},
		{"exit 1 keeps output verbatim", Liveness, execFail, Failure, false,
			[]string{"Warning Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"}},
		{"stdout then stderr", Readiness, execOutcome{stdout: "out\n", stderr: "err\n", code: 2}, Failure, false,
			[]string{"Warning Unhealthy: Readiness probe failed: out\nerr\n"}},
		{"output capped at 10KiB", Startup, execOutcome{stdout: long, code: 1}, Failure, false,
			[]string{"Warning Unhealthy: Startup probe failed: " + long[:maxExecOutput]}},
		{"timeout is a failure", Startup, execOutcome{err: fmt.Errorf("exec: %w", context.DeadlineExceeded)}, Failure, false,
			[]string{`Warning Unhealthy: Startup probe failed: command timed out: "cat /tmp/healthy" timed out after 1s`}},
		{"runtime error", Readiness, execOutcome{err: fmt.Errorf("container not running")}, Failure, true,
			[]string{"Warning Unhealthy: Readiness probe errored and resulted in unknown state: container not running"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			e.exec.push(tc.outcome)
			c := withProbe(tc.pt, execProbe("cat", "/tmp/healthy"))
			r, err, evs := probeOnce(t, e, tc.pt, newPod(c), c)
			if r != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %v, %v; want %v, err %v", r, err, tc.want, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantEvts, evs); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventReference(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	sidecar := v1.Container{Name: "s", RestartPolicy: &always, LivenessProbe: execProbe("false")}
	main := v1.Container{Name: "c", LivenessProbe: execProbe("false")}
	pod := newPod(main)
	pod.Spec.InitContainers = []v1.Container{sidecar}
	for _, tc := range []struct {
		c    v1.Container
		path string
	}{{main, "spec.containers{c}"}, {sidecar, "spec.initContainers{s}"}} {
		e := newTestEnv()
		e.exec.push(execOutcome{code: 1})
		if _, err := e.m.prober.probe(context.Background(), Liveness, pod, podStatus(), &tc.c, cid1); err != nil {
			t.Fatal(err)
		}
		evs := e.rec.take()
		if len(evs) != 1 {
			t.Fatalf("events: %v", evs)
		}
		want := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", Namespace: "default", UID: podUID, ResourceVersion: "7", FieldPath: tc.path}
		if diff := cmp.Diff(want, evs[0].ref); diff != "" {
			t.Errorf("reference (-want +got):\n%s", diff)
		}
	}
}

// server records the requests it serves.
type server struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *server) record(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
}

func (s *server) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

func portOf(t *testing.T, rawURL string) int {
	_, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func TestHTTPProbe(t *testing.T) {
	srv := &server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { srv.record(r); fmt.Fprint(w, "fine") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		srv.record(r)
		w.WriteHeader(500)
		fmt.Fprint(w, "secret body")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("y", 64<<10)) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	port := portOf(t, ts.URL)
	mux.HandleFunc("/local-redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/local-redirect-fail", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/fail", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/remote-redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", fmt.Sprintf("http://localhost:%d/ok", port))
		w.WriteHeader(http.StatusFound)
		fmt.Fprint(w, "moved")
	})

	get := func(path string, p intstr.IntOrString, mod ...func(*v1.HTTPGetAction)) *v1.Probe {
		pr := execProbe()
		pr.Exec = nil
		pr.HTTPGet = &v1.HTTPGetAction{Path: path, Port: p}
		for _, f := range mod {
			f(pr.HTTPGet)
		}
		return pr
	}
	num := intstr.FromInt32(int32(port))
	cases := []struct {
		name     string
		pt       ProbeType
		probe    *v1.Probe
		ports    []v1.ContainerPort
		podIP    string
		want     Result
		wantErr  bool
		wantEvts []string
		check    func(t *testing.T, r *http.Request)
	}{
		{name: "200 on the pod IP", pt: Readiness, probe: get("/ok", num), want: Success,
			check: func(t *testing.T, r *http.Request) {
				if ua, acc := r.Header.Get("User-Agent"), r.Header.Get("Accept"); ua != "kube-probe/1.37" || acc != "*/*" {
					t.Errorf("User-Agent %q, Accept %q", ua, acc)
				}
			}},
		{name: "500", pt: Readiness, probe: get("/fail", num), want: Failure,
			wantEvts: []string{"Warning Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 500"}},
		{name: "404", pt: Liveness, probe: get("/missing", num), want: Failure,
			wantEvts: []string{"Warning Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 404"}},
		{name: "named port", pt: Liveness, probe: get("/ok", intstr.FromString("http")),
			ports: []v1.ContainerPort{{Name: "metrics", ContainerPort: 1}, {Name: "http", ContainerPort: int32(port)}}, want: Success},
		{name: "unknown named port errors", pt: Readiness, probe: get("/ok", intstr.FromString("web")), want: Failure, wantErr: true,
			wantEvts: []string{`Warning Unhealthy: Readiness probe errored and resulted in unknown state: port "web" not found`}},
		{name: "headers, Host and User-Agent as given", pt: Liveness,
			probe: get("/ok?x=1", num, func(a *v1.HTTPGetAction) {
				a.HTTPHeaders = []v1.HTTPHeader{{Name: "Host", Value: "example.com"}, {Name: "user-agent", Value: "mine"}, {Name: "X-Custom", Value: "v"}}
			}),
			want: Success,
			check: func(t *testing.T, r *http.Request) {
				got := []string{r.Host, r.Header.Get("User-Agent"), r.Header.Get("X-Custom"), r.URL.RawQuery}
				if diff := cmp.Diff([]string{"example.com", "mine", "v", "x=1"}, got); diff != "" {
					t.Errorf("request (-want +got):\n%s", diff)
				}
			}},
		{name: "explicit host, no pod IP", pt: Liveness, probe: get("/ok", num, func(a *v1.HTTPGetAction) { a.Host = "127.0.0.1" }), podIP: "none", want: Success},
		{name: "same-host redirect is followed", pt: Liveness, probe: get("/local-redirect", num), want: Success,
			check: func(t *testing.T, r *http.Request) {
				if r.URL.Path != "/ok" {
					t.Errorf("last request %s", r.URL.Path)
				}
			}},
		{name: "same-host redirect to a failure", pt: Liveness, probe: get("/local-redirect-fail", num), want: Failure,
			wantEvts: []string{"Warning Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500"}},
		{name: "redirect to another host: success with a warning", pt: Liveness, probe: get("/remote-redirect", num), want: Success,
			wantEvts: []string{"Warning ProbeWarning: Liveness probe warning: Probe terminated redirects, Response body: moved"}},
		{name: "large body", pt: Readiness, probe: get("/big", num), want: Success},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			c := withProbe(tc.pt, tc.probe)
			c.Ports = tc.ports
			podIP := "127.0.0.1"
			if tc.podIP != "" {
				podIP = "192.0.2.1" // unreachable: the probe must use Host
			}
			r, err, evs := probeOnceIP(t, e, tc.pt, newPod(c), c, podIP)
			if r != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %v, %v; want %v, err %v", r, err, tc.want, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantEvts, evs); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, srv.last())
			}
		})
	}
}

func TestHTTPSProbeSkipsVerification(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	p := execProbe()
	p.Exec = nil
	p.HTTPGet = &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(portOf(t, ts.URL))), Scheme: v1.URISchemeHTTPS}
	e := newTestEnv()
	c := withProbe(Liveness, p)
	if r, err, evs := probeOnce(t, e, Liveness, newPod(c), c); r != Success || err != nil || evs != nil {
		t.Errorf("got %v, %v, %v", r, err, evs)
	}
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := l.Addr().(*net.TCPAddr).Port
	closedL, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := closedL.Addr().(*net.TCPAddr).Port
	closedL.Close()
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	tcp := func(port intstr.IntOrString) *v1.Probe {
		p := execProbe()
		p.Exec = nil
		p.TCPSocket = &v1.TCPSocketAction{Port: port}
		return p
	}
	cases := []struct {
		name    string
		probe   *v1.Probe
		want    Result
		wantEvt string
	}{
		{"open port", tcp(intstr.FromInt32(int32(open))), Success, ""},
		{"named port", tcp(intstr.FromString("svc")), Success, ""},
		{"refused", tcp(intstr.FromInt32(int32(closed))), Failure,
			fmt.Sprintf("Warning Unhealthy: Liveness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closed)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			c := withProbe(Liveness, tc.probe)
			c.Ports = []v1.ContainerPort{{Name: "svc", ContainerPort: int32(open)}}
			r, err, evs := probeOnce(t, e, Liveness, newPod(c), c)
			if r != tc.want || err != nil {
				t.Errorf("got %v, %v", r, err)
			}
			if got := strings.Join(evs, "|"); got != tc.wantEvt {
				t.Errorf("events %q, want %q", got, tc.wantEvt)
			}
		})
	}
}

func TestGRPCProbe(t *testing.T) {
	start := func(withHealth bool) (int, *health.Server) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		hs := health.NewServer()
		if withHealth {
			healthpb.RegisterHealthServer(s, hs)
		}
		go s.Serve(l)
		t.Cleanup(s.Stop)
		return l.Addr().(*net.TCPAddr).Port, hs
	}
	port, hs := start(true)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	bare, _ := start(false)

	cases := []struct {
		name    string
		port    int
		service *string
		want    Result
		wantEvt string
	}{
		{"serving", port, nil, Success, ""},
		{"not serving", port, strPtr("down"), Failure, `Warning Unhealthy: Readiness probe failed: service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", port, strPtr("nope"), Failure, "Warning Unhealthy: Readiness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"},
		{"no health service", bare, nil, Failure, "Warning Unhealthy: Readiness probe failed: error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv()
			p := execProbe()
			p.Exec = nil
			p.GRPC = &v1.GRPCAction{Port: int32(tc.port), Service: tc.service}
			c := withProbe(Readiness, p)
			r, err, evs := probeOnce(t, e, Readiness, newPod(c), c)
			if r != tc.want || err != nil {
				t.Errorf("got %v, %v", r, err)
			}
			if got := strings.Join(evs, "|"); got != tc.wantEvt {
				t.Errorf("events\n got %q\nwant %q", got, tc.wantEvt)
			}
		})
	}
}

func strPtr(s string) *string { return &s }
