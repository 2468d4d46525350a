package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Pods reach the API server through the kubernetes Service (its endpoint is
// the node address the API also listens on when bound to loopback), by name
// through cluster DNS; the host reaches it at the ClusterIP too.
func TestServicesKubernetesFromPod(t *testing.T) {
	s := OCIServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: ['sh', '-c', 'sleep 3600']}
`)
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/client", "-n", ns, "--timeout=90s")
	// busybox has no TLS the API server accepts: a TCP connection by name
	// (busybox's nc exits 0 once connected and stdin ends)
	Eventually(t, 30*time.Second, "kubernetes.default.svc:443 from a pod", func() (bool, string) {
		r := s.Kubectl(t, "exec", "client", "-n", ns, "--", "sh", "-c", "nc -w 3 kubernetes.default.svc 443 </dev/null")
		return r.Code == 0, r.Stdout + r.Stderr
	})
	// and the whole way with TLS from the node, at the ClusterIP
	ip := s.Jsonpath(t, "default", "service/kubernetes", "{.spec.clusterIP}")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // only /version
	resp, err := c.Get("https://" + ip + "/version")
	if err != nil {
		t.Fatalf("GET https://%s/version: %v", ip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"gitVersion"`) {
		t.Errorf("/version through the kubernetes Service: %d %s", resp.StatusCode, body)
	}
}
