package proxy

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// defaultAffinityTimeout is spec.sessionAffinityConfig.clientIP.timeoutSeconds'
// default (3 hours), as the API server defaults it.
const defaultAffinityTimeout = 10800 * time.Second

// servicePort is one port of one Service as the proxy programs it: the
// addresses that reach it and the ready endpoints behind it. It is what the
// rule set is built from, and a pure function of Services and EndpointSlices.
type servicePort struct {
	Namespace, Name string
	PortName        string
	Protocol        v1.Protocol
	ClusterIP       netip.Addr
	Port            uint16
	NodePort        uint16 // 0: none
	// ExternalIPs: spec.externalIPs and status.loadBalancer.ingress IPs
	// (ipMode VIP or unset); traffic to them is handled like NodePort traffic.
	ExternalIPs []netip.Addr
	// Affinity is the ClientIP affinity timeout; 0 means no affinity.
	Affinity time.Duration
	// Endpoints: ready endpoints, sorted by address and port, without
	// duplicates.
	Endpoints []endpoint
	// InternalLocal / ExternalLocal: internalTrafficPolicy /
	// externalTrafficPolicy Local (only this node's endpoints serve).
	InternalLocal, ExternalLocal bool
}

// endpoint is one ready address:port of a service port.
type endpoint struct {
	Addr netip.Addr
	Port uint16
	// Local: the endpoint runs on this node (its nodeName is ours, or its
	// address is one of the node's, as for host-runtime pods).
	Local bool
}

func (e endpoint) String() string { return netip.AddrPortFrom(e.Addr, e.Port).String() }

// String names the service port the way kube-proxy logs it: ns/name:port.
func (sp *servicePort) String() string {
	s := sp.Namespace + "/" + sp.Name
	if sp.PortName != "" {
		s += ":" + sp.PortName
	}
	return s
}

// internalEndpoints are the endpoints serving ClusterIP traffic.
func (sp *servicePort) internalEndpoints() []endpoint {
	if sp.InternalLocal {
		return localOnly(sp.Endpoints)
	}
	return sp.Endpoints
}

// externalEndpoints are the endpoints serving NodePort, LoadBalancer and
// external IP traffic.
func (sp *servicePort) externalEndpoints() []endpoint {
	if sp.ExternalLocal {
		return localOnly(sp.Endpoints)
	}
	return sp.Endpoints
}

func localOnly(eps []endpoint) []endpoint {
	var out []endpoint
	for _, e := range eps {
		if e.Local {
			out = append(out, e)
		}
	}
	return out
}

// node is what the model needs to know about the node it programs.
type node struct {
	Name string
	IPs  []netip.Addr
}

func (n node) hasIP(a netip.Addr) bool { return slices.Contains(n.IPs, a) }

// buildServicePorts computes the service ports to program from every Service
// and EndpointSlice of the cluster. Headless and ExternalName Services, and
// Services without an IPv4 cluster IP, have none. The result is sorted.
func buildServicePorts(services []*v1.Service, endpointSlices []*discovery.EndpointSlice, n node) []servicePort {
	byService := map[string][]*discovery.EndpointSlice{}
	for _, es := range endpointSlices {
		if es.AddressType != discovery.AddressTypeIPv4 {
			continue
		}
		svc := es.Labels[discovery.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		byService[key] = append(byService[key], es)
	}

	var out []servicePort
	for _, svc := range services {
		clusterIP, ok := ipv4ClusterIP(svc)
		if !ok || svc.Spec.Type == v1.ServiceTypeExternalName {
			continue
		}
		var affinity time.Duration
		if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
			affinity = defaultAffinityTimeout
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
			}
		}
		external := externalIPs(svc)
		slicesOfSvc := byService[svc.Namespace+"/"+svc.Name]
		for _, p := range svc.Spec.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = v1.ProtocolTCP
			}
			sp := servicePort{
				Namespace:   svc.Namespace,
				Name:        svc.Name,
				PortName:    p.Name,
				Protocol:    proto,
				ClusterIP:   clusterIP,
				Port:        uint16(p.Port),
				ExternalIPs: external,
				Affinity:    affinity,
				Endpoints:   readyEndpoints(slicesOfSvc, p.Name, proto, n),
				InternalLocal: svc.Spec.InternalTrafficPolicy != nil &&
					*svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
			}
			if svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer {
				if p.NodePort > 0 && p.NodePort <= 65535 {
					sp.NodePort = uint16(p.NodePort)
				}
				sp.ExternalLocal = svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
			}
			out = append(out, sp)
		}
	}
	slices.SortFunc(out, func(a, b servicePort) int {
		return cmp.Or(
			strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name),
			strings.Compare(a.PortName, b.PortName),
			strings.Compare(string(a.Protocol), string(b.Protocol)),
		)
	})
	return out
}

// ipv4ClusterIP is the Service's IPv4 cluster IP; false for headless
// Services and Services without one.
func ipv4ClusterIP(svc *v1.Service) (netip.Addr, bool) {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if s == "" || s == v1.ClusterIPNone {
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// externalIPs are spec.externalIPs and the LoadBalancer ingress IPs that
// traffic is sent to (ipMode VIP, or unset, which means VIP). Ingress IPs of
// a Service that is no longer of type LoadBalancer are ignored.
func externalIPs(svc *v1.Service) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || slices.Contains(out, a) {
			return
		}
		out = append(out, a)
	}
	for _, s := range svc.Spec.ExternalIPs {
		add(s)
	}
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP {
				continue
			}
			add(ing.IP)
		}
	}
	return out
}

// readyEndpoints are the ready endpoints of the slices for the service port
// named portName: the slice port of the same name and protocol gives the
// port number (the EndpointSlice controller has resolved named targetPorts
// per pod). An endpoint whose ready condition is unset counts as ready, as
// the API documents; terminating endpoints are never ready.
func readyEndpoints(endpointSlices []*discovery.EndpointSlice, portName string, proto v1.Protocol, n node) []endpoint {
	var out []endpoint
	for _, es := range endpointSlices {
		port := uint16(0)
		for _, p := range es.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			pp := v1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			if name == portName && pp == proto && p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
				port = uint16(*p.Port)
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range es.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.Conditions.Terminating != nil && *e.Conditions.Terminating {
				continue
			}
			for _, s := range e.Addresses {
				a, err := netip.ParseAddr(s)
				if err != nil || !a.Is4() {
					continue
				}
				local := n.hasIP(a) || (e.NodeName != nil && *e.NodeName == n.Name && n.Name != "")
				out = append(out, endpoint{Addr: a, Port: port, Local: local})
				break // an endpoint's addresses are one pod's; kube-proxy uses the first
			}
		}
	}
	slices.SortFunc(out, func(a, b endpoint) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
	})
	return slices.CompactFunc(out, func(a, b endpoint) bool { return a.Addr == b.Addr && a.Port == b.Port })
}
