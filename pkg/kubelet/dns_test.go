package kubelet

import (
	"reflect"
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// spec.dnsConfig merges into ClusterFirst's as upstream's appendDNSConfig.
func TestApplyPodDNSConfig(t *testing.T) {
	cfg := &runtime.DNSConfig{
		Servers:  []string{"10.43.0.10"},
		Searches: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Options:  []string{"ndots:5"},
	}
	applyPodDNSConfig(cfg, &v1.PodDNSConfig{
		Nameservers: []string{"10.43.0.10", "1.1.1.1"},
		Searches:    []string{"svc.cluster.local", "example.com"},
		Options:     []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("3")}, {Name: "edns0"}},
	})
	want := &runtime.DNSConfig{
		Servers:  []string{"10.43.0.10", "1.1.1.1"},
		Searches: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com"},
		Options:  []string{"ndots:3", "edns0"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}
