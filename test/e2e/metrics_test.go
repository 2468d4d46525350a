package e2e

import (
	"regexp"
	"testing"
	"time"
)

// k1s's own Prometheus /metrics (issue 6): the API server's request
// latency, the controllers' workqueues, the kubelet's pod start latency and
// probe results, all from the one process behind the API's /metrics.
func TestPrometheusMetrics(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	s.MustApply(t, ns, `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: c
    image: busybox
    command: ['sh', '-c', 'touch ready; sleep 3600']
    readinessProbe:
      exec: {command: [cat, ready]}
      periodSeconds: 1
`)
	s.MustKubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/probed", "--timeout=60s")
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^apiserver_request_duration_seconds_bucket\{.*verb="POST".*\} \d+`),
		regexp.MustCompile(`(?m)^workqueue_depth\{name="replicaset"\} \d+`),
		regexp.MustCompile(`(?m)^kubelet_pod_start_duration_seconds_count [1-9]\d*`),
		regexp.MustCompile(`(?m)^prober_probe_total\{container="c",namespace="` + ns + `",pod="probed",pod_uid="[0-9a-f-]+",probe_type="readiness",result="successful"\} [1-9]\d*`),
		regexp.MustCompile(`(?m)^prober_probe_duration_seconds_count\{container="c",namespace="` + ns + `",pod="probed",probe_type="readiness"\} [1-9]\d*`),
	}
	Eventually(t, 30*time.Second, "k1s metrics on /metrics", func() (bool, string) {
		out := s.MustKubectl(t, "get", "--raw", "/metrics")
		for _, re := range want {
			if !re.MatchString(out) {
				return false, "missing " + re.String()
			}
		}
		return true, ""
	})
}
