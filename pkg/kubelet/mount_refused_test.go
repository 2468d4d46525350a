package kubelet

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"
)

// The Node authorizer refuses a node's reads for a pod until it has seen
// the pod bound there; the agent may see the pod first. A refused mount is
// retried quickly and quietly for a short while, then reported as usual.
func TestMountRefusedRightAfterBinding(t *testing.T) {
	tests := []struct {
		name      string
		refusals  int32
		wantEvent bool
	}{
		{"refused twice, then allowed", 2, false},
		{"refused for good", 1 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.client.CoreV1().ConfigMaps("ns").Create(t.Context(), &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
			var refused atomic.Int32
			h.client.PrependReactor("get", "configmaps", func(core.Action) (bool, kruntime.Object, error) {
				if refused.Add(1) <= tt.refusals {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "cfg",
						errors.New("no relationship found between node 'vm' and this object"))
				}
				return false, nil, nil
			})
			p := podWith("mounts", v1.RestartPolicyAlways, nil, "main")
			p.Spec.Volumes = []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}}}
			h.create(p)
			if !tt.wantEvent {
				for i := 0; i < 2; i++ {
					h.eventually("a refused read", func() bool { return refused.Load() > int32(i) })
					h.step(authorizerRetry)
				}
				h.waitStatus("mounts", "main=running/")
				for _, e := range h.events("mounts") {
					if strings.Contains(e, "FailedMount") {
						t.Errorf("event %s", e)
					}
				}
				return
			}
			for i := 0; i < int(authorizerGrace/authorizerRetry)+1; i++ {
				h.eventually("a refused read", func() bool { return refused.Load() > int32(i) })
				h.step(authorizerRetry)
			}
			h.waitEvent("mounts", `Warning FailedMount : MountVolume.SetUp failed for volume "cfg" : configmaps "cfg" is forbidden`)
		})
	}
}
