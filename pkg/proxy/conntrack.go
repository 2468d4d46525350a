package proxy

import (
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// conntrackCleaner forgets UDP flows to endpoints that left a Service.
// A TCP flow to a gone endpoint ends by itself (reset or timeout), but a
// UDP "flow" lives as long as the client keeps sending, so without this a
// client would keep talking to a removed endpoint, as kube-proxy explains.
type conntrackCleaner struct{ netns int }

func (c conntrackCleaner) forgetRemovedUDP(prev, cur []servicePort) {
	type key struct{ ns, name, port string }
	now := map[key]map[endpoint]bool{}
	for _, sp := range cur {
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		m := map[endpoint]bool{}
		for _, e := range sp.Endpoints {
			m[endpoint{Addr: e.Addr, Port: e.Port}] = true
		}
		now[key{sp.Namespace, sp.Name, sp.PortName}] = m
	}
	var filters []netlink.CustomConntrackFilter
	for _, sp := range prev {
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		still := now[key{sp.Namespace, sp.Name, sp.PortName}]
		for _, e := range sp.Endpoints {
			if still[endpoint{Addr: e.Addr, Port: e.Port}] {
				continue
			}
			f := &netlink.ConntrackFilter{}
			_ = f.AddProtocol(unix.IPPROTO_UDP)
			_ = f.AddIP(netlink.ConntrackReplySrcIP, net.IP(e.Addr.AsSlice()))
			_ = f.AddPort(netlink.ConntrackOrigDstPort, sp.Port)
			filters = append(filters, f)
			if sp.NodePort != 0 {
				f := &netlink.ConntrackFilter{}
				_ = f.AddProtocol(unix.IPPROTO_UDP)
				_ = f.AddIP(netlink.ConntrackReplySrcIP, net.IP(e.Addr.AsSlice()))
				_ = f.AddPort(netlink.ConntrackOrigDstPort, sp.NodePort)
				filters = append(filters, f)
			}
		}
	}
	if len(filters) == 0 {
		return
	}
	h, err := netlink.NewHandleAt(c.handle(), unix.NETLINK_NETFILTER)
	if err != nil {
		klog.ErrorS(err, "Clearing UDP conntrack entries")
		return
	}
	defer h.Close()
	n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...)
	if err != nil {
		klog.ErrorS(err, "Clearing UDP conntrack entries")
		return
	}
	klog.V(4).InfoS("Cleared UDP conntrack entries of removed endpoints", "entries", n)
}

func (c conntrackCleaner) handle() netns.NsHandle {
	if c.netns == 0 {
		return netns.None()
	}
	return netns.NsHandle(c.netns)
}
