package prober

import (
	"strings"
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The kubelet's prober metrics (upstream pkg/kubelet/prober: same names,
// labels and result values), exposed on k1s's /metrics.
var (
	probeResults = metrics.NewCounterVec(
		&metrics.CounterOpts{
			Subsystem:      "prober",
			Name:           "probe_total",
			Help:           "Cumulative number of a liveness, readiness or startup probe for a container by result.",
			StabilityLevel: metrics.BETA,
		},
		[]string{"probe_type", "result", "container", "pod", "namespace", "pod_uid"},
	)
	probeDuration = metrics.NewHistogramVec(
		&metrics.HistogramOpts{
			Subsystem:      "prober",
			Name:           "probe_duration_seconds",
			Help:           "Duration in seconds for a probe response.",
			StabilityLevel: metrics.ALPHA,
		},
		[]string{"probe_type", "container", "pod", "namespace"},
	)
	registerOnce sync.Once
)

// RegisterMetrics adds the prober metrics to the legacy registry (served by
// the API server's /metrics in `k1s server`). Safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(probeResults, probeDuration)
	})
}

// recordProbe counts one probe outcome as upstream's worker does:
// successful / failed / unknown, with the duration of the non-failed ones.
func (w *worker) recordProbe(result Result, took time.Duration) {
	t := strings.ToLower(w.key.probeType.String())
	name, ns, uid := w.pod.Name, w.pod.Namespace, string(w.pod.UID)
	switch result {
	case Success:
		probeResults.WithLabelValues(t, "successful", w.container.Name, name, ns, uid).Inc()
		probeDuration.WithLabelValues(t, w.container.Name, name, ns).Observe(took.Seconds())
	case Failure:
		probeResults.WithLabelValues(t, "failed", w.container.Name, name, ns, uid).Inc()
	default:
		probeResults.WithLabelValues(t, "unknown", w.container.Name, name, ns, uid).Inc()
		probeDuration.WithLabelValues(t, w.container.Name, name, ns).Observe(took.Seconds())
	}
}

// forgetMetrics drops the worker's series when it stops (upstream deletes
// its ProberResults labels too).
func (w *worker) forgetMetrics() {
	t := strings.ToLower(w.key.probeType.String())
	for _, r := range []string{"successful", "failed", "unknown"} {
		probeResults.Delete(map[string]string{"probe_type": t, "result": r, "container": w.container.Name,
			"pod": w.pod.Name, "namespace": w.pod.Namespace, "pod_uid": string(w.pod.UID)})
	}
}
