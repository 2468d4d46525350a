package dns

import (
	"net"
	"strings"

	mdns "github.com/miekg/dns"
)

// Label values of the Kubernetes DNS schema
// (https://github.com/kubernetes/dns/blob/master/docs/specification.md).
const (
	kindService = "svc"
	kindPod     = "pod"
	// schemaVersion is what `dns-version.<zone>` TXT answers.
	schemaVersion = "1.1.0"
)

// request is an in-zone name taken apart the way CoreDNS's kubernetes
// plugin does (plugin/kubernetes/parse.go):
//
//	_port._protocol.service.namespace.svc.zone
//	endpoint.service.namespace.svc.zone
//	service.namespace.svc.zone
//	a-b-c-d.namespace.pod.zone
//
// Empty fields were absent from the name.
type request struct {
	kind      string // kindService, kindPod or "" (the name is just "svc" or "pod")
	namespace string
	name      string // service name, or the dashed address of a pod
	endpoint  string // hostname label of an endpoint
	port      string // named port, underscore stripped
	protocol  string // tcp / udp / sctp, underscore stripped
}

// parseRequest takes apart base, the lower-case query name with the zone
// removed and no trailing dot. ok is false for names no Kubernetes object can
// have (wrong kind label, too many labels): those are NXDOMAIN.
func parseRequest(base string) (r request, ok bool) {
	if base == "" {
		return r, true
	}
	labels := strings.Split(base, ".")
	last := len(labels) - 1
	r.kind = labels[last]
	if r.kind != kindService && r.kind != kindPod {
		return request{}, false
	}
	rest := labels[:last]
	switch len(rest) {
	case 0:
	case 1:
		r.namespace = rest[0]
	case 2:
		r.name, r.namespace = rest[0], rest[1]
	case 3:
		r.endpoint, r.name, r.namespace = rest[0], rest[1], rest[2]
	case 4:
		r.port, r.protocol = strings.TrimPrefix(rest[0], "_"), strings.TrimPrefix(rest[1], "_")
		r.name, r.namespace = rest[2], rest[3]
	default:
		return request{}, false
	}
	return r, true
}

// trimZone returns qname without zone (both lower-case and fully
// qualified) and without the dot between them; ok is false when qname is
// not in zone.
func trimZone(qname, zone string) (base string, ok bool) {
	if !mdns.IsSubDomain(zone, qname) {
		return "", false
	}
	base = strings.TrimSuffix(qname, zone)
	return strings.TrimSuffix(base, "."), true
}

// endpointLabel is the label an endpoint's address record carries under its
// service: its hostname, else its address with dots or colons turned into
// dashes (10.42.0.7 → 10-42-0-7, fd00::7 → fd00--7).
func endpointLabel(hostname, ip string) string {
	if hostname != "" {
		return hostname
	}
	if strings.Contains(ip, ".") {
		return strings.ReplaceAll(ip, ".", "-")
	}
	return strings.ReplaceAll(ip, ":", "-")
}

// podIP turns the first label of a pod name back into its address:
// 10-42-0-7 → 10.42.0.7, fd00--7 → fd00::7. It returns nil when the label
// is no address.
func podIP(label string) net.IP {
	var s string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	} else {
		s = strings.ReplaceAll(label, "-", ":")
	}
	return net.ParseIP(s)
}

// reverseIP returns the address a full in-addr.arpa or ip6.arpa name
// stands for (lower-case, fully qualified), or nil when the name is no
// such name (a partial network, a malformed label).
func reverseIP(qname string) net.IP {
	if base, ok := trimZone(qname, "in-addr.arpa."); ok {
		labels := strings.Split(base, ".")
		if len(labels) != 4 {
			return nil
		}
		for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
			labels[i], labels[j] = labels[j], labels[i]
		}
		return net.ParseIP(strings.Join(labels, ".")).To4()
	}
	if base, ok := trimZone(qname, "ip6.arpa."); ok {
		labels := strings.Split(base, ".")
		if len(labels) != 32 {
			return nil
		}
		var b strings.Builder
		for i := len(labels) - 1; i >= 0; i-- {
			if len(labels[i]) != 1 {
				return nil
			}
			b.WriteString(labels[i])
			if i%4 == 0 && i != 0 {
				b.WriteByte(':')
			}
		}
		return net.ParseIP(b.String())
	}
	return nil
}
