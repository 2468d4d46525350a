package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/kubernetes/pkg/probe"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
	tcpprobe "k8s.io/kubernetes/pkg/probe/tcp"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

const (
	// maxProbeRetries: a probe that errors (rather than fails) is retried
	// this many times in a row before the error is reported.
	maxProbeRetries = 3
	// userAgent is what upstream's kubelet 1.37 sends (kube-probe/<major>.<minor>).
	userAgent = "kube-probe/1.37"
	// maxExecOutput bounds the exec output kept for the event, as upstream.
	maxExecOutput = 10 * 1 << 10

	// Event reasons (upstream pkg/kubelet/events).
	ReasonUnhealthy    = "Unhealthy"
	ReasonProbeWarning = "ProbeWarning"
)

// prober runs one probe handler and turns its outcome into a Result and
// events, as upstream's prober.probe does.
type prober struct {
	exec      Execer
	runtimeID func(string) string
	http      httpprobe.Prober
	recorder  record.EventRecorder
}

func newProber(opts Options) *prober {
	rid := opts.RuntimeContainerID
	if rid == nil {
		rid = stripScheme
	}
	const followNonLocalRedirects = false
	return &prober{
		exec:      opts.Exec,
		runtimeID: rid,
		http:      httpprobe.New(followNonLocalRedirects),
		recorder:  opts.Recorder,
	}
}

// stripScheme maps "host://abc" to "abc".
func stripScheme(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

func probeSpec(c *v1.Container, t ProbeType) *v1.Probe {
	switch t {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	}
	return c.StartupProbe
}

// probe runs the container's probe of type t once (with retries on errors)
// and records Unhealthy / ProbeWarning events. A non-nil error means the
// result must be thrown away.
func (pb *prober) probe(ctx context.Context, t ProbeType, pod *v1.Pod, status v1.PodStatus, c *v1.Container, containerID string) (Result, error) {
	spec := probeSpec(c, t)
	if spec == nil {
		return Success, nil
	}
	result, output, err := pb.runWithRetries(ctx, spec, pod, status, c, containerID)
	if ctx.Err() != nil {
		// The worker was stopped while probing: nobody wants this result.
		return Unknown, ctx.Err()
	}
	if err != nil {
		pb.event(pod, c, v1.EventTypeWarning, ReasonUnhealthy, "%s probe errored and resulted in %s state: %s", t, result, err)
		return Failure, err
	}
	switch result {
	case probe.Success:
		return Success, nil
	case probe.Warning:
		pb.event(pod, c, v1.EventTypeWarning, ReasonProbeWarning, "%s probe warning: %s", t, output)
		return Success, nil
	case probe.Failure:
		pb.event(pod, c, v1.EventTypeWarning, ReasonUnhealthy, "%s probe failed: %s", t, output)
		return Failure, nil
	}
	return Failure, nil
}

func (pb *prober) runWithRetries(ctx context.Context, spec *v1.Probe, pod *v1.Pod, status v1.PodStatus, c *v1.Container, containerID string) (probe.Result, string, error) {
	var (
		result probe.Result
		output string
		err    error
	)
	for i := 0; i < maxProbeRetries; i++ {
		result, output, err = pb.run(ctx, spec, pod, status, c, containerID)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return result, output, err
}

func (pb *prober) run(ctx context.Context, p *v1.Probe, pod *v1.Pod, status v1.PodStatus, c *v1.Container, containerID string) (probe.Result, string, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	switch {
	case p.Exec != nil:
		return pb.runExec(ctx, p.Exec, c, containerID, timeout)
	case p.HTTPGet != nil:
		req, err := newHTTPRequest(ctx, p.HTTPGet, c, status.PodIP)
		if err != nil {
			return probe.Unknown, "", err
		}
		return pb.http.Probe(req, timeout)
	case p.TCPSocket != nil:
		port, err := probe.ResolveContainerPort(p.TCPSocket.Port, c)
		if err != nil {
			return probe.Unknown, "", err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = status.PodIP
		}
		return tcpprobe.New().Probe(host, port, timeout)
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return grpcProbe(ctx, status.PodIP, service, int(p.GRPC.Port), timeout)
	}
	return probe.Unknown, "", fmt.Errorf("missing probe handler for %s_%s(%s):%s", pod.Name, pod.Namespace, pod.UID, c.Name)
}

// runExec runs the command through the runtime. Output is stdout followed by
// stderr (as upstream's RunInContainer), exit 0 is success, a timeout is a
// failure worded like the CRI client's ErrCommandTimedOut.
func (pb *prober) runExec(ctx context.Context, a *v1.ExecAction, c *v1.Container, containerID string, timeout time.Duration) (probe.Result, string, error) {
	if pb.exec == nil {
		return probe.Unknown, "", errors.New("exec probes are not supported by this runtime")
	}
	cmd := expandStatic(a.Command, c.Env)
	stdout, stderr, code, err := pb.exec.ExecSync(ctx, pb.runtimeID(containerID), cmd, timeout)
	out := append(append([]byte{}, stdout...), stderr...)
	if len(out) > maxExecOutput {
		out = out[:maxExecOutput]
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probe.Failure, fmt.Sprintf("command timed out: %q timed out after %s", strings.Join(cmd, " "), timeout), nil
		}
		return probe.Unknown, "", err
	}
	if code != 0 {
		return probe.Failure, string(out), nil
	}
	return probe.Success, string(out), nil
}

// expandStatic substitutes $(VAR) with the container's literal env values
// only (no valueFrom), leaving unknown references as they are.
func expandStatic(cmd []string, env []v1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	mapping := expansion.MappingFuncFor(vars)
	out := make([]string, 0, len(cmd))
	for _, s := range cmd {
		out = append(out, expansion.Expand(s, mapping))
	}
	return out
}

// newHTTPRequest builds the probe's GET as upstream does: host defaults to the
// pod IP, named ports come from the container's ports, httpHeaders (Host
// included) are sent as given, User-Agent and Accept get defaults.
func newHTTPRequest(ctx context.Context, a *v1.HTTPGetAction, c *v1.Container, podIP string) (*http.Request, error) {
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := a.Host
	if host == "" {
		host = podIP
	}
	port, err := probe.ResolveContainerPort(a.Port, c)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(a.Path)
	if err != nil {
		u = &url.URL{Path: a.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	for _, h := range a.HTTPHeaders {
		headers.Add(h.Name, h.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", userAgent)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	} else if headers.Get("Accept") == "" {
		headers.Del("Accept")
	}
	req.Header = headers
	req.Host = headers.Get("Host")
	return req, nil
}

// event records on the pod with the container's fieldPath, as upstream's
// kubecontainer.GenerateContainerRef does.
func (pb *prober) event(pod *v1.Pod, c *v1.Container, eventType, reason, format string, args ...any) {
	if pb.recorder == nil {
		return
	}
	pb.recorder.Eventf(containerRef(pod, c.Name), eventType, reason, format, args...)
}

func containerRef(pod *v1.Pod, name string) *v1.ObjectReference {
	return &v1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Name:            pod.Name,
		Namespace:       pod.Namespace,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       fieldPath(pod, name),
	}
}

func fieldPath(pod *v1.Pod, name string) string {
	for i, c := range pod.Spec.Containers {
		if c.Name == name {
			if name == "" {
				return fmt.Sprintf("spec.containers[%d]", i)
			}
			return fmt.Sprintf("spec.containers{%s}", name)
		}
	}
	for i, c := range pod.Spec.InitContainers {
		if c.Name == name {
			if name == "" {
				return fmt.Sprintf("spec.initContainers[%d]", i)
			}
			return fmt.Sprintf("spec.initContainers{%s}", name)
		}
	}
	return "implicitly required container " + name
}
