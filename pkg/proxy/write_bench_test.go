package proxy

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// BenchmarkTableWrite measures one write of the whole table (the work after
// every change) for clusters of 100 and 1,000 Services of 3 endpoints.
// Needs root; run with go test ./pkg/proxy -run XXX -bench TableWrite.
func BenchmarkTableWrite(b *testing.B) {
	requireRoot(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("services-%d", n), func(b *testing.B) {
			ns := newNetns(b)
			var svcs []*v1.Service
			var slices []*discovery.EndpointSlice
			http := []discovery.EndpointPort{epPort("", 8080)}
			for i := range n {
				name := fmt.Sprintf("svc-%d", i)
				s := service(name, fmt.Sprintf("10.43.%d.%d", i/250, i%250+1), svcPort("", 80, 8080))
				if i%10 == 0 {
					s = withAffinity(s, 60)
				}
				svcs = append(svcs, s)
				var eps []discovery.Endpoint
				for j := range 3 {
					eps = append(eps, readyEP(fmt.Sprintf("10.42.%d.%d", i/80, (i%80)*3+j+1), "node1"))
				}
				slices = append(slices, endpointSlice(name, name+"-1", http, eps...))
			}
			o := Options{ClusterCIDR: "10.42.0.0/16", BridgeNetfilter: ptr.To(true)}
			cfg, nd, err := o.complete()
			if err != nil {
				b.Fatal(err)
			}
			rs := buildRuleset(cfg, buildServicePorts(svcs, slices, nd))
			k := &kernelTable{name: "k1s-proxy-write-bench", netns: int(ns), clock: clock.RealClock{}}
			if err := k.write(rs); err != nil { // the first write builds the table
				b.Fatal(err)
			}
			for b.Loop() {
				if err := k.write(rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
