package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	fakeruntime "k1s.dev/k1s/pkg/kubelet/runtime/fake"
	v1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"
)

func (h *harness) get200(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", h.k.ServerPort(), path))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerContainerLogs(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("init", fakeruntime.Behavior{ExitOnStart: true, ExitCode: 127, Output: []string{"sh: hello.sh: not found"}})
	h.rt.SetBehavior("app", fakeruntime.Behavior{Output: []string{"one", "two", "three"}})
	h.create(podWith("logs", v1.RestartPolicyAlways, []string{"init"}, "app"))
	h.waitStatus("logs", "init:init=terminated/Error:127")

	cases := []struct {
		path, want string
		code       int
	}{
		{"/containerLogs/ns/logs/init", "sh: hello.sh: not found\n", 200},
		{"/containerLogs/ns/logs/app", `container "app" in pod "logs" is waiting to start: PodInitializing`, 400},
		{"/containerLogs/ns/logs/nope", `container "nope" not found in pod "logs"`, 404},
		{"/containerLogs/ns/missing/app", `pod "missing" does not exist`, 404},
		{"/containerLogs/ns/logs/app?previous=true", `previous terminated container "app" in pod "logs" not found`, 400},
		{"/containerLogs/ns/logs/init?tailLines=-1", `{"message": "Invalid request."}`, 422},
	}
	for _, tc := range cases {
		code, body := h.get200(tc.path)
		if code != tc.code || body != tc.want {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}

	// the init container restarted once: its previous attempt's logs
	h.step(10 * 1e9)
	h.eventually("third attempt", func() bool { return h.callCount("StartContainer init") >= 3 })
	h.waitStatus("logs", "init:init=terminated/Error:127 ready=false started=false restarts=2")
	if code, body := h.get200("/containerLogs/ns/logs/init?previous=true"); code != 200 || body != "sh: hello.sh: not found\n" {
		t.Errorf("previous: %d %q", code, body)
	}
	if code, body := h.get200("/containerLogs/ns/logs/init?timestamps=true"); code != 200 || !strings.HasSuffix(body, "Z sh: hello.sh: not found\n") {
		t.Errorf("timestamps: %d %q", code, body)
	}
	if code, _ := h.get200("/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
}

func TestServerExec(t *testing.T) {
	h := newHarness(t)
	h.rt.SetExec(func(id string, cmd []string) ([]byte, []byte, int, error) {
		if cmd[0] == "false" {
			return nil, []byte("failing\n"), 3, nil
		}
		return []byte(strings.Join(cmd, " ") + "\n"), nil, 0, nil
	})
	h.create(podWith("web", v1.RestartPolicyAlways, nil, "c"))
	h.waitStatus("web", "c=running/")

	run := func(cmd ...string) (string, string, error) {
		q := url.Values{"command": cmd, "output": {"1"}, "error": {"1"}}
		u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d/exec/ns/web/c?%s", h.k.ServerPort(), q.Encode()))
		ex, err := remotecommand.NewSPDYExecutor(&restclient.Config{Host: u.Host}, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
		return out.String(), errb.String(), err
	}
	out, _, err := run("echo", "hello")
	if err != nil || out != "echo hello\n" {
		t.Fatalf("exec: %q %v", out, err)
	}
	_, errOut, err := run("false")
	var ee utilexec.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 || errOut != "failing\n" {
		t.Fatalf("exit code: %v %q", err, errOut)
	}
}

func TestServerStats(t *testing.T) {
	h := newHarness(t)
	h.create(podWith("web", v1.RestartPolicyAlways, nil, "c"))
	h.waitStatus("web", "c=running/")
	code, body := h.get200("/metrics/resource")
	for _, want := range []string{
		`container_cpu_usage_seconds_total{container="c",namespace="ns",pod="web"} 0.001 `,
		`container_memory_working_set_bytes{container="c",namespace="ns",pod="web"} 1048576 `,
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 1048576 `,
		"# TYPE node_cpu_usage_seconds_total counter",
		"resource_scrape_error 0",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics/resource %d lacks %q:\n%s", code, want, body)
		}
	}
	code, body = h.get200("/stats/summary")
	if code != 200 || !strings.Contains(body, `"podRef":{"name":"web","namespace":"ns","uid":"uid-web"}`) || !strings.Contains(body, `"nodeName":"vm"`) {
		t.Errorf("stats/summary %d:\n%s", code, body)
	}
	code, body = h.get200("/pods")
	if code != 200 || !strings.Contains(body, `"name":"web"`) {
		t.Errorf("pods %d", code)
	}
}
