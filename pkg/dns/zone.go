package dns

import (
	"context"
	"net"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// maxCNAMEChain bounds how many ExternalName services are followed through
// each other (CoreDNS stops after 8 records too).
const maxCNAMEChain = 8

// answer is the outcome of a lookup in the cluster zone. rcode is
// RcodeSuccess or RcodeNameError; success without answer records is NODATA.
type answer struct {
	rcode  int
	answer []mdns.RR
	extra  []mdns.RR
}

var nxdomain = answer{rcode: mdns.RcodeNameError}

// resolver looks a name up outside the cluster zone (ExternalName targets).
type resolver interface {
	lookup(ctx context.Context, name string, qtype uint16) (*mdns.Msg, error)
}

// zone answers names under the cluster domain, and the reverse names of
// cluster IPs and endpoint addresses, from a catalog — the records CoreDNS's
// kubernetes plugin serves with `pods insecure`.
type zone struct {
	origin   string // lower-case, fully qualified: "cluster.local."
	ttl      uint32
	cat      catalog
	upstream resolver
	// localIPs are the addresses the server listens on; the zone's NS
	// records name the services (or endpoints) that own them.
	localIPs []net.IP
}

// contains reports whether qname (lower-case, fully qualified) is in the zone.
func (z *zone) contains(qname string) bool { return mdns.IsSubDomain(z.origin, qname) }

// lookup answers qname (as asked; matching ignores case) of type qtype.
// depth counts the ExternalName services followed so far.
func (z *zone) lookup(ctx context.Context, qname string, qtype uint16, depth int) answer {
	lname := strings.ToLower(mdns.Fqdn(qname))
	base, ok := trimZone(lname, z.origin)
	if !ok {
		return nxdomain
	}
	switch base {
	case "":
		return z.apex(qtype)
	case "ns.dns":
		return answer{answer: withOwner(z.nameserverAddrs(), qname, qtype, z.ttl)}
	case "dns-version":
		if qtype != mdns.TypeTXT {
			return answer{}
		}
		return answer{answer: []mdns.RR{&mdns.TXT{Hdr: z.hdr(qname, mdns.TypeTXT, 28800), Txt: []string{schemaVersion}}}}
	}
	r, ok := parseRequest(base)
	if !ok {
		return nxdomain
	}
	if r.namespace == "" {
		return answer{} // "svc.<zone>", "pod.<zone>"
	}
	if !z.cat.namespaceExists(r.namespace) {
		return nxdomain
	}
	if r.name == "" {
		return answer{} // "<ns>.svc.<zone>"
	}
	if r.kind == kindPod {
		return z.pod(qname, qtype, r)
	}
	return z.service(ctx, qname, lname, qtype, r, depth)
}

func (z *zone) hdr(name string, rrtype uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: ttl}
}

// soa is the zone's SOA record, shaped like CoreDNS's.
func (z *zone) soa() mdns.RR {
	return &mdns.SOA{
		Hdr:     z.hdr(z.origin, mdns.TypeSOA, min(z.ttl, 300)),
		Ns:      "ns.dns." + z.origin,
		Mbox:    "hostmaster." + z.origin,
		Serial:  z.cat.serial(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

func (z *zone) apex(qtype uint16) answer {
	switch qtype {
	case mdns.TypeSOA:
		return answer{answer: []mdns.RR{z.soa()}}
	case mdns.TypeNS:
		var a answer
		seen := map[string]bool{}
		for _, rr := range z.nameserverAddrs() {
			name := rr.Header().Name
			a.extra = append(a.extra, rr)
			if !seen[name] {
				seen[name] = true
				a.answer = append(a.answer, &mdns.NS{Hdr: z.hdr(z.origin, mdns.TypeNS, z.ttl), Ns: name})
			}
		}
		return a
	}
	return answer{}
}

// nameserverAddrs returns address records for the zone's name servers: the
// service whose cluster IP (or endpoint) is an address we listen on — the
// kube-dns Service — else ns.dns.<zone> with the listen addresses.
func (z *zone) nameserverAddrs() []mdns.RR {
	var rrs []mdns.RR
	add := func(name string, ip net.IP) {
		rrs = append(rrs, addressRecord(z.hdr(name, 0, z.ttl), ip))
	}
	for _, ip := range z.localIPs {
		if svcs := z.cat.servicesByClusterIP(ip); len(svcs) > 0 {
			for _, svc := range svcs {
				add(z.serviceName(svc.Namespace, svc.Name), ip)
			}
			continue
		}
		for _, ep := range z.cat.endpointsByIP(ip) {
			if !ep.ready {
				continue
			}
			svc := z.cat.service(ep.namespace, ep.service)
			if svc == nil {
				continue
			}
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				add(ep.label()+"."+z.serviceName(svc.Namespace, svc.Name), ep.ip)
				continue
			}
			for _, cip := range clusterIPs(svc) {
				add(z.serviceName(svc.Namespace, svc.Name), cip)
			}
		}
	}
	if len(rrs) == 0 {
		for _, ip := range z.localIPs {
			add("ns.dns."+z.origin, ip)
		}
	}
	return dedup(rrs)
}

// serviceName is <name>.<namespace>.svc.<zone>.
func (z *zone) serviceName(namespace, name string) string {
	return name + "." + namespace + "." + kindService + "." + z.origin
}

// pod answers <a-b-c-d>.<ns>.pod.<zone> from the name alone (CoreDNS's
// `pods insecure`, the default of kubeadm's and k3s's Corefile).
func (z *zone) pod(qname string, qtype uint16, r request) answer {
	if r.endpoint != "" || r.port != "" {
		return nxdomain
	}
	ip := podIP(r.name)
	if ip == nil {
		return nxdomain
	}
	if qtype == mdns.TypeA && ip.To4() != nil || qtype == mdns.TypeAAAA && ip.To4() == nil {
		return answer{answer: []mdns.RR{addressRecord(z.hdr(qname, 0, z.ttl), ip)}}
	}
	return answer{}
}

// target is one thing a service name stands for: an address behind a host
// name, on a port (-1 when the port is not known).
type target struct {
	host string
	ip   net.IP
	port int32
}

func (z *zone) service(ctx context.Context, qname, lname string, qtype uint16, r request, depth int) answer {
	svc := z.cat.service(r.namespace, r.name)
	if svc == nil {
		return nxdomain
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return z.externalName(ctx, qname, lname, qtype, r, svc, depth)
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || r.endpoint != "" {
		targets := z.endpointTargets(svc, r)
		if len(targets) == 0 {
			return nxdomain
		}
		return z.fromTargets(qname, qtype, targets)
	}
	targets, ok := z.clusterIPTargets(svc, r)
	if !ok {
		return nxdomain
	}
	return z.fromTargets(qname, qtype, targets)
}

// clusterIPTargets lists the service's cluster IPs on each port matching r;
// ok is false when r names a port the service does not have.
func (z *zone) clusterIPTargets(svc *corev1.Service, r request) (ts []target, ok bool) {
	host := z.serviceName(svc.Namespace, svc.Name)
	ips := clusterIPs(svc)
	if r.port == "" && r.protocol == "" && len(svc.Spec.Ports) == 0 {
		for _, ip := range ips {
			ts = append(ts, target{host: host, ip: ip, port: -1})
		}
		return ts, true
	}
	for _, p := range svc.Spec.Ports {
		protocol := p.Protocol
		if protocol == "" {
			protocol = corev1.ProtocolTCP
		}
		if !portMatches(r, p.Name, string(protocol)) {
			continue
		}
		ok = true
		for _, ip := range ips {
			ts = append(ts, target{host: host, ip: ip, port: p.Port})
		}
	}
	return ts, ok
}

// endpointTargets lists the service's ready endpoints (all of them when
// the service publishes not-ready addresses) matching r's endpoint label
// and port.
func (z *zone) endpointTargets(svc *corev1.Service, r request) []target {
	base := z.serviceName(svc.Namespace, svc.Name)
	var ts []target
	for _, ep := range z.cat.endpoints(svc.Namespace, svc.Name) {
		if !ep.ready && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		label := ep.label()
		if r.endpoint != "" && !strings.EqualFold(r.endpoint, label) {
			continue
		}
		host := label + "." + base
		if len(ep.ports) == 0 && r.port == "" && r.protocol == "" {
			ts = append(ts, target{host: host, ip: ep.ip, port: -1})
			continue
		}
		for _, p := range ep.ports {
			if !portMatches(r, deref(p.Name), string(derefProtocol(p))) {
				continue
			}
			port := int32(-1)
			if p.Port != nil {
				port = *p.Port
			}
			ts = append(ts, target{host: host, ip: ep.ip, port: port})
		}
	}
	return ts
}

// fromTargets answers qtype from the targets of an existing name: address
// records for A and AAAA, SRV records (with the targets' addresses as
// additional records) for SRV, NODATA for anything else.
func (z *zone) fromTargets(qname string, qtype uint16, ts []target) answer {
	var a answer
	switch qtype {
	case mdns.TypeA, mdns.TypeAAAA:
		seen := map[string]bool{}
		for _, t := range ts {
			if !familyMatches(qtype, t.ip) || seen[t.ip.String()] {
				continue
			}
			seen[t.ip.String()] = true
			a.answer = append(a.answer, addressRecord(z.hdr(qname, 0, z.ttl), t.ip))
		}
	case mdns.TypeSRV:
		type hostPort struct {
			host string
			port int32
		}
		var srvs []hostPort
		seenSRV := map[hostPort]bool{}
		seenAddr := map[string]bool{}
		for _, t := range ts {
			if t.port < 0 {
				continue
			}
			hp := hostPort{t.host, t.port}
			if !seenSRV[hp] {
				seenSRV[hp] = true
				srvs = append(srvs, hp)
			}
			if key := t.host + "/" + t.ip.String(); !seenAddr[key] {
				seenAddr[key] = true
				a.extra = append(a.extra, addressRecord(z.hdr(t.host, 0, z.ttl), t.ip))
			}
		}
		// Equal shares of 100, as CoreDNS weighs records of one priority.
		weight := uint16(1)
		if len(srvs) > 0 {
			weight = uint16(max(100/len(srvs), 1))
		}
		for _, s := range srvs {
			a.answer = append(a.answer, &mdns.SRV{
				Hdr:      z.hdr(qname, mdns.TypeSRV, z.ttl),
				Priority: 0,
				Weight:   weight,
				Port:     uint16(s.port),
				Target:   s.host,
			})
		}
	}
	return a
}

// externalName answers a name of an ExternalName service: a CNAME to its
// external name, followed for the asked type (inside the zone directly,
// outside through the upstream resolvers).
func (z *zone) externalName(ctx context.Context, qname, lname string, qtype uint16, r request, svc *corev1.Service, depth int) answer {
	ext := strings.ToLower(strings.TrimSpace(svc.Spec.ExternalName))
	if r.endpoint != "" || ext == "" || net.ParseIP(ext) != nil {
		return nxdomain
	}
	targetName := mdns.Fqdn(ext)
	cname := &mdns.CNAME{Hdr: z.hdr(qname, mdns.TypeCNAME, z.ttl), Target: targetName}
	switch {
	case qtype == mdns.TypeSRV:
		return answer{} // CoreDNS serves no SRV records for external services
	case qtype == mdns.TypeCNAME:
		return answer{answer: []mdns.RR{cname}}
	case targetName == lname || depth+1 >= maxCNAMEChain:
		return answer{}
	case z.contains(targetName):
		next := z.lookup(ctx, targetName, qtype, depth+1)
		if len(next.answer) == 0 {
			return answer{}
		}
		return answer{answer: append([]mdns.RR{cname}, next.answer...), extra: next.extra}
	}
	a := answer{answer: []mdns.RR{cname}}
	if z.upstream != nil {
		if m, err := z.upstream.lookup(ctx, targetName, qtype); err == nil && m.Rcode == mdns.RcodeSuccess {
			a.answer = append(a.answer, m.Answer...)
		}
	}
	return a
}

// reverse answers a PTR query for ip when ip is a cluster IP (the service's
// name) or a ready endpoint address (the endpoint's name under each of its
// services); ok is false when the address is not the cluster's.
func (z *zone) reverse(qname string, ip net.IP) (a answer, ok bool) {
	ptr := func(name string) mdns.RR {
		return &mdns.PTR{Hdr: z.hdr(qname, mdns.TypePTR, z.ttl), Ptr: name}
	}
	if svcs := z.cat.servicesByClusterIP(ip); len(svcs) > 0 {
		return answer{answer: []mdns.RR{ptr(z.serviceName(svcs[0].Namespace, svcs[0].Name))}}, true
	}
	seen := map[string]bool{}
	for _, ep := range z.cat.endpointsByIP(ip) {
		if !ep.ready {
			svc := z.cat.service(ep.namespace, ep.service)
			if svc == nil || !svc.Spec.PublishNotReadyAddresses {
				continue
			}
		}
		name := ep.label() + "." + z.serviceName(ep.namespace, ep.service)
		if !seen[name] {
			seen[name] = true
			a.answer = append(a.answer, ptr(name))
		}
	}
	return a, len(a.answer) > 0
}

func portMatches(r request, name, protocol string) bool {
	return (r.port == "" || strings.EqualFold(r.port, name)) &&
		(r.protocol == "" || strings.EqualFold(r.protocol, protocol))
}

func familyMatches(qtype uint16, ip net.IP) bool {
	return (ip.To4() != nil) == (qtype == mdns.TypeA)
}

// addressRecord is an A or AAAA record for ip; hdr's type is set here.
func addressRecord(hdr mdns.RR_Header, ip net.IP) mdns.RR {
	if v4 := ip.To4(); v4 != nil {
		hdr.Rrtype = mdns.TypeA
		return &mdns.A{Hdr: hdr, A: v4}
	}
	hdr.Rrtype = mdns.TypeAAAA
	return &mdns.AAAA{Hdr: hdr, AAAA: ip}
}

// withOwner renames the address records of type qtype to owner.
func withOwner(rrs []mdns.RR, owner string, qtype uint16, ttl uint32) []mdns.RR {
	var out []mdns.RR
	seen := map[string]bool{}
	for _, rr := range rrs {
		if rr.Header().Rrtype != qtype {
			continue
		}
		var ip net.IP
		switch v := rr.(type) {
		case *mdns.A:
			ip = v.A
		case *mdns.AAAA:
			ip = v.AAAA
		}
		if seen[ip.String()] {
			continue
		}
		seen[ip.String()] = true
		out = append(out, addressRecord(mdns.RR_Header{Name: owner, Class: mdns.ClassINET, Ttl: ttl}, ip))
	}
	return out
}

func dedup(rrs []mdns.RR) []mdns.RR {
	seen := map[string]bool{}
	out := rrs[:0]
	for _, rr := range rrs {
		if k := rr.String(); !seen[k] {
			seen[k] = true
			out = append(out, rr)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefProtocol(p discoveryv1.EndpointPort) corev1.Protocol {
	if p.Protocol == nil {
		return corev1.ProtocolTCP
	}
	return *p.Protocol
}
