package kubelet

import (
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics/legacyregistry"
	kubeletmetrics "k8s.io/kubernetes/pkg/kubelet/metrics"

	"k1s.dev/k1s/pkg/kubelet/prober"
)

var registerMetricsOnce sync.Once

// registerMetrics adds the upstream kubelet metrics k1s keeps (same
// definitions: k8s.io/kubernetes/pkg/kubelet/metrics) and the prober's to
// the legacy registry, which `k1s server` serves on /metrics and the
// kubelet API on /metrics.
func registerMetrics() {
	registerMetricsOnce.Do(func() {
		legacyregistry.MustRegister(kubeletmetrics.NodeName, kubeletmetrics.PodStartDuration, kubeletmetrics.ImagePullDuration)
		prober.RegisterMetrics()
	})
}

// podStartTracker observes kubelet_pod_start_duration_seconds: from the
// kubelet first seeing a pod to the first sync that finds it Running.
type podStartTracker struct {
	mu        sync.Mutex
	firstSeen map[types.UID]time.Time
	done      map[types.UID]bool
}

func (t *podStartTracker) observe(pod *v1.Pod, phase v1.PodPhase, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstSeen == nil {
		t.firstSeen, t.done = map[types.UID]time.Time{}, map[types.UID]bool{}
	}
	if t.done[pod.UID] {
		return
	}
	first, ok := t.firstSeen[pod.UID]
	if !ok {
		first = now
		t.firstSeen[pod.UID] = now
	}
	if phase == v1.PodRunning {
		kubeletmetrics.PodStartDuration.Observe(now.Sub(first).Seconds())
		t.done[pod.UID] = true
	}
}

func (t *podStartTracker) forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.firstSeen, uid)
	delete(t.done, uid)
}
