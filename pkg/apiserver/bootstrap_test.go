package apiserver

import (
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	genericapiserver "k8s.io/apiserver/pkg/server"
)

func TestRunAll(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   int // index of the failing step, -1: none
		wantOK bool
	}{
		{"all succeed", -1, true},
		{"one fails, the others still run", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran atomic.Int32
			var steps []func() bool
			for i := range 20 {
				steps = append(steps, func() bool { ran.Add(1); return i != tc.fail })
			}
			if ok := runAll(steps, 4); ok != tc.wantOK {
				t.Errorf("runAll = %v, want %v", ok, tc.wantOK)
			}
			if ran.Load() != 20 {
				t.Errorf("%d of 20 steps ran", ran.Load())
			}
		})
	}
}

// The hooks k1s registers replace upstream's two polling ones.
func TestReplaceBootstrapHooks(t *testing.T) {
	g := genericConfigForTest()
	if err := replaceBootstrapHooks(g); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rbac/bootstrap-roles", "scheduling/bootstrap-system-priority-classes"} {
		if !g.DisabledPostStartHooks.Has(name) {
			t.Errorf("upstream's %s not disabled", name)
		}
	}
	for _, name := range []string{BootstrapRolesHook, BootstrapPriorityClassesHook} {
		if _, ok := g.PostStartHooks[name]; !ok {
			t.Errorf("%s not registered", name)
		}
	}
}

func genericConfigForTest() *genericapiserver.Config {
	return genericapiserver.NewConfig(serializer.NewCodecFactory(runtime.NewScheme()))
}
