package process

import (
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunSuite(t, func(t *testing.T) runtime.Runtime {
		return newTestRuntime(t, t.TempDir())
	})
}
