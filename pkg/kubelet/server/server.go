// Package server is the kubelet API (upstream's pkg/kubelet/server paths):
// container logs, exec, attach and port-forward (SPDY and WebSocket, as the
// API server's proxy forwards kubectl's requests), healthz, and resource
// stats (/stats/summary, /metrics/resource).
package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"k8s.io/component-base/metrics/legacyregistry"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Errors a Host returns, mapped to HTTP codes here.
var (
	ErrPodNotFound       = errors.New("pod not found")
	ErrContainerNotFound = errors.New("container not found")
)

// Host is what the server needs of the kubelet.
type Host interface {
	GetPod(namespace, name string) (*v1.Pod, bool)
	ListPods() []*v1.Pod
	// ContainerLogs writes the logs of a container of pod; an error is
	// reported to the client (400) before anything was written.
	ContainerLogs(ctx context.Context, pod *v1.Pod, container string, opts *v1.PodLogOptions, stdout, stderr io.Writer) error
	// CheckRunning fails when the container is not running (exec, attach).
	CheckRunning(ctx context.Context, pod *v1.Pod, container string) error
	// Exec runs cmd in the container; a non-zero exit is *runtime.ExitError.
	Exec(ctx context.Context, pod *v1.Pod, container string, cmd []string, streams runtime.Streams) error
	Attach(ctx context.Context, pod *v1.Pod, container string, streams runtime.Streams) error
	PortForward(ctx context.Context, pod *v1.Pod, port int32, stream io.ReadWriteCloser) error
	Summary(ctx context.Context) (*statsapi.Summary, error)
}

// Options of the server.
type Options struct {
	// RequireClientCert: reject requests without a verified client
	// certificate (the API server's); set when the TLS config has ClientCAs.
	RequireClientCert bool
	// Authorize, when set, decides which verified client certificates may
	// use the API (upstream asks the API server with a
	// SubjectAccessReview; k1s's only legitimate caller is the API server
	// with its kubelet-client identity, or a cluster admin).
	Authorize func(cert *x509.Certificate) bool
	// StreamIdleTimeout closes idle exec/attach/port-forward streams.
	StreamIdleTimeout time.Duration
}

// Server serves the kubelet API.
type Server struct {
	host Host
	opts Options
	mux  *http.ServeMux
}

// New returns the kubelet API handler.
func New(host Host, opts Options) *Server {
	if opts.StreamIdleTimeout == 0 {
		opts.StreamIdleTimeout = 4 * time.Hour
	}
	s := &Server{host: host, opts: opts, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s.mux.HandleFunc("GET /healthz/{check}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s.mux.HandleFunc("GET /pods", s.pods)
	s.mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	for _, p := range []string{"/exec/{namespace}/{pod}/{container}", "/exec/{namespace}/{pod}/{uid}/{container}"} {
		s.mux.HandleFunc(p, s.exec)
	}
	for _, p := range []string{"/attach/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{uid}/{container}"} {
		s.mux.HandleFunc(p, s.attach)
	}
	for _, p := range []string{"/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"} {
		s.mux.HandleFunc(p, s.portForward)
	}
	s.mux.HandleFunc("GET /stats/summary", s.summary)
	s.mux.HandleFunc("GET /metrics/resource", s.metricsResource)
	// the kubelet's own metrics (pod start, image pulls, probes), as
	// upstream's /metrics
	s.mux.Handle("GET /metrics", legacyregistry.Handler())
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if s.opts.Authorize != nil && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if cert := r.TLS.VerifiedChains[0][0]; !s.opts.Authorize(cert) {
			verb := "get"
			if r.Method != http.MethodGet {
				verb = "create"
			}
			// upstream kubelet's text for a denied request
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=proxy)", cert.Subject.CommonName, verb), http.StatusForbidden)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, err.Error())
}

func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for _, p := range s.host.ListPods() {
		list.Items = append(list.Items, *p)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// lookup finds the pod (and checks its uid when the path has one).
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*v1.Pod, bool) {
	pod, ok := s.host.GetPod(r.PathValue("namespace"), r.PathValue("pod"))
	if !ok || (r.PathValue("uid") != "" && types.UID(r.PathValue("uid")) != pod.UID) {
		writeError(w, http.StatusNotFound, fmt.Errorf("pod %q does not exist", r.PathValue("pod")))
		return nil, false
	}
	return pod, true
}

func hasContainer(pod *v1.Pod, name string) bool {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// parseLogOptions reads PodLogOptions from the query (as the API server
// forwards them), with the old "tail" parameter.
func parseLogOptions(q map[string][]string) (*v1.PodLogOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o := &v1.PodLogOptions{}
	var err error
	boolean := func(k string) bool {
		if err != nil {
			return false
		}
		v := get(k)
		if v == "" {
			return false
		}
		b, e := strconv.ParseBool(v)
		if e != nil {
			err = e
		}
		return b
	}
	integer := func(k string) *int64 {
		v := get(k)
		if v == "" || err != nil {
			return nil
		}
		n, e := strconv.ParseInt(v, 10, 64)
		if e != nil {
			err = e
			return nil
		}
		return &n
	}
	o.Follow = boolean("follow")
	o.Previous = boolean("previous")
	o.Timestamps = boolean("timestamps")
	o.TailLines = integer("tailLines")
	if t := get("tail"); t != "" && t != "all" && o.TailLines == nil {
		q["tailLines"] = []string{t}
		o.TailLines = integer("tailLines")
	}
	o.LimitBytes = integer("limitBytes")
	o.SinceSeconds = integer("sinceSeconds")
	if v := get("sinceTime"); v != "" && err == nil {
		t, e := time.Parse(time.RFC3339, v)
		if e != nil {
			err = e
		} else {
			mt := metav1.NewTime(t)
			o.SinceTime = &mt
		}
	}
	if err != nil {
		return nil, errors.New(`{"message": "Unable to decode query."}`)
	}
	if (o.TailLines != nil && *o.TailLines < 0) || (o.LimitBytes != nil && *o.LimitBytes < 1) ||
		(o.SinceSeconds != nil && *o.SinceSeconds < 1) || (o.SinceSeconds != nil && o.SinceTime != nil) {
		return nil, errInvalid
	}
	return o, nil
}

var errInvalid = errors.New(`{"message": "Invalid request."}`)

// flushWriter flushes after each write so followed logs stream.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

// headerOnFirstWrite sends the 200 header once logs start flowing, so an
// error found before anything is written can still be a 400.
type headerOnFirstWrite struct {
	w       http.ResponseWriter
	started bool
}

func (h *headerOnFirstWrite) Write(p []byte) (int, error) {
	if !h.started {
		h.started = true
		h.w.Header().Set("Content-Type", "text/plain")
		h.w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	return h.w.Write(p)
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r.URL.Query())
	if err != nil {
		code := http.StatusBadRequest
		if err == errInvalid {
			code = http.StatusUnprocessableEntity
		}
		writeError(w, code, err)
		return
	}
	pod, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := r.PathValue("container")
	if !hasContainer(pod, name) {
		writeError(w, http.StatusNotFound, fmt.Errorf("container %q not found in pod %q", name, pod.Name))
		return
	}
	hw := &headerOnFirstWrite{w: w}
	f, _ := w.(http.Flusher)
	fw := &flushWriter{w: hw, f: f}
	if err := s.host.ContainerLogs(r.Context(), pod, name, opts, fw, fw); err != nil {
		if !hw.started {
			writeError(w, http.StatusBadRequest, err)
		}
		return
	}
	if !hw.started {
		hw.Write(nil)
	}
}

func (s *Server) streamTarget(w http.ResponseWriter, r *http.Request) (*v1.Pod, string, bool) {
	pod, ok := s.lookup(w, r)
	if !ok {
		return nil, "", false
	}
	name := r.PathValue("container")
	if err := s.host.CheckRunning(r.Context(), pod, name); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return nil, "", false
	}
	return pod, name, true
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
		return
	}
	pod, name, ok := s.streamTarget(w, r)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cmd := r.URL.Query()["command"]
	remotecommand.ServeExec(w, r, &adapter{s: s, pod: pod}, pod.Name, string(pod.UID), name, cmd, opts,
		s.opts.StreamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
		return
	}
	pod, name, ok := s.streamTarget(w, r)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	remotecommand.ServeAttach(w, r, &adapter{s: s, pod: pod}, pod.Name, string(pod.UID), name, opts,
		s.opts.StreamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
		return
	}
	pod, ok := s.lookup(w, r)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	portforward.ServePortForward(w, r, &adapter{s: s, pod: pod}, pod.Name, string(pod.UID), opts,
		s.opts.StreamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
}

// adapter implements the streaming packages' Executor, Attacher and
// PortForwarder on the Host.
type adapter struct {
	s   *Server
	pod *v1.Pod
}

func streams(in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) (runtime.Streams, func()) {
	st := runtime.Streams{Stdin: in, Stdout: out, Stderr: errw, TTY: tty}
	if resize == nil {
		return st, func() {}
	}
	ch := make(chan runtime.TermSize, 1)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-done:
				return
			case sz, ok := <-resize:
				if !ok {
					return
				}
				select {
				case ch <- runtime.TermSize{Width: sz.Width, Height: sz.Height}:
				case <-done:
					return
				}
			}
		}
	}()
	st.Resize = ch
	return st, func() { close(done) }
}

// exitError carries a command's exit code to the streaming protocol.
type exitError struct{ code int }

func (e exitError) Error() string   { return fmt.Sprintf("command terminated with exit code %d", e.code) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return e.code }

func (a *adapter) ExecInContainer(ctx context.Context, name, uid, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	st, stop := streams(in, out, errw, tty, resize)
	defer stop()
	err := a.s.host.Exec(ctx, a.pod, container, cmd, st)
	var ee *runtime.ExitError
	if errors.As(err, &ee) {
		return exitError{ee.Code}
	}
	return err
}

func (a *adapter) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	st, stop := streams(in, out, errw, tty, resize)
	defer stop()
	return a.s.host.Attach(ctx, a.pod, container, st)
}

func (a *adapter) PortForward(ctx context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	return a.s.host.PortForward(ctx, a.pod, port, stream)
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.host.Summary(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sum)
}

// metricsResource is the Prometheus text the metrics-server scrapes.
func (s *Server) metricsResource(w http.ResponseWriter, r *http.Request) {
	text := s.resourceMetricsText(r.Context())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, text)
}

func (s *Server) resourceMetricsText(ctx context.Context) string {
	sum, err := s.host.Summary(ctx)
	scrapeErr := 0
	if err != nil {
		scrapeErr = 1
		sum = &statsapi.Summary{}
	}
	var b strings.Builder
	ts := func(t metav1.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	header := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	type containerSample struct {
		labels string
		c      statsapi.ContainerStats
	}
	var cs []containerSample
	pods := append([]statsapi.PodStats(nil), sum.Pods...)
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].PodRef.Namespace+"/"+pods[i].PodRef.Name < pods[j].PodRef.Namespace+"/"+pods[j].PodRef.Name
	})
	for _, p := range pods {
		for _, c := range p.Containers {
			cs = append(cs, containerSample{fmt.Sprintf(`container=%q,namespace=%q,pod=%q`, c.Name, p.PodRef.Namespace, p.PodRef.Name), c})
		}
	}
	header("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds")
	for _, s := range cs {
		if s.c.CPU != nil && s.c.CPU.UsageCoreNanoSeconds != nil {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total{%s} %g %s\n", s.labels, float64(*s.c.CPU.UsageCoreNanoSeconds)/1e9, ts(s.c.CPU.Time))
		}
	}
	header("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes")
	for _, s := range cs {
		if s.c.Memory != nil && s.c.Memory.WorkingSetBytes != nil {
			fmt.Fprintf(&b, "container_memory_working_set_bytes{%s} %d %s\n", s.labels, *s.c.Memory.WorkingSetBytes, ts(s.c.Memory.Time))
		}
	}
	header("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds")
	for _, s := range cs {
		fmt.Fprintf(&b, "container_start_time_seconds{%s} %d %s\n", s.labels, s.c.StartTime.Unix(), ts(s.c.StartTime))
	}
	n := sum.Node
	header("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds")
	if n.CPU != nil && n.CPU.UsageCoreNanoSeconds != nil {
		fmt.Fprintf(&b, "node_cpu_usage_seconds_total %g %s\n", float64(*n.CPU.UsageCoreNanoSeconds)/1e9, ts(n.CPU.Time))
	}
	header("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes")
	if n.Memory != nil && n.Memory.WorkingSetBytes != nil {
		fmt.Fprintf(&b, "node_memory_working_set_bytes %d %s\n", *n.Memory.WorkingSetBytes, ts(n.Memory.Time))
	}
	header("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds")
	for _, p := range pods {
		if p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil {
			fmt.Fprintf(&b, "pod_cpu_usage_seconds_total{namespace=%q,pod=%q} %g %s\n", p.PodRef.Namespace, p.PodRef.Name, float64(*p.CPU.UsageCoreNanoSeconds)/1e9, ts(p.CPU.Time))
		}
	}
	header("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes")
	for _, p := range pods {
		if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
			fmt.Fprintf(&b, "pod_memory_working_set_bytes{namespace=%q,pod=%q} %d %s\n", p.PodRef.Namespace, p.PodRef.Name, *p.Memory.WorkingSetBytes, ts(p.Memory.Time))
		}
	}
	header("resource_scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise")
	fmt.Fprintf(&b, "resource_scrape_error %d\n", scrapeErr)
	return b.String()
}
