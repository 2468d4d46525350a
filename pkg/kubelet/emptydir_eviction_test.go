package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An emptyDir past its sizeLimit gets the pod evicted with upstream's
// reason, message and event; one within its limit does not.
func TestEmptyDirSizeLimitEviction(t *testing.T) {
	h := newHarness(t)
	limit := resource.MustParse("1Ki")
	p := podWith("filler", v1.RestartPolicyAlways, nil, "app")
	p.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{SizeLimit: &limit}}}}
	p = h.create(p)
	h.waitStatus("filler", "app=running/")
	dir := h.k.volumes.Dir(p.UID, &p.Spec.Volumes[0])
	if err := os.WriteFile(filepath.Join(dir, "small"), make([]byte, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	h.k.checkEmptyDirLimits()
	if _, evicted := h.k.evictions.Load(p.UID); evicted {
		t.Fatal("evicted within its limit")
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	h.k.checkEmptyDirLimits()
	want := `Usage of EmptyDir volume "scratch" exceeds the limit "1Ki". `
	h.eventually("pod Failed/Evicted", func() bool {
		got := h.get("filler")
		return got != nil && got.Status.Phase == v1.PodFailed && got.Status.Reason == "Evicted" && got.Status.Message == want
	})
	h.eventually("Evicted event", func() bool {
		list, _ := h.client.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
		for _, e := range list.Items {
			if e.Reason == "Evicted" && e.Type == v1.EventTypeWarning && strings.HasPrefix(e.Message, "Usage of EmptyDir volume") {
				return true
			}
		}
		return false
	})
}
