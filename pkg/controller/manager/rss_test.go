package manager

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func rssKiB() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func heapMiB() float64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// TestMeasureRSS reports the memory the default controllers add, on a fake
// cluster with 10 Deployments of 10 replicas (K1S_MEASURE_RSS=1 to run).
func TestMeasureRSS(t *testing.T) {
	if os.Getenv("K1S_MEASURE_RSS") == "" {
		t.Skip("set K1S_MEASURE_RSS=1")
	}
	var objs []runtime.Object
	objs = append(objs, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Status: v1.NamespaceStatus{Phase: v1.NamespaceActive}})
	for i := 0; i < 10; i++ {
		labels := map[string]string{"app": fmt.Sprintf("d%d", i)}
		objs = append(objs, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d%d", i), Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](10), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podTemplate(labels),
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromString("25%")),
				}},
				RevisionHistoryLimit: ptr.To[int32](10), ProgressDeadlineSeconds: ptr.To[int32](600),
			},
		})
	}
	h0, r0 := heapMiB(), rssKiB()
	f := newFakeCluster(objs...)
	startManager(t, f, nil)
	waitFor(t, "100 pods", func(ctx context.Context) (bool, error) {
		pods, err := f.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 100, err
	})
	t.Logf("before: heap %.1f MiB, RSS %s; running %d controllers with 100 pods: heap %.1f MiB, RSS %s",
		h0, r0, len(DefaultControllers), heapMiB(), rssKiB())
}
