// Package lifecycle runs containers' postStart and preStop hooks (exec,
// httpGet, sleep) with upstream kubelet's semantics and failure messages.
package lifecycle

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
	"k8s.io/utils/clock"
)

// ExecFunc runs cmd in a container (runtime.Runtime.ExecSync fits).
type ExecFunc func(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error)

// Runner runs hooks.
type Runner struct {
	Exec  ExecFunc
	HTTP  *http.Client
	Clock clock.Clock
}

// NewRunner returns a Runner with an HTTP client like upstream's (no
// redirects followed past 10, TLS not verified, no keep-alive).
func NewRunner(exec ExecFunc, c clock.Clock) *Runner {
	return &Runner{
		Exec:  exec,
		Clock: c,
		HTTP: &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		}},
	}
}

// podFullName is upstream's format.Pod: name_namespace(uid).
func podFullName(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// Run executes handler for container (runtime id containerID) of pod,
// whose IP is podIP. On failure it returns the message upstream records.
func (r *Runner) Run(ctx context.Context, containerID string, pod *v1.Pod, c *v1.Container, h *v1.LifecycleHandler, podIP string) (string, error) {
	switch {
	case h.Exec != nil:
		stdout, stderr, code, err := r.Exec(ctx, containerID, h.Exec.Command, 0)
		output := append(stdout, stderr...)
		if err == nil && code != 0 {
			err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), code, string(stderr))
		}
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, podFullName(pod), err, string(output)), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := r.runHTTP(ctx, c, h.HTTPGet, podIP); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", h.HTTPGet.Path, c.Name, podFullName(pod), err), err
		}
		return "", nil
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
			err := errors.New("container terminated before sleep hook finished")
			return fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v", h.Sleep.Seconds, c.Name, podFullName(pod), err), err
		case <-r.Clock.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return "", nil
		}
	}
	err := fmt.Errorf("invalid handler: %v", h)
	return fmt.Sprintf("Cannot run handler: %v", err), err
}

func (r *Runner) runHTTP(ctx context.Context, c *v1.Container, a *v1.HTTPGetAction, podIP string) error {
	host := a.Host
	if host == "" {
		if podIP == "" {
			return errors.New("failed to find networking container: no pod IP")
		}
		host = podIP
	}
	req, err := httpprobe.NewRequestForHTTPGetAction(a, c, host, "lifecycle")
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	resp, err := r.HTTP.Do(req)
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}
	if err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		req2 := req.Clone(ctx)
		req2.URL.Scheme = "http"
		req2.Header.Del("Authorization")
		resp, err = r.HTTP.Do(req2)
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
		}
	}
	return err
}
