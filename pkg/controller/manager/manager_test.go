package manager

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
		check   func(t *testing.T, c Config)
	}{
		{name: "no client", cfg: Config{}, wantErr: true},
		{name: "unknown controller", cfg: Config{Clients: newFakeCluster(), Controllers: []string{"hpa"}}, wantErr: true},
		{name: "upstream defaults", cfg: Config{Clients: newFakeCluster()}, check: func(t *testing.T, c Config) {
			want := NodeLifecycleOptions{
				NodeMonitorPeriod: 5 * time.Second, NodeStartupGracePeriod: 60 * time.Second, NodeMonitorGracePeriod: 50 * time.Second,
				NodeEvictionRate: 0.1, SecondaryNodeEvictionRate: 0.01, LargeClusterSizeThreshold: 50, UnhealthyZoneThreshold: 0.55,
			}
			if d := cmp.Diff(want, c.NodeLifecycle); d != "" {
				t.Errorf("node lifecycle defaults (-want +got):\n%s", d)
			}
			if c.TerminatedPodGCThreshold != 12500 || c.MinResyncPeriod != 12*time.Hour {
				t.Errorf("TerminatedPodGCThreshold=%d MinResyncPeriod=%v", c.TerminatedPodGCThreshold, c.MinResyncPeriod)
			}
			if len(c.Controllers) != len(DefaultControllers) {
				t.Errorf("controllers = %v", c.Controllers)
			}
		}},
		{name: "grace period kept", cfg: Config{Clients: newFakeCluster(), NodeLifecycle: NodeLifecycleOptions{NodeMonitorGracePeriod: 3 * time.Second}},
			check: func(t *testing.T, c Config) {
				if c.NodeLifecycle.NodeMonitorGracePeriod != 3*time.Second || c.NodeLifecycle.NodeMonitorPeriod != 5*time.Second {
					t.Errorf("got %+v", c.NodeLifecycle)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// startManager runs the manager on a fake cluster and returns once every
// controller is started; the manager stops (and is checked to stop) at the
// end of the test.
func startManager(t *testing.T, f *fakeCluster, controllers []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{Clients: f, Controllers: controllers, RootCA: []byte("ca"), Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("manager not ready")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
}

func waitFor(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func podTemplate(labels map[string]string) v1.PodTemplateSpec {
	return v1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func TestAllDefaultControllersStart(t *testing.T) {
	// The fake clientset's watch does not replay what happened between list
	// and watch, so objects the test acts on exist before the manager starts.
	f := newFakeCluster(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1"}, Status: v1.NamespaceStatus{Phase: v1.NamespaceActive}})
	startManager(t, f, nil)

	// ServiceAccount controller and root CA publisher act on every namespace.
	waitFor(t, "default service account", func(ctx context.Context) (bool, error) {
		_, err := f.cs.CoreV1().ServiceAccounts("ns1").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	waitFor(t, "kube-root-ca.crt", func(ctx context.Context) (bool, error) {
		cm, err := f.cs.CoreV1().ConfigMaps("ns1").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] == "ca", nil
	})
}

func TestReplicaSetCreatesPods(t *testing.T) {
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}
	f := newFakeCluster(rs)
	startManager(t, f, []string{ReplicaSet})
	waitFor(t, "3 pods", func(ctx context.Context) (bool, error) {
		pods, err := f.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 3 {
			return false, err
		}
		for _, p := range pods.Items {
			ref := metav1.GetControllerOf(&p)
			if ref == nil || ref.Kind != "ReplicaSet" || ref.Name != "web" {
				t.Errorf("pod %s controller = %v", p.Name, ref)
			}
		}
		return true, nil
	})
	waitFor(t, "SuccessfulCreate event", func(ctx context.Context) (bool, error) {
		evs, err := f.cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "SuccessfulCreate" && e.Source.Component == "replicaset-controller" {
				return true, nil
			}
		}
		return false, nil
	})
}

func TestDeploymentCreatesReplicaSet(t *testing.T) {
	labels := map[string]string{"app": "api"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
			// The fake clientset does not default; these are the API defaults.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromString("25%")),
			}},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
	f := newFakeCluster(d)
	startManager(t, f, []string{Deployment, ReplicaSet})
	waitFor(t, "replica set with revision 1", func(ctx context.Context) (bool, error) {
		rss, err := f.cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(rss.Items) != 1 {
			return false, err
		}
		rs := rss.Items[0]
		return rs.Annotations["deployment.kubernetes.io/revision"] == "1" && rs.Labels["pod-template-hash"] != "", nil
	})
	waitFor(t, "2 pods", func(ctx context.Context) (bool, error) {
		pods, err := f.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 2, err
	})
}

func TestGarbageCollectorDeletesDependents(t *testing.T) {
	ctx := context.Background()
	labels := map[string]string{"app": "gc"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "gc", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}
	f := newFakeCluster(rs)
	startManager(t, f, []string{GarbageCollector, ReplicaSet})
	waitFor(t, "2 pods", func(ctx context.Context) (bool, error) {
		pods, err := f.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 2, err
	})
	if err := f.cs.AppsV1().ReplicaSets("default").Delete(ctx, "gc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pods collected", func(ctx context.Context) (bool, error) {
		pods, err := f.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, err
	})
}
