package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestBuildServicePorts(t *testing.T) {
	a := netip.MustParseAddr
	n := node{Name: "node1", IPs: []netip.Addr{a("192.0.2.2")}}
	web := func(mods ...func(*v1.Service)) *v1.Service {
		s := service("web", "10.43.0.10", svcPort("http", 80, 8080))
		for _, m := range mods {
			m(s)
		}
		return s
	}
	http := []discovery.EndpointPort{epPort("http", 8080)}
	base := servicePort{Namespace: "default", Name: "web", PortName: "http", Protocol: v1.ProtocolTCP,
		ClusterIP: a("10.43.0.10"), Port: 80}
	with := func(f func(*servicePort)) []servicePort {
		sp := base
		f(&sp)
		return []servicePort{sp}
	}
	ep := func(ip string, port uint16, local bool) endpoint {
		return endpoint{Addr: a(ip), Port: port, Local: local}
	}

	cases := []struct {
		name     string
		services []*v1.Service
		slices   []*discovery.EndpointSlice
		want     []servicePort
	}{{
		name:     "ready endpoints only, sorted; unset ready counts as ready",
		services: []*v1.Service{web()},
		slices: []*discovery.EndpointSlice{endpointSlice("web", "web-1", http,
			readyEP("10.42.0.12", "node2"),
			unreadyEP("10.42.0.13", "node1"),
			terminatingEP("10.42.0.14", "node1"),
			discovery.Endpoint{Addresses: []string{"10.42.0.11"}, NodeName: ptr.To("node1")},
		)},
		want: with(func(sp *servicePort) {
			sp.Endpoints = []endpoint{ep("10.42.0.11", 8080, true), ep("10.42.0.12", 8080, false)}
		}),
	}, {
		name:     "named targetPort resolved per slice; other ports, protocols and families ignored; duplicates once",
		services: []*v1.Service{web()},
		slices: []*discovery.EndpointSlice{
			endpointSlice("web", "web-1", http, readyEP("10.42.0.11", "node1")),
			endpointSlice("web", "web-2", []discovery.EndpointPort{epPort("http", 9090)}, readyEP("10.42.0.12", "node1")),
			endpointSlice("web", "web-3", []discovery.EndpointPort{epPort("metrics", 9100)}, readyEP("10.42.0.13", "node1")),
			endpointSlice("web", "web-4", []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolUDP)}}, readyEP("10.42.0.14", "node1")),
			endpointSlice("web", "web-5", http, readyEP("10.42.0.11", "node1")),
			func() *discovery.EndpointSlice {
				es := endpointSlice("web", "web-6", http, readyEP("fd00::1", "node1"))
				es.AddressType = discovery.AddressTypeIPv6
				return es
			}(),
			endpointSlice("other", "other-1", http, readyEP("10.42.0.15", "node1")),
		},
		want: with(func(sp *servicePort) {
			sp.Endpoints = []endpoint{ep("10.42.0.11", 8080, true), ep("10.42.0.12", 9090, true)}
		}),
	}, {
		name:     "host-runtime endpoint at the node's address is local",
		services: []*v1.Service{web()},
		slices:   []*discovery.EndpointSlice{endpointSlice("web", "web-1", http, readyEP("192.0.2.2", ""))},
		want:     with(func(sp *servicePort) { sp.Endpoints = []endpoint{ep("192.0.2.2", 8080, true)} }),
	}, {
		name: "headless and ExternalName Services have no rules",
		services: []*v1.Service{
			service("headless", v1.ClusterIPNone, svcPort("http", 80, 8080)),
			func() *v1.Service {
				s := service("ext", "", svcPort("http", 80, 8080))
				s.Spec.Type, s.Spec.ExternalName = v1.ServiceTypeExternalName, "example.com"
				return s
			}(),
		},
		slices: []*discovery.EndpointSlice{endpointSlice("headless", "headless-1", http, readyEP("10.42.0.11", "node1"))},
	}, {
		name:     "no endpoints",
		services: []*v1.Service{web()},
		want:     with(func(*servicePort) {}),
	}, {
		name: "NodePort, externalIPs, LoadBalancer VIP ingress (not Proxy)",
		services: []*v1.Service{web(func(s *v1.Service) {
			loadBalancer(s, "192.0.2.2")
			s.Spec.Ports[0].NodePort = 30080
			s.Spec.ExternalIPs = []string{"198.51.100.7"}
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress,
				v1.LoadBalancerIngress{IP: "198.51.100.8", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)},
				v1.LoadBalancerIngress{IP: "198.51.100.9"})
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		})},
		want: with(func(sp *servicePort) {
			sp.NodePort = 30080
			sp.ExternalIPs = []netip.Addr{a("198.51.100.7"), a("192.0.2.2"), a("198.51.100.9")}
			sp.ExternalLocal = true
		}),
	}, {
		name: "ingress of a Service that is no longer a LoadBalancer, node port of a ClusterIP Service: ignored",
		services: []*v1.Service{web(func(s *v1.Service) {
			loadBalancer(s, "192.0.2.2")
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.Ports[0].NodePort = 30080
		})},
		want: with(func(*servicePort) {}),
	}, {
		name: "ClientIP affinity: default 3 hours, or the configured timeout",
		services: []*v1.Service{
			web(func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP }),
			withAffinity(service("sticky", "10.43.0.11", svcPort("", 80, 8080)), 60),
		},
		want: []servicePort{
			{Namespace: "default", Name: "sticky", Protocol: v1.ProtocolTCP, ClusterIP: a("10.43.0.11"), Port: 80, Affinity: time.Minute},
			{Namespace: "default", Name: "web", PortName: "http", Protocol: v1.ProtocolTCP, ClusterIP: a("10.43.0.10"), Port: 80, Affinity: 3 * time.Hour},
		},
	}, {
		name: "dual-stack Service: its IPv4 cluster IP; internalTrafficPolicy Local",
		services: []*v1.Service{web(func(s *v1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:43::10", []string{"fd00:43::10", "10.43.0.10"}
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		})},
		want: with(func(sp *servicePort) { sp.InternalLocal = true }),
	}, {
		name: "protocols: unset means TCP, each port its own",
		services: []*v1.Service{service("dns", "10.43.0.53",
			v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
			v1.ServicePort{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53)},
		)},
		want: []servicePort{
			{Namespace: "default", Name: "dns", PortName: "dns", Protocol: v1.ProtocolUDP, ClusterIP: a("10.43.0.53"), Port: 53},
			{Namespace: "default", Name: "dns", PortName: "dns-tcp", Protocol: v1.ProtocolTCP, ClusterIP: a("10.43.0.53"), Port: 53},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := buildServicePorts(c.services, c.slices, n)
			if diff := cmp.Diff(c.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("service ports (-want +got):\n%s", diff)
			}
		})
	}
}
