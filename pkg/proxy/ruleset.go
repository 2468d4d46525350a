package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// Chain and set names of the table. The layout is kube-proxy's nftables
// mode, smaller: see doc.go.
const (
	chainNatPrerouting  = "nat-prerouting"
	chainNatOutput      = "nat-output"
	chainNatPostrouting = "nat-postrouting"
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"

	chainServices          = "services"
	chainMarkForMasquerade = "mark-for-masquerade"
	chainMasquerading      = "masquerading"
	chainServiceEPCheck    = "service-endpoints-check"
	chainNodePortEPCheck   = "nodeport-endpoints-check"
	chainClusterIPsCheck   = "cluster-ips-check"
	chainReject            = "reject-chain"

	setClusterIPs         = "cluster-ips"
	mapServiceIPs         = "service-ips"
	mapServiceNodePorts   = "service-nodeports"
	mapNoEndpointServices = "no-endpoint-services"
	mapNoEndpointNodePort = "no-endpoint-nodeports"

	prefixService  = "service-"
	prefixLocal    = "local-"
	prefixExternal = "external-"
	prefixEndpoint = "endpoint-"
	prefixAffinity = "affinity-"
)

// ruleset is the whole desired content of the proxy's table.
type ruleset struct {
	Chains []chainSpec
	Sets   []setSpec
}

// chainSpec is one chain; Hook is nil for a regular chain.
type chainSpec struct {
	Name  string
	Hook  *hookSpec
	Rules []rule
}

type hookSpec struct {
	Type     nftables.ChainType
	Hook     *nftables.ChainHook
	HookName string
	Priority int32
}

// setSpec is a named set or verdict map.
type setSpec struct {
	Name     string
	Type     nftables.SetDatatype
	TypeName string
	IsMap    bool          // a verdict map
	Timeout  time.Duration // >0: a dynamic set whose elements expire (affinity)
	Elements []element
}

type element struct {
	Key     []byte
	Text    string
	Verdict *verdict
}

func (s *setSpec) nftSet(t *nftables.Table) *nftables.Set {
	set := &nftables.Set{Table: t, Name: s.Name, KeyType: s.Type, IsMap: s.IsMap}
	if s.IsMap {
		set.DataType = nftables.TypeVerdict
	}
	if len(nftables.ConcatSetTypeElements(s.Type)) > 1 {
		set.Concatenation = true
	}
	if s.Timeout > 0 {
		set.HasTimeout, set.Dynamic, set.Timeout = true, true, s.Timeout
	}
	return set
}

func (s *setSpec) nftElements() []nftables.SetElement {
	out := make([]nftables.SetElement, len(s.Elements))
	for i, e := range s.Elements {
		out[i] = nftables.SetElement{Key: e.Key}
		if e.Verdict != nil {
			out[i].VerdictData = e.Verdict.expr()
		}
	}
	return out
}

// config is what the rule set depends on besides the service ports.
type config struct {
	MasqueradeBit uint32
	// ClusterCIDR: pod addresses; traffic from elsewhere to a ClusterIP is
	// masqueraded. Invalid (unset): all ClusterIP traffic is.
	ClusterCIDR netip.Prefix
	// LocalPodCIDR: when valid, traffic from it to an endpoint on this node
	// is masqueraded, so that replies come back through the node even when
	// client and server share a bridge without br_netfilter.
	LocalPodCIDR netip.Prefix
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// buildRuleset computes the table for the given service ports. It is pure:
// the same input gives the same rule set, in the same order.
func buildRuleset(c config, sps []servicePort) *ruleset {
	toMasq := jump(chainMarkForMasquerade)
	newConn := ctStateNew{}
	notLoopback := matchPrefix{Field: daddr, Not: true, Prefix: loopback}

	// ClusterIP traffic from outside the cluster is masqueraded, as
	// kube-proxy does. Unlike kube-proxy, the node's own connections are
	// masqueraded only to endpoints on other nodes (see the endpoint
	// chains): a local endpoint answers the node's address through the node
	// anyway, and masquerading would cap a node's connection rate to one
	// endpoint at what 64k source ports allow per conntrack TIME_WAIT (120 s).
	clusterIPsRule := rule{matchSet{daddr, setClusterIPs}, toMasq}
	if c.ClusterCIDR.IsValid() {
		clusterIPsRule = rule{matchSet{daddr, setClusterIPs}, matchPrefix{Field: saddr, Not: true, Prefix: c.ClusterCIDR}, fibSaddrLocal{Not: true}, toMasq}
	}
	rs := &ruleset{Chains: []chainSpec{
		{Name: chainNatPrerouting, Hook: &hookSpec{nftables.ChainTypeNAT, nftables.ChainHookPrerouting, "prerouting", -100},
			Rules: []rule{{jump(chainServices)}}},
		{Name: chainNatOutput, Hook: &hookSpec{nftables.ChainTypeNAT, nftables.ChainHookOutput, "output", -100},
			Rules: []rule{{jump(chainServices)}}},
		{Name: chainNatPostrouting, Hook: &hookSpec{nftables.ChainTypeNAT, nftables.ChainHookPostrouting, "postrouting", 100},
			Rules: []rule{{jump(chainMasquerading)}}},
		{Name: chainFilterInput, Hook: &hookSpec{nftables.ChainTypeFilter, nftables.ChainHookInput, "input", 0},
			Rules: []rule{{newConn, jump(chainNodePortEPCheck)}, {newConn, jump(chainServiceEPCheck)}}},
		{Name: chainFilterForward, Hook: &hookSpec{nftables.ChainTypeFilter, nftables.ChainHookForward, "forward", 0},
			Rules: []rule{{newConn, jump(chainServiceEPCheck)}, {newConn, jump(chainClusterIPsCheck)}}},
		{Name: chainFilterOutput, Hook: &hookSpec{nftables.ChainTypeFilter, nftables.ChainHookOutput, "output", 0},
			Rules: []rule{{newConn, jump(chainServiceEPCheck)}, {newConn, jump(chainClusterIPsCheck)}}},
		{Name: chainServices, Rules: []rule{
			clusterIPsRule,
			{vmapLookup{keyDaddrProtoPort, mapServiceIPs}},
			{fibDaddrLocal{}, notLoopback, vmapLookup{keyProtoPort, mapServiceNodePorts}},
		}},
		{Name: chainMarkForMasquerade, Rules: []rule{{markSet{Bits: c.MasqueradeBit}}}},
		{Name: chainMasquerading, Rules: []rule{
			{markUnset{c.MasqueradeBit}, ret()},
			{markSet{Bits: c.MasqueradeBit, Clear: true}},
			{masquerade{}},
		}},
		{Name: chainServiceEPCheck, Rules: []rule{{vmapLookup{keyDaddrProtoPort, mapNoEndpointServices}}}},
		{Name: chainNodePortEPCheck, Rules: []rule{{fibDaddrLocal{}, notLoopback, vmapLookup{keyProtoPort, mapNoEndpointNodePort}}}},
		{Name: chainClusterIPsCheck, Rules: []rule{{matchSet{daddr, setClusterIPs}, reject{}}}},
		{Name: chainReject, Rules: []rule{{reject{}}}},
	}}

	clusterIPs := &setSpec{Name: setClusterIPs, Type: nftables.TypeIPAddr, TypeName: "ipv4_addr"}
	serviceIPs := newVmap(mapServiceIPs, keyDaddrProtoPort)
	nodePorts := newVmap(mapServiceNodePorts, keyProtoPort)
	noEPServices := newVmap(mapNoEndpointServices, keyDaddrProtoPort)
	noEPNodePorts := newVmap(mapNoEndpointNodePort, keyProtoPort)
	var affinitySets []setSpec

	for i := range sps {
		sp := &sps[i]
		proto := protoNumber(string(sp.Protocol))
		base := chainNameBase(sp)
		svcChain, localChain, extChain := prefixService+base, prefixLocal+base, prefixExternal+base

		addElem(clusterIPs, sp.ClusterIP.AsSlice(), sp.ClusterIP.String(), nil)
		if len(sp.Endpoints) == 0 {
			v := goTo(chainReject)
			addElem(noEPServices, daddrProtoPortKey(sp.ClusterIP, proto, sp.Port), daddrProtoPortText(sp.ClusterIP, proto, sp.Port), &v)
			for _, ip := range sp.ExternalIPs {
				addElem(noEPServices, daddrProtoPortKey(ip, proto, sp.Port), daddrProtoPortText(ip, proto, sp.Port), &v)
			}
			if sp.NodePort != 0 {
				addElem(noEPNodePorts, protoPortKey(proto, sp.NodePort), protoPortText(proto, sp.NodePort), &v)
			}
			continue
		}

		// Endpoint chains, shared by the service's policy chains.
		epChains := map[endpoint]string{}
		for _, ep := range sp.Endpoints {
			epBase := hashedName(fmt.Sprintf("%s/%s/%s/%s__%s/%d", sp.Namespace, sp.Name, strings.ToLower(string(sp.Protocol)), sp.PortName, ep.Addr, ep.Port))
			chain := prefixEndpoint + epBase
			epChains[ep] = chain
			// Hairpin: a pod reaching itself must not see its own address.
			rules := []rule{{matchPrefix{Field: saddr, Prefix: netip.PrefixFrom(ep.Addr, 32)}, toMasq}}
			if !ep.Local && c.ClusterCIDR.IsValid() {
				rules = append(rules, rule{fibSaddrLocal{}, toMasq})
			}
			if ep.Local && c.LocalPodCIDR.IsValid() {
				rules = append(rules, rule{matchPrefix{Field: saddr, Prefix: c.LocalPodCIDR}, toMasq})
			}
			if sp.Affinity > 0 {
				set := prefixAffinity + epBase
				affinitySets = append(affinitySets, setSpec{Name: set, Type: nftables.TypeIPAddr, TypeName: "ipv4_addr", Timeout: sp.Affinity})
				rules = append(rules, rule{updateSaddr{set}})
			}
			rules = append(rules, rule{l4proto{proto}, dnat{netip.AddrPortFrom(ep.Addr, ep.Port)}})
			rs.Chains = append(rs.Chains, chainSpec{Name: chain, Rules: rules})
		}
		policyChain := func(name string, eps []endpoint) {
			var rules []rule
			var targets []string
			for _, ep := range eps {
				if sp.Affinity > 0 {
					rules = append(rules, rule{matchSet{saddr, prefixAffinity + strings.TrimPrefix(epChains[ep], prefixEndpoint)}, goTo(epChains[ep])})
				}
				targets = append(targets, epChains[ep])
			}
			for i, target := range targets {
				if left := len(targets) - i; left > 1 {
					rules = append(rules, rule{numgenPick{uint32(left)}, goTo(target)})
				} else {
					rules = append(rules, rule{goTo(target)})
				}
			}
			rs.Chains = append(rs.Chains, chainSpec{Name: name, Rules: rules})
		}
		policyChain(svcChain, sp.Endpoints)
		local := localOnly(sp.Endpoints)
		if len(local) > 0 && (sp.InternalLocal || sp.ExternalLocal) {
			policyChain(localChain, local)
		}

		// ClusterIP traffic.
		key, text := daddrProtoPortKey(sp.ClusterIP, proto, sp.Port), daddrProtoPortText(sp.ClusterIP, proto, sp.Port)
		switch {
		case !sp.InternalLocal:
			v := goTo(svcChain)
			addElem(serviceIPs, key, text, &v)
		case len(local) > 0:
			v := goTo(localChain)
			addElem(serviceIPs, key, text, &v)
		default:
			v := dropVerdict()
			addElem(noEPServices, key, text, &v)
		}

		// NodePort, LoadBalancer and external IP traffic.
		if sp.NodePort == 0 && len(sp.ExternalIPs) == 0 {
			continue
		}
		var extRules []rule
		if !sp.ExternalLocal {
			// Masqueraded: the endpoint may be on another node, and its
			// reply must come back through this one.
			extRules = []rule{{toMasq}, {goTo(svcChain)}}
		} else {
			// Source preserved for traffic from outside; pods and the node
			// itself reach every endpoint, as kube-proxy short-circuits them.
			if c.ClusterCIDR.IsValid() {
				extRules = append(extRules, rule{matchPrefix{Field: saddr, Prefix: c.ClusterCIDR}, goTo(svcChain)})
			}
			extRules = append(extRules, rule{fibSaddrLocal{}, toMasq}, rule{fibSaddrLocal{}, goTo(svcChain)})
			if len(local) > 0 {
				extRules = append(extRules, rule{goTo(localChain)})
			} else {
				extRules = append(extRules, rule{dropVerdict()})
			}
		}
		rs.Chains = append(rs.Chains, chainSpec{Name: extChain, Rules: extRules})
		ext := goTo(extChain)
		for _, ip := range sp.ExternalIPs {
			addElem(serviceIPs, daddrProtoPortKey(ip, proto, sp.Port), daddrProtoPortText(ip, proto, sp.Port), &ext)
		}
		if sp.NodePort != 0 {
			addElem(nodePorts, protoPortKey(proto, sp.NodePort), protoPortText(proto, sp.NodePort), &ext)
		}
	}

	for _, s := range []*setSpec{clusterIPs, serviceIPs, nodePorts, noEPServices, noEPNodePorts} {
		dedupElements(s)
		rs.Sets = append(rs.Sets, *s)
	}
	rs.Sets = append(rs.Sets, affinitySets...)
	return rs
}

func newVmap(name string, k vmapKey) *setSpec {
	tn := "ipv4_addr . inet_proto . inet_service : verdict"
	if k == keyProtoPort {
		tn = "inet_proto . inet_service : verdict"
	}
	return &setSpec{Name: name, Type: k.setType(), TypeName: tn, IsMap: true}
}

func addElem(s *setSpec, key []byte, text string, v *verdict) {
	s.Elements = append(s.Elements, element{Key: key, Text: text, Verdict: v})
}

// dedupElements keeps the first element of each key: two Services cannot
// share a ClusterIP:port, but external IPs and node ports given twice must
// not fail the whole batch.
func dedupElements(s *setSpec) {
	seen := map[string]bool{}
	s.Elements = slices.DeleteFunc(s.Elements, func(e element) bool {
		k := string(e.Key)
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// daddrProtoPortKey is the key `ip . proto . port` of a concatenation: each
// field padded to 4 bytes, the port in network byte order.
func daddrProtoPortKey(ip netip.Addr, proto uint8, port uint16) []byte {
	a := ip.As4()
	return append(append(a[:], proto, 0, 0, 0), protoPortKey(proto, port)[4:]...)
}

func protoPortKey(proto uint8, port uint16) []byte {
	return append([]byte{proto, 0, 0, 0}, append(binaryutil.BigEndian.PutUint16(port), 0, 0)...)
}

func daddrProtoPortText(ip netip.Addr, proto uint8, port uint16) string {
	return ip.String() + " . " + protoPortText(proto, port)
}

func protoPortText(proto uint8, port uint16) string {
	return fmt.Sprintf("%s . %d", protoName(proto), port)
}

// chainNameBase names a service port's chains: a hash (unique even when
// truncated, and telling apart names that differ only at the end) and the
// readable ns/name/proto/port.
func chainNameBase(sp *servicePort) string {
	return hashedName(fmt.Sprintf("%s/%s/%s/%s", sp.Namespace, sp.Name, strings.ToLower(string(sp.Protocol)), sp.PortName))
}

// maxNameBase keeps chain and set names (prefix included) well under the
// kernel's 256 bytes.
const maxNameBase = 200

func hashedName(s string) string {
	h := sha256.Sum256([]byte(s))
	name := base32.StdEncoding.EncodeToString(h[:])[:8] + "-" + s
	if len(name) > maxNameBase {
		name = name[:maxNameBase-3] + "..."
	}
	return name
}

// String prints the rule set like `nft list table ip <name>` does.
func (rs *ruleset) String(table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", table)
	for _, s := range rs.Sets {
		kind := "set"
		if s.IsMap {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, s.Name, s.TypeName)
		if s.Timeout > 0 {
			fmt.Fprintf(&b, "\t\tflags dynamic,timeout\n\t\ttimeout %s\n", s.Timeout)
		}
		if len(s.Elements) > 0 {
			b.WriteString("\t\telements = {")
			for i, e := range s.Elements {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n\t\t\t" + e.Text)
				if e.Verdict != nil {
					b.WriteString(" : " + e.Verdict.String())
				}
			}
			b.WriteString(" }\n")
		}
		b.WriteString("\t}\n")
	}
	for _, c := range rs.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.Hook.Type, c.Hook.HookName, c.Hook.Priority)
		}
		for _, r := range c.Rules {
			b.WriteString("\t\t" + r.String() + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}
