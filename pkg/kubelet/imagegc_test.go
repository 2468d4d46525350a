package kubelet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

type fakeImages struct {
	imgs                []runtime.ImageInfo
	capacity, available uint64
	removed             []string
}

func (f *fakeImages) ListImages(context.Context) ([]runtime.ImageInfo, error) {
	return append([]runtime.ImageInfo(nil), f.imgs...), nil
}

func (f *fakeImages) RemoveImage(_ context.Context, id string) error {
	for i, img := range f.imgs {
		if img.ID == id {
			if img.InUse {
				return errors.New("in use")
			}
			f.imgs = append(f.imgs[:i], f.imgs[i+1:]...)
			f.available += uint64(img.SizeBytes)
			f.removed = append(f.removed, id)
			return nil
		}
	}
	return nil
}

func (f *fakeImages) ImageFsStats(context.Context) (uint64, uint64, error) {
	return f.capacity, f.available, nil
}

func TestImageGC(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	f := &fakeImages{capacity: 1000, available: 300, imgs: []runtime.ImageInfo{ // 70 % used
		{ID: "old", SizeBytes: 60}, {ID: "used", SizeBytes: 500, InUse: true}, {ID: "newer", SizeBytes: 60},
	}}
	if err := h.k.garbageCollectImages(ctx, "oci", f); err != nil || len(f.removed) > 0 {
		t.Fatalf("below 85 %%: %v, removed %v", err, f.removed)
	}
	h.clock.Step(time.Minute)
	f.imgs = append(f.imgs, runtime.ImageInfo{ID: "fresh", SizeBytes: 60})
	f.available = 100 // 90 % used: free 100 bytes to reach 80 %
	h.clock.Step(90 * time.Second)
	// "fresh" is younger than 2 minutes; "used" is in use: "old" and
	// "newer" go, least recently used (first seen) first
	if err := h.k.garbageCollectImages(ctx, "oci", f); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.removed, ",") != "old,newer" {
		t.Errorf("removed %v, want old,newer", f.removed)
	}
	// nothing more can go: the node gets upstream's warning
	f.available = 50
	err := h.k.garbageCollectImages(ctx, "oci", f)
	if err == nil {
		t.Fatal("no error when too little can be freed")
	}
	want := "Failed to garbage collect required amount of images. Attempted to free 150 bytes, but only found 0 bytes eligible to free."
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	Eventually := func(cond func() bool) bool {
		for i := 0; i < 200; i++ {
			if cond() {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}
	if !Eventually(func() bool {
		list, _ := h.client.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		for _, e := range list.Items {
			if e.Reason == "FreeDiskSpaceFailed" && e.Message == want && e.Type == "Warning" {
				return true
			}
		}
		return false
	}) {
		t.Error("no FreeDiskSpaceFailed event on the node")
	}
}
