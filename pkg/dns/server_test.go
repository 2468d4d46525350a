package dns

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const soaRecord = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5"

// cluster is the fixture most tests query.
func cluster() []runtime.Object {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	return []runtime.Object{
		namespace("default"), namespace("kube-system"), namespace("ns1"),
		service("kube-system", "kube-dns", func(s *corev1.Service) {
			clusterIP("10.43.0.10")(s)
			withPorts(s, svcPort("dns", udp, 53), svcPort("dns-tcp", tcp, 53))
		}),
		service("ns1", "web", func(s *corev1.Service) {
			clusterIP("10.43.0.20")(s)
			withPorts(s, svcPort("http", tcp, 80), svcPort("metrics", tcp, 9090))
		}),
		endpointSlice("ns1", "web", "web-abc", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{epPort("http", tcp, 8080), epPort("metrics", tcp, 9090)},
			ep("10.42.0.20", true, "web-0"), ep("10.42.0.21", true, "")),
		service("ns1", "dual", func(s *corev1.Service) {
			clusterIP("10.43.0.21", "fd00:43::21")(s)
			withPorts(s, svcPort("", tcp, 80))
		}),
		service("ns1", "six", func(s *corev1.Service) {
			clusterIP("fd00:43::22")(s)
			withPorts(s, svcPort("http", tcp, 80))
		}),
		service("ns1", "db", func(s *corev1.Service) {
			clusterIP("None")(s)
			withPorts(s, svcPort("pg", tcp, 5432))
		}),
		endpointSlice("ns1", "db", "db-abc", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{epPort("pg", tcp, 5432)},
			ep("10.42.0.10", true, "db-0"), ep("10.42.0.11", true, ""), ep("10.42.0.12", false, "db-2")),
		// A second slice repeating an address must not repeat records.
		endpointSlice("ns1", "db", "db-def", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{epPort("pg", tcp, 5432)},
			ep("10.42.0.11", true, "")),
		service("ns1", "db6", func(s *corev1.Service) { clusterIP("None")(s) }),
		endpointSlice("ns1", "db6", "db6-abc", discoveryv1.AddressTypeIPv6, nil,
			ep("fd00:42::7", true, "")),
		service("ns1", "pub", func(s *corev1.Service) {
			clusterIP("None")(s)
			s.Spec.PublishNotReadyAddresses = true
		}),
		endpointSlice("ns1", "pub", "pub-abc", discoveryv1.AddressTypeIPv4, nil,
			ep("10.42.0.13", false, "")),
		service("ns1", "empty", func(s *corev1.Service) { clusterIP("None")(s) }),
		service("ns1", "ext", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "example.com"
		}),
		service("ns1", "alias", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "web.ns1.svc.cluster.local"
		}),
		service("ns1", "loop", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "loop.ns1.svc.cluster.local"
		}),
		service("ns1", "extip", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "192.0.2.1"
		}),
	}
}

func TestRecords(t *testing.T) {
	up := fakeUpstream(t, map[string][]mdns.RR{
		"example.com. A":                  {mustRR(t, "example.com. 300 IN A 93.184.216.34")},
		"34.216.184.93.in-addr.arpa. PTR": {mustRR(t, "34.216.184.93.in-addr.arpa. 300 IN PTR example.com.")},
	})
	e := startServer(t, func(o *Options) { o.Upstreams = []string{up} }, cluster()...)

	type want struct {
		rcode  int
		answer []string
		extra  []string
		soa    bool // SOA in the authority section
	}
	nodata := want{rcode: mdns.RcodeSuccess, soa: true}
	nx := want{rcode: mdns.RcodeNameError, soa: true}
	cases := []struct {
		name  string
		qtype uint16
		want  want
	}{
		// ClusterIP services.
		{"web.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"web.ns1.svc.cluster.local. 5 IN A 10.43.0.20"}}},
		{"WEB.NS1.svc.Cluster.Local", mdns.TypeA, want{answer: []string{"WEB.NS1.svc.Cluster.Local. 5 IN A 10.43.0.20"}}},
		{"web.ns1.svc.cluster.local", mdns.TypeAAAA, nodata},
		{"web.ns1.svc.cluster.local", mdns.TypeTXT, nodata},
		{"web.ns1.svc.cluster.local", mdns.TypeCNAME, nodata},
		{"dual.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"dual.ns1.svc.cluster.local. 5 IN A 10.43.0.21"}}},
		{"dual.ns1.svc.cluster.local", mdns.TypeAAAA, want{answer: []string{"dual.ns1.svc.cluster.local. 5 IN AAAA fd00:43::21"}}},
		{"six.ns1.svc.cluster.local", mdns.TypeAAAA, want{answer: []string{"six.ns1.svc.cluster.local. 5 IN AAAA fd00:43::22"}}},
		{"six.ns1.svc.cluster.local", mdns.TypeA, nodata},
		{"kube-dns.kube-system.svc.cluster.local", mdns.TypeA, want{answer: []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.43.0.10"}}},
		// SRV for named ports of a ClusterIP service target the service.
		{"_http._tcp.web.ns1.svc.cluster.local", mdns.TypeSRV, want{
			answer: []string{"_http._tcp.web.ns1.svc.cluster.local. 5 IN SRV 0 100 80 web.ns1.svc.cluster.local."},
			extra:  []string{"web.ns1.svc.cluster.local. 5 IN A 10.43.0.20"},
		}},
		{"_dns._udp.kube-dns.kube-system.svc.cluster.local", mdns.TypeSRV, want{
			answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
			extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.43.0.10"},
		}},
		{"web.ns1.svc.cluster.local", mdns.TypeSRV, want{
			answer: []string{
				"web.ns1.svc.cluster.local. 5 IN SRV 0 50 80 web.ns1.svc.cluster.local.",
				"web.ns1.svc.cluster.local. 5 IN SRV 0 50 9090 web.ns1.svc.cluster.local.",
			},
			extra: []string{"web.ns1.svc.cluster.local. 5 IN A 10.43.0.20"},
		}},
		{"_http._tcp.web.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"_http._tcp.web.ns1.svc.cluster.local. 5 IN A 10.43.0.20"}}},
		{"_http._udp.web.ns1.svc.cluster.local", mdns.TypeSRV, nx},
		{"_nope._tcp.web.ns1.svc.cluster.local", mdns.TypeSRV, nx},
		// Endpoints of a ClusterIP service by hostname or dashed address.
		{"web-0.web.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"web-0.web.ns1.svc.cluster.local. 5 IN A 10.42.0.20"}}},
		{"10-42-0-21.web.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"10-42-0-21.web.ns1.svc.cluster.local. 5 IN A 10.42.0.21"}}},
		{"web-9.web.ns1.svc.cluster.local", mdns.TypeA, nx},
		// Headless: ready endpoints only, hostnames for pods with
		// hostname+subdomain, dashed addresses for the others.
		{"db.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{
			"db.ns1.svc.cluster.local. 5 IN A 10.42.0.10",
			"db.ns1.svc.cluster.local. 5 IN A 10.42.0.11",
		}}},
		{"db.ns1.svc.cluster.local", mdns.TypeAAAA, nodata},
		{"db-0.db.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"db-0.db.ns1.svc.cluster.local. 5 IN A 10.42.0.10"}}},
		{"10-42-0-11.db.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"10-42-0-11.db.ns1.svc.cluster.local. 5 IN A 10.42.0.11"}}},
		{"db-2.db.ns1.svc.cluster.local", mdns.TypeA, nx}, // not ready
		{"_pg._tcp.db.ns1.svc.cluster.local", mdns.TypeSRV, want{
			answer: []string{
				"_pg._tcp.db.ns1.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.ns1.svc.cluster.local.",
				"_pg._tcp.db.ns1.svc.cluster.local. 5 IN SRV 0 50 5432 10-42-0-11.db.ns1.svc.cluster.local.",
			},
			extra: []string{
				"db-0.db.ns1.svc.cluster.local. 5 IN A 10.42.0.10",
				"10-42-0-11.db.ns1.svc.cluster.local. 5 IN A 10.42.0.11",
			},
		}},
		{"db6.ns1.svc.cluster.local", mdns.TypeAAAA, want{answer: []string{"db6.ns1.svc.cluster.local. 5 IN AAAA fd00:42::7"}}},
		{"db6.ns1.svc.cluster.local", mdns.TypeA, nodata},
		{"fd00-42--7.db6.ns1.svc.cluster.local", mdns.TypeAAAA, want{answer: []string{"fd00-42--7.db6.ns1.svc.cluster.local. 5 IN AAAA fd00:42::7"}}},
		{"pub.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{"pub.ns1.svc.cluster.local. 5 IN A 10.42.0.13"}}},
		{"pub.ns1.svc.cluster.local", mdns.TypeSRV, nodata}, // no ports
		{"empty.ns1.svc.cluster.local", mdns.TypeA, nx},
		// ExternalName.
		{"ext.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{
			"ext.ns1.svc.cluster.local. 5 IN CNAME example.com.",
			"example.com. 300 IN A 93.184.216.34",
		}}},
		{"ext.ns1.svc.cluster.local", mdns.TypeAAAA, want{answer: []string{"ext.ns1.svc.cluster.local. 5 IN CNAME example.com."}}},
		{"ext.ns1.svc.cluster.local", mdns.TypeCNAME, want{answer: []string{"ext.ns1.svc.cluster.local. 5 IN CNAME example.com."}}},
		{"ext.ns1.svc.cluster.local", mdns.TypeSRV, nodata},
		{"alias.ns1.svc.cluster.local", mdns.TypeA, want{answer: []string{
			"alias.ns1.svc.cluster.local. 5 IN CNAME web.ns1.svc.cluster.local.",
			"web.ns1.svc.cluster.local. 5 IN A 10.43.0.20",
		}}},
		{"loop.ns1.svc.cluster.local", mdns.TypeA, nodata},
		{"extip.ns1.svc.cluster.local", mdns.TypeA, nx},
		// Pods, `pods insecure`.
		{"10-42-0-5.ns1.pod.cluster.local", mdns.TypeA, want{answer: []string{"10-42-0-5.ns1.pod.cluster.local. 5 IN A 10.42.0.5"}}},
		{"10-42-0-5.ns1.pod.cluster.local", mdns.TypeAAAA, nodata},
		{"fd00--5.ns1.pod.cluster.local", mdns.TypeAAAA, want{answer: []string{"fd00--5.ns1.pod.cluster.local. 5 IN AAAA fd00::5"}}},
		{"not-an-ip.ns1.pod.cluster.local", mdns.TypeA, nx},
		{"10-42-0-5.nope.pod.cluster.local", mdns.TypeA, nx},
		// Names that exist without records, and names that do not.
		{"cluster.local", mdns.TypeA, nodata},
		{"svc.cluster.local", mdns.TypeA, nodata},
		{"ns1.svc.cluster.local", mdns.TypeA, nodata},
		{"nope.svc.cluster.local", mdns.TypeA, nx},
		{"missing.ns1.svc.cluster.local", mdns.TypeA, nx},
		{"web.nope.svc.cluster.local", mdns.TypeA, nx},
		{"web.ns1.svc.cluster.local.ns1.svc.cluster.local", mdns.TypeA, nx}, // a search-path try
		{"web.ns1.svc.cluster.local.svc.cluster.local", mdns.TypeA, nx},
		{"web.ns1.svc.cluster.local.cluster.local", mdns.TypeA, nx},
		{"web.ns1.foo.cluster.local", mdns.TypeA, nx},
		{"*.ns1.svc.cluster.local", mdns.TypeA, nx},
		// Zone records.
		{"cluster.local", mdns.TypeSOA, want{answer: []string{soaRecord}}},
		{"cluster.local", mdns.TypeNS, want{
			answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 127.0.0.1"},
		}},
		{"ns.dns.cluster.local", mdns.TypeA, want{answer: []string{"ns.dns.cluster.local. 5 IN A 127.0.0.1"}}},
		{"dns-version.cluster.local", mdns.TypeTXT, want{answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}}},
		// Reverse lookups of cluster IPs and endpoints; others forwarded.
		{"10.0.43.10.in-addr.arpa", mdns.TypePTR, want{answer: []string{"10.0.43.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."}}},
		{"10.0.42.10.in-addr.arpa", mdns.TypePTR, want{answer: []string{"10.0.42.10.in-addr.arpa. 5 IN PTR db-0.db.ns1.svc.cluster.local."}}},
		{"11.0.42.10.in-addr.arpa", mdns.TypePTR, want{answer: []string{"11.0.42.10.in-addr.arpa. 5 IN PTR 10-42-0-11.db.ns1.svc.cluster.local."}}},
		{"13.0.42.10.in-addr.arpa", mdns.TypePTR, want{answer: []string{"13.0.42.10.in-addr.arpa. 5 IN PTR 10-42-0-13.pub.ns1.svc.cluster.local."}}},
		{"2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa", mdns.TypePTR, want{answer: []string{
			"2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa. 5 IN PTR six.ns1.svc.cluster.local.",
		}}},
		{"34.216.184.93.in-addr.arpa", mdns.TypePTR, want{answer: []string{"34.216.184.93.in-addr.arpa. 300 IN PTR example.com."}}},
		{"12.0.42.10.in-addr.arpa", mdns.TypePTR, want{rcode: mdns.RcodeNameError}}, // not ready: forwarded
		// Other names are forwarded.
		{"example.com", mdns.TypeA, want{answer: []string{"example.com. 300 IN A 93.184.216.34"}}},
		{"nowhere.example", mdns.TypeA, want{rcode: mdns.RcodeNameError}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.name, mdns.TypeToString[c.qtype]), func(t *testing.T) {
			m := e.query(t, c.name, c.qtype)
			got := want{rcode: m.Rcode, answer: rrs(m.Answer), extra: rrs(withoutOPT(m.Extra))}
			if len(m.Ns) > 0 {
				if diff := cmp.Diff([]string{soaRecord}, rrs(m.Ns)); diff != "" {
					t.Errorf("authority (-want +got):\n%s", diff)
				}
				got.soa = true
			}
			w := c.want
			if w.answer == nil {
				w.answer = []string{}
			}
			if w.extra == nil {
				w.extra = []string{}
			}
			if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func withoutOPT(rrs []mdns.RR) []mdns.RR {
	var out []mdns.RR
	for _, rr := range rrs {
		if _, ok := rr.(*mdns.OPT); !ok {
			out = append(out, rr)
		}
	}
	return out
}

// TestHeaderFlags pins the header bits clients look at.
func TestHeaderFlags(t *testing.T) {
	e := startServer(t, nil, cluster()...)
	for _, name := range []string{"web.ns1.svc.cluster.local", "missing.ns1.svc.cluster.local"} {
		m := e.query(t, name, mdns.TypeA)
		if !m.Authoritative || !m.RecursionAvailable || !m.Response {
			t.Errorf("%s: aa=%v ra=%v qr=%v, want all set", name, m.Authoritative, m.RecursionAvailable, m.Response)
		}
	}
}

// TestBusyboxNslookup is what `nslookup myservice.<ns>.svc.cluster.local`
// of busybox 1.28 asks: the server's own name by PTR, then A and AAAA.
func TestBusyboxNslookup(t *testing.T) {
	e := startServer(t, nil, cluster()...)
	ptr := e.query(t, "10.0.43.10.in-addr.arpa", mdns.TypePTR)
	if diff := cmp.Diff([]string{"10.0.43.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."}, rrs(ptr.Answer)); diff != "" {
		t.Errorf("server PTR (-want +got):\n%s", diff)
	}
	a := e.query(t, "web.ns1.svc.cluster.local", mdns.TypeA)
	aaaa := e.query(t, "web.ns1.svc.cluster.local", mdns.TypeAAAA)
	if a.Rcode != mdns.RcodeSuccess || len(a.Answer) != 1 {
		t.Errorf("A: %v", a)
	}
	if aaaa.Rcode != mdns.RcodeSuccess || len(aaaa.Answer) != 0 {
		t.Errorf("AAAA: %v", aaaa)
	}
}

// TestNameserverIsKubeDNS: when the server listens on the kube-dns
// Service's cluster IP, NS records name that service (as CoreDNS does).
func TestNameserverIsKubeDNS(t *testing.T) {
	objs := append(cluster(), service("kube-system", "loopdns", clusterIP("127.0.0.1")))
	e := startServer(t, nil, objs...)
	m := e.query(t, "cluster.local", mdns.TypeNS)
	if diff := cmp.Diff([]string{"cluster.local. 5 IN NS loopdns.kube-system.svc.cluster.local."}, rrs(m.Answer)); diff != "" {
		t.Errorf("NS (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"loopdns.kube-system.svc.cluster.local. 5 IN A 127.0.0.1"}, rrs(withoutOPT(m.Extra))); diff != "" {
		t.Errorf("glue (-want +got):\n%s", diff)
	}
}

func TestTruncationAndTCP(t *testing.T) {
	var eps []discoveryv1.Endpoint
	for i := range 100 {
		eps = append(eps, ep(fmt.Sprintf("10.42.1.%d", i), true, ""))
	}
	objs := append(cluster(),
		service("ns1", "many", clusterIP("None")),
		endpointSlice("ns1", "many", "many-abc", discoveryv1.AddressTypeIPv4, nil, eps...))
	e := startServer(t, nil, objs...)

	udp := e.query(t, "many.ns1.svc.cluster.local", mdns.TypeA)
	if !udp.Truncated || len(udp.Answer) >= 100 {
		t.Errorf("UDP: truncated=%v with %d answers, want truncated", udp.Truncated, len(udp.Answer))
	}
	tcp := exchange(t, "tcp", e.addr, "many.ns1.svc.cluster.local", mdns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("TCP: truncated=%v with %d answers, want 100", tcp.Truncated, len(tcp.Answer))
	}
	// A client announcing a large EDNS0 buffer gets everything over UDP.
	m := new(mdns.Msg)
	m.SetQuestion("many.ns1.svc.cluster.local.", mdns.TypeA)
	m.SetEdns0(4096, false)
	big, _, err := (&mdns.Client{Net: "udp"}).Exchange(m, e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if big.Truncated || len(big.Answer) != 100 || big.IsEdns0() == nil {
		t.Errorf("EDNS0 UDP: truncated=%v answers=%d opt=%v", big.Truncated, len(big.Answer), big.IsEdns0())
	}
}

// TestUpdates: answers follow Services and EndpointSlices as they change.
func TestUpdates(t *testing.T) {
	e := startServer(t, nil, cluster()...)
	ctx := context.Background()
	name := "late.ns1.svc.cluster.local"
	if m := e.query(t, name, mdns.TypeA); m.Rcode != mdns.RcodeNameError {
		t.Fatalf("before create: rcode %s", mdns.RcodeToString[m.Rcode])
	}

	svc := service("ns1", "late", clusterIP("10.43.0.99"))
	if _, err := e.client.CoreV1().Services("ns1").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "created service resolves", func() bool {
		m := e.query(t, name, mdns.TypeA)
		return len(m.Answer) == 1 && m.Answer[0].(*mdns.A).A.String() == "10.43.0.99"
	})

	if err := e.client.CoreV1().Services("ns1").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted service is NXDOMAIN", func() bool {
		return e.query(t, name, mdns.TypeA).Rcode == mdns.RcodeNameError
	})

	// A headless service's pod becomes ready.
	slice, err := e.client.DiscoveryV1().EndpointSlices("ns1").Get(ctx, "db-abc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := true
	slice.Endpoints[2].Conditions.Ready = &ready
	if _, err := e.client.DiscoveryV1().EndpointSlices("ns1").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready endpoint resolves", func() bool {
		return len(e.query(t, "db-2.db.ns1.svc.cluster.local", mdns.TypeA).Answer) == 1
	})

	// A new namespace exists at once.
	if _, err := e.client.CoreV1().Namespaces().Create(ctx, namespace("fresh"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace exists", func() bool {
		m := e.query(t, "fresh.svc.cluster.local", mdns.TypeA)
		return m.Rcode == mdns.RcodeSuccess
	})
}

func TestForwarding(t *testing.T) {
	var txt []mdns.RR
	for i := range 40 {
		txt = append(txt, mustRR(t, fmt.Sprintf(`big.example. 60 IN TXT "record number %02d, long enough to overflow 512 bytes"`, i)))
	}
	up := fakeUpstream(t, map[string][]mdns.RR{
		"example.com. A":   {mustRR(t, "example.com. 300 IN A 93.184.216.34")},
		"big.example. TXT": txt,
	})

	t.Run("second upstream answers when the first is dead", func(t *testing.T) {
		e := startServer(t, func(o *Options) {
			o.Upstreams = []string{deadUpstream(t), up}
			o.ForwardTimeout = time.Second
		}, cluster()...)
		m := e.query(t, "example.com", mdns.TypeA)
		if diff := cmp.Diff([]string{"example.com. 300 IN A 93.184.216.34"}, rrs(m.Answer)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// The one that answered is asked first from now on.
		start := time.Now()
		e.query(t, "example.com", mdns.TypeA)
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Errorf("second query took %v; the answering upstream should be asked first", d)
		}
	})

	t.Run("truncated UDP answer is fetched again over TCP", func(t *testing.T) {
		e := startServer(t, func(o *Options) { o.Upstreams = []string{up} }, cluster()...)
		m := exchange(t, "tcp", e.addr, "big.example", mdns.TypeTXT)
		if m.Truncated || len(m.Answer) != 40 {
			t.Errorf("truncated=%v answers=%d, want 40", m.Truncated, len(m.Answer))
		}
		// A UDP client without EDNS0 gets a truncated answer to retry over TCP.
		m = e.query(t, "big.example", mdns.TypeTXT)
		if !m.Truncated {
			t.Errorf("UDP answer of %d records not truncated", len(m.Answer))
		}
	})

	t.Run("dead upstreams give SERVFAIL within the default timeout", func(t *testing.T) {
		counter := &RcodeCounter{}
		e := startServer(t, func(o *Options) {
			o.Upstreams = []string{deadUpstream(t), deadUpstream(t)}
			o.Observe = counter.Observe
		}, cluster()...)
		start := time.Now()
		m := e.query(t, "example.com", mdns.TypeA)
		d := time.Since(start)
		if m.Rcode != mdns.RcodeServerFailure {
			t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[m.Rcode])
		}
		if d > DefaultForwardTimeout+500*time.Millisecond {
			t.Errorf("SERVFAIL after %v, want within %v", d, DefaultForwardTimeout)
		}
		// In-zone names never wait for upstreams.
		start = time.Now()
		e.query(t, "web.ns1.svc.cluster.local", mdns.TypeA)
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("in-zone answer took %v", d)
		}
		eventually(t, "counted", func() bool {
			c := counter.Counts()
			return c["SERVFAIL"] == 1 && c["NOERROR"] == 1
		})
	})

	t.Run("no upstreams: SERVFAIL at once", func(t *testing.T) {
		e := startServer(t, nil, cluster()...)
		start := time.Now()
		m := e.query(t, "example.com", mdns.TypeA)
		if m.Rcode != mdns.RcodeServerFailure || time.Since(start) > 200*time.Millisecond {
			t.Errorf("rcode %s after %v", mdns.RcodeToString[m.Rcode], time.Since(start))
		}
	})
}
