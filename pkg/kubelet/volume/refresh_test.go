package volume

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
)

// countingSrc counts ConfigMap reads and serves value as cfg's "a".
type countingSrc struct {
	src
	reads atomic.Int32
	value atomic.Value
}

func (c *countingSrc) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	c.reads.Add(1)
	return &v1.ConfigMap{Data: map[string]string{"a": c.value.Load().(string)}}, nil
}

// Pods' periodic refreshes share one read of an object per refresh
// period; a pod's first setup always reads the API.
func TestRefreshesShareReads(t *testing.T) {
	s := &countingSrc{}
	s.value.Store("1")
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	root := t.TempDir()
	t.Cleanup(func() { unmountUnder(root) })
	m := NewManager(root, s, clk)
	vol := v1.Volume{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}}
	pod := func(uid string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid)}, Spec: v1.PodSpec{Volumes: []v1.Volume{vol}}}
	}
	setup := func(uid, want string) {
		t.Helper()
		paths, err := m.Setup(context.Background(), pod(uid), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(paths["c"], "a")); err != nil || string(got) != want {
			t.Fatalf("pod %s: a = %q (%v), want %q", uid, got, err, want)
		}
	}
	reads := func(want int32) {
		t.Helper()
		if got := s.reads.Swap(0); got != want {
			t.Fatalf("%d reads, want %d", got, want)
		}
	}

	setup("p1", "1")
	setup("p2", "1")
	reads(2) // first setups read

	clk.Step(61 * time.Second)
	setup("p1", "1")
	setup("p2", "1")
	reads(1) // the refreshes share one read

	s.value.Store("2")
	setup("p3", "2") // a new pod reads the API and sees the change
	reads(1)
	clk.Step(30 * time.Second)
	setup("p1", "1") // refreshed 30 s ago: not yet again
	reads(0)
	clk.Step(31 * time.Second)
	setup("p1", "2") // the shared read is a minute old: read again
	setup("p2", "2")
	reads(1)
}

// A refresh leaves an emptyDir's mode alone: fsGroup's setgid bit and
// what containers chmod stay (it was reset to 0777 a minute after start).
func TestRefreshKeepsEmptyDirMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fsGroup ownership needs root")
	}
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	root := t.TempDir()
	m := NewManager(root, src{}, clk)
	fsGroup := int64(2000)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{
		SecurityContext: &v1.PodSecurityContext{FSGroup: &fsGroup},
		Volumes:         []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
	}}
	mode := func() os.FileMode {
		t.Helper()
		paths, err := m.Setup(context.Background(), pod, nil)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(paths["data"])
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	want := os.ModeDir | os.ModeSetgid | 0o777
	if got := mode(); got != want {
		t.Fatalf("first setup: %v, want %v", got, want)
	}
	clk.Step(61 * time.Second)
	if got := mode(); got != want {
		t.Errorf("after a refresh: %v, want %v", got, want)
	}
}
