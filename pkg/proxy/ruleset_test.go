package proxy

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

var update = flag.Bool("update", false, "rewrite the golden rule sets in testdata/")

// TestRuleset pins the table written for a few clusters, in nft syntax
// (testdata/*.nft; go test -run TestRuleset -update rewrites them).
func TestRuleset(t *testing.T) {
	http := []discovery.EndpointPort{epPort("", 8080)}
	opts := Options{
		TableName:       "k1s-proxy",
		NodeName:        "node1",
		NodeIPs:         []net.IP{net.ParseIP("192.0.2.2")},
		ClusterCIDR:     "10.42.0.0/16",
		BridgeNetfilter: ptr.To(true),
	}
	noBridgeNF := opts
	noBridgeNF.BridgeNetfilter = ptr.To(false)
	noBridgeNF.LocalPodCIDR = "10.42.0.0/24"

	cases := []struct {
		golden   string
		opts     Options
		services []*v1.Service
		slices   []*discovery.EndpointSlice
	}{{
		golden: "empty",
		opts:   opts,
	}, {
		golden: "clusterip-nodeport",
		opts:   opts,
		services: []*v1.Service{
			nodePortService("web", "10.43.0.10", 80, 8080, 30080),
			service("one", "10.43.0.11", svcPort("", 80, 8080)),
			service("none", "10.43.0.12", svcPort("", 80, 8080)),
			nodePortService("none-np", "10.43.0.13", 80, 8080, 30081),
		},
		slices: []*discovery.EndpointSlice{
			endpointSlice("web", "web-1", http, readyEP("10.42.0.11", "node1"), readyEP("10.42.1.12", "node2"), unreadyEP("10.42.0.13", "node1")),
			endpointSlice("one", "one-1", http, readyEP("10.42.0.11", "node1")),
		},
	}, {
		golden: "affinity-loadbalancer",
		opts:   opts,
		services: []*v1.Service{
			withAffinity(service("sticky", "10.43.0.10", svcPort("", 80, 8080)), 600),
			loadBalancer(nodePortService("lb", "10.43.0.11", 443, 8080, 30443), "192.0.2.2"),
		},
		slices: []*discovery.EndpointSlice{
			endpointSlice("sticky", "sticky-1", http, readyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1")),
			endpointSlice("lb", "lb-1", http, readyEP("10.42.0.11", "node1")),
		},
	}, {
		golden: "traffic-policy-local",
		opts:   opts,
		services: []*v1.Service{
			func() *v1.Service {
				s := nodePortService("etp", "10.43.0.10", 80, 8080, 30080)
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				return s
			}(),
			func() *v1.Service {
				s := service("itp", "10.43.0.11", svcPort("", 80, 8080))
				s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
				return s
			}(),
		},
		slices: []*discovery.EndpointSlice{
			endpointSlice("etp", "etp-1", http, readyEP("10.42.0.11", "node1"), readyEP("10.42.1.12", "node2")),
			endpointSlice("itp", "itp-1", http, readyEP("10.42.1.12", "node2")),
		},
	}, {
		golden: "no-bridge-netfilter",
		opts:   noBridgeNF,
		services: []*v1.Service{
			service("web", "10.43.0.10", svcPort("", 80, 8080)),
		},
		slices: []*discovery.EndpointSlice{
			endpointSlice("web", "web-1", http, readyEP("10.42.0.11", "node1"), readyEP("10.42.1.12", "node2")),
		},
	}}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			got, err := Programmed(c.opts, c.services, c.slices)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Programmed(c.opts, c.services, c.slices)
			if got != again {
				t.Fatalf("two computations differ:\n%s", cmp.Diff(got, again))
			}
			path := filepath.Join("testdata", c.golden+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("rule set (-%s +got):\n%s", path, diff)
			}
		})
	}
}

func TestConcatenatedKeys(t *testing.T) {
	got := daddrProtoPortKey(mustAddr("10.43.0.10"), 6, 443)
	want := []byte{10, 43, 0, 10, 6, 0, 0, 0, 0x01, 0xbb, 0, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ip . proto . port key (-want +got):\n%s", diff)
	}
	if got := daddrProtoPortKey(mustAddr("10.43.0.10"), 6, 443); len(got) != int(keyDaddrProtoPort.setType().Bytes) {
		t.Errorf("key length %d, set type %d bytes", len(got), keyDaddrProtoPort.setType().Bytes)
	}
	if got := protoPortKey(17, 53); len(got) != int(keyProtoPort.setType().Bytes) {
		t.Errorf("key length %d, set type %d bytes", len(got), keyProtoPort.setType().Bytes)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
