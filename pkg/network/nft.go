package network

import (
	"net"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The network's nftables table (family ip) is rebuilt whole from the
// Manager's state in one transaction each time it changes:
//
//	table ip k1s-net-<bridge> {
//	  chain prerouting  { type nat hook prerouting priority dstnat;
//	    ip daddr != 127.0.0.0/8 fib daddr type local jump hostports }
//	  chain output      { type nat hook output priority dstnat;
//	    ip daddr != 127.0.0.0/8 fib daddr type local jump hostports }
//	  chain hostports   { [ip daddr <hostIP>] meta l4proto tcp th dport <hostPort> dnat to <podIP>:<containerPort> ... }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr <podIP> ip daddr <podIP> masquerade   (a pod reaching itself through its hostPort)
//	    ip saddr <podCIDR> ip daddr != <podCIDR> ip daddr != <clusterCIDR> masquerade }
//	}

var protoNumbers = map[string]byte{"TCP": unix.IPPROTO_TCP, "UDP": unix.IPPROTO_UDP, "SCTP": unix.IPPROTO_SCTP}

// Offsets in the IPv4 header.
const (
	ipv4Saddr = 12
	ipv4Daddr = 16
)

func (m *Manager) table() *nftables.Table {
	return &nftables.Table{Name: m.cfg.TableName, Family: nftables.TableFamilyIPv4}
}

// syncRules replaces the table with one built from the current state;
// m.mu is held. Nothing is installed before the pod CIDR is known.
func (m *Manager) syncRules() error {
	if m.podNet == nil {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.table()
	// add + delete + add: the table exists afterwards with exactly the
	// chains and rules below, atomically.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	hostports := c.AddChain(&nftables.Chain{Name: "hostports", Table: t})
	jump := func(name string, hook *nftables.ChainHook) {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: nftables.ChainPriorityNATDest})
		exprs := ipMatch(ipv4Daddr, &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}, expr.CmpOpNeq)
		exprs = append(exprs,
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: hostports.Name},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	jump("prerouting", nftables.ChainHookPrerouting)
	jump("output", nftables.ChainHookOutput)
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})

	for _, id := range sortedKeys(m.pods) {
		p := m.pods[id]
		if len(p.ports) == 0 {
			continue
		}
		host := &net.IPNet{IP: p.ip, Mask: net.CIDRMask(32, 32)}
		for _, pm := range p.ports {
			var exprs []expr.Any
			if pm.HostIP != "" {
				exprs = ipMatch(ipv4Daddr, &net.IPNet{IP: net.ParseIP(pm.HostIP).To4(), Mask: net.CIDRMask(32, 32)}, expr.CmpOpEq)
			}
			exprs = append(exprs,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumbers[pm.Protocol]}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(pm.HostPort))},
				&expr.Immediate{Register: 1, Data: p.ip.To4()},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(pm.ContainerPort))},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
			)
			c.AddRule(&nftables.Rule{Table: t, Chain: hostports, Exprs: exprs})
		}
		hairpin := append(ipMatch(ipv4Saddr, host, expr.CmpOpEq), ipMatch(ipv4Daddr, host, expr.CmpOpEq)...)
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(hairpin, &expr.Masq{})})
	}

	masq := ipMatch(ipv4Saddr, m.podNet, expr.CmpOpEq)
	masq = append(masq, ipMatch(ipv4Daddr, m.podNet, expr.CmpOpNeq)...)
	if m.cluster != nil {
		masq = append(masq, ipMatch(ipv4Daddr, m.cluster, expr.CmpOpNeq)...)
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(masq, &expr.Masq{})})
	return c.Flush()
}

// ipMatch compares the IPv4 address at off (saddr/daddr) with n.
func ipMatch(off uint32, n *net.IPNet, op expr.CmpOp) []expr.Any {
	ip := n.IP.To4().Mask(n.Mask)
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}}
	if ones, _ := n.Mask.Size(); ones < 32 {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: []byte{0, 0, 0, 0}})
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: ip})
}

// deleteTable removes the table if it exists.
func (m *Manager) deleteTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.Name == m.cfg.TableName {
			c.DelTable(m.table())
			return c.Flush()
		}
	}
	return nil
}

func sortedKeys(pods map[string]*pod) []string {
	keys := make([]string, 0, len(pods))
	for k := range pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
