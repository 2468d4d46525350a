package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/image/imagetest"
)

// Seed 001's liveness demo on the oci runtime, as written: two pods use the
// same /tmp/healthy path in their own root filesystems; removing it in one
// restarts only that one, with busybox's own error text in the event.
func TestOCILivenessSeed001(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the oci runtime needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed")
	}
	tarball := filepath.Join(t.TempDir(), "busybox.tar")
	if err := imagetest.WriteBusyboxRootfs(tarball); err != nil {
		t.Skip(err)
	}
	s := SharedServer(t)
	ns := s.Namespace(t)
	if out, err := exec.Command(binary, "image", "import", "--data-dir", s.DataDir, "--name", "busybox:1.28", tarball).CombinedOutput(); err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, "RuntimeClass oci", func() (bool, string) {
		r := s.Kubectl(t, "get", "runtimeclass", "oci", "-o", "jsonpath={.handler}")
		return r.Stdout == "oci", r.Stderr
	})
	pod := func(name string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, labels: {app: liveness}}
spec:
  runtimeClassName: oci
  terminationGracePeriodSeconds: 2
  containers:
  - name: liveness
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ['sh', '-c', 'touch /tmp/healthy; echo started on $(hostname); sleep 3600']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
---
`
	}
	s.MustApply(t, ns, pod("liveness-pod")+pod("liveness-pod2"))
	for _, p := range []string{"liveness-pod", "liveness-pod2"} {
		s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/"+p, "-n", ns, "--timeout=60s")
	}
	Contains(t, s.MustKubectl(t, "logs", "liveness-pod", "-n", ns), "started on liveness-pod")
	s.MustKubectl(t, "exec", "liveness-pod", "-n", ns, "--", "rm", "/tmp/healthy")
	Eventually(t, 60*time.Second, "liveness-pod restarted", func() (bool, string) {
		r := s.Jsonpath(t, ns, "pod/liveness-pod", "{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running.startedAt}")
		return strings.HasPrefix(r, "1 2"), r
	})
	if r := s.Jsonpath(t, ns, "pod/liveness-pod2", "{.status.containerStatuses[0].restartCount}"); r != "0" {
		t.Errorf("liveness-pod2 restarted too: %s", r)
	}
	ev := s.MustKubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=liveness-pod", "-o", `jsonpath={range .items[*]}{.reason}|{.message}{"\n"}{end}`)
	Contains(t, ev, "Unhealthy|Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
		"Killing|Container liveness failed liveness probe, will be restarted",
		`Pulled|Container image "busybox:1.28" already present on machine and can be accessed by the pod`)
	if id := s.Jsonpath(t, ns, "pod/liveness-pod", "{.status.containerStatuses[0].imageID}"); !strings.HasPrefix(id, "docker.io/library/busybox@sha256:") && !strings.HasPrefix(id, "sha256:") {
		t.Errorf("imageID %q", id)
	}
}
