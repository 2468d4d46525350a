package oci

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/conformance"
)

func imageWithLayer(l v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	return mutate.ConfigFile(img, cf)
}

// TestConformance runs the runtime suite with the busybox image from the
// in-process registry (PullImage pulls it; the other scenarios run it).
func TestConformance(t *testing.T) {
	setup(t)
	conformance.Run(t, conformance.Suite{
		NewRuntime: func(t *testing.T) runtime.Runtime { return newTestRuntime(t) },
		Image:      fixture.image,
		Timeout:    15 * time.Second,
	})
}
