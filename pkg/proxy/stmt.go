package proxy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// A rule is a list of statements. Each statement knows its nft syntax (for
// Dump and the tests, so a rule set reads like `nft list table`) and the
// kernel expressions it stands for.
type rule []stmt

func (r rule) String() string {
	parts := make([]string, len(r))
	for i, s := range r {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

type stmt interface {
	String() string
	exprs() []expr.Any
}

// Registers: kernel register 1 is the 16-byte NFT_REG_1, whose first 32
// bits are NFT_REG32_00 (8); concatenated keys continue in 9, 10, ...
const (
	reg1    = 1
	reg32_1 = 9
	reg32_2 = 10
	reg2    = 2
)

// rtnLocal is RTN_LOCAL, the fib address type of a local address.
const rtnLocal = 2

type addrField int

const (
	saddr addrField = 12 // offset in the IPv4 header
	daddr addrField = 16
)

func (f addrField) String() string {
	if f == saddr {
		return "ip saddr"
	}
	return "ip daddr"
}

func (f addrField) load() expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: uint32(f), Len: 4}
}

// matchPrefix is `ip saddr|daddr [!=] prefix` (a /32 prints as an address).
type matchPrefix struct {
	Field  addrField
	Not    bool
	Prefix netip.Prefix
}

func (m matchPrefix) String() string {
	op := " "
	if m.Not {
		op = " != "
	}
	p := m.Prefix.String()
	if m.Prefix.IsSingleIP() {
		p = m.Prefix.Addr().String()
	}
	return m.Field.String() + op + p
}

func (m matchPrefix) exprs() []expr.Any {
	op := expr.CmpOpEq
	if m.Not {
		op = expr.CmpOpNeq
	}
	p := m.Prefix.Masked()
	out := []expr.Any{m.Field.load()}
	if !p.IsSingleIP() {
		mask := netipMask(p.Bits())
		out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
	}
	a := p.Addr().As4()
	return append(out, &expr.Cmp{Op: op, Register: reg1, Data: a[:]})
}

func netipMask(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// matchSet is `ip saddr|daddr @set`.
type matchSet struct {
	Field addrField
	Set   string
}

func (m matchSet) String() string { return m.Field.String() + " @" + m.Set }

func (m matchSet) exprs() []expr.Any {
	return []expr.Any{m.Field.load(), &expr.Lookup{SourceRegister: reg1, SetName: m.Set}}
}

// ctStateNew is `ct state new`.
type ctStateNew struct{}

func (ctStateNew) String() string { return "ct state new" }

func (ctStateNew) exprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// fibDaddrLocal is `fib daddr type local`.
type fibDaddrLocal struct{}

func (fibDaddrLocal) String() string { return "fib daddr type local" }

func (fibDaddrLocal) exprs() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}
}

// fibSaddrLocal is `fib saddr type [!=] local`: the packet comes (or does
// not come) from the node itself.
type fibSaddrLocal struct{ Not bool }

func (f fibSaddrLocal) String() string {
	if f.Not {
		return "fib saddr type != local"
	}
	return "fib saddr type local"
}

func (f fibSaddrLocal) exprs() []expr.Any {
	op := expr.CmpOpEq
	if f.Not {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagSADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: op, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}
}

// l4proto is `meta l4proto tcp|udp|sctp`.
type l4proto struct{ Proto uint8 }

func (m l4proto) String() string { return "meta l4proto " + protoName(m.Proto) }

func (m l4proto) exprs() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{m.Proto}},
	}
}

// vmapKey says what a verdict map is keyed by.
type vmapKey int

const (
	keyDaddrProtoPort vmapKey = iota // ip daddr . meta l4proto . th dport
	keyProtoPort                     // meta l4proto . th dport
)

func (k vmapKey) String() string {
	if k == keyProtoPort {
		return "meta l4proto . th dport"
	}
	return "ip daddr . meta l4proto . th dport"
}

// setType is the key type of a map keyed by k.
func (k vmapKey) setType() nftables.SetDatatype {
	if k == keyProtoPort {
		return nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	}
	return nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
}

// load puts the key into consecutive 32-bit registers, as nft does for a
// concatenation: each field padded to 4 bytes.
func (k vmapKey) load() []expr.Any {
	proto := func(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }
	dport := func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	if k == keyProtoPort {
		return []expr.Any{proto(reg1), dport(reg32_1)}
	}
	return []expr.Any{daddr.load(), proto(reg32_1), dport(reg32_2)}
}

// vmapLookup is `<key> vmap @map`.
type vmapLookup struct {
	Key vmapKey
	Map string
}

func (v vmapLookup) String() string { return v.Key.String() + " vmap @" + v.Map }

func (v vmapLookup) exprs() []expr.Any {
	return append(v.Key.load(), &expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: v.Map})
}

// numgenPick is `numgen random mod N == 0`: true with probability 1/N.
// A service chain picks among n endpoints with rules of N = n, n-1, ..., 2
// and a last unconditional one, each endpoint with probability 1/n, as
// kube-proxy's iptables mode does. (A `numgen random mod n vmap {...}`
// needs an anonymous set per Service, and the kernel names each new one by
// scanning all sets of the table: quadratic, over a second for 1,000
// Services.)
type numgenPick struct{ N uint32 }

func (n numgenPick) String() string { return fmt.Sprintf("numgen random mod %d == 0", n.N) }

func (n numgenPick) exprs() []expr.Any {
	return []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: n.N, Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)},
	}
}

// dnat is `dnat to addr:port`.
type dnat struct{ To netip.AddrPort }

func (d dnat) String() string { return "dnat to " + d.To.String() }

func (d dnat) exprs() []expr.Any {
	a := d.To.Addr().As4()
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: a[:]},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(d.To.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
	}
}

// markSet is `meta mark set meta mark | bits` (Clear: `& ~bits`).
type markSet struct {
	Bits  uint32
	Clear bool
}

func (m markSet) String() string {
	if m.Clear {
		return fmt.Sprintf("meta mark set meta mark & 0x%08x", ^m.Bits)
	}
	return fmt.Sprintf("meta mark set meta mark | 0x%08x", m.Bits)
}

func (m markSet) exprs() []expr.Any {
	xor := uint32(0)
	if !m.Clear {
		xor = m.Bits
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^m.Bits), Xor: binaryutil.NativeEndian.PutUint32(xor)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// markUnset is `meta mark & bits == 0`.
type markUnset struct{ Bits uint32 }

func (m markUnset) String() string { return fmt.Sprintf("meta mark & 0x%08x == 0", m.Bits) }

func (m markUnset) exprs() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(m.Bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)},
	}
}

// masquerade is `masquerade fully-random`.
type masquerade struct{}

func (masquerade) String() string { return "masquerade fully-random" }

func (masquerade) exprs() []expr.Any {
	return []expr.Any{&expr.Masq{FullyRandom: true}}
}

// reject is `reject`: ICMP port unreachable, which a TCP connect reports as
// "connection refused".
type reject struct{}

func (reject) String() string { return "reject" }

func (reject) exprs() []expr.Any {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable}}
}

// updateSaddr is `update @set { ip saddr }`: remember (or refresh) the
// client for the set's timeout.
type updateSaddr struct{ Set string }

func (u updateSaddr) String() string { return "update @" + u.Set + " { ip saddr }" }

func (u updateSaddr) exprs() []expr.Any {
	return []expr.Any{saddr.load(), &expr.Dynset{SrcRegKey: reg1, SetName: u.Set, Operation: unix.NFT_DYNSET_OP_UPDATE}}
}

// verdict is `jump c`, `goto c`, `return`, `drop` or `accept`.
type verdict struct {
	Kind  expr.VerdictKind
	Chain string
}

func jump(c string) verdict { return verdict{Kind: expr.VerdictJump, Chain: c} }
func goTo(c string) verdict { return verdict{Kind: expr.VerdictGoto, Chain: c} }
func ret() verdict          { return verdict{Kind: expr.VerdictReturn} }
func dropVerdict() verdict  { return verdict{Kind: expr.VerdictDrop} }

func (v verdict) String() string {
	switch v.Kind {
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictAccept:
		return "accept"
	}
	return fmt.Sprintf("verdict(%d)", v.Kind)
}

func (v verdict) exprs() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: v.Kind, Chain: v.Chain}}
}

func (v verdict) expr() *expr.Verdict { return &expr.Verdict{Kind: v.Kind, Chain: v.Chain} }

func protoNumber(p string) uint8 {
	switch strings.ToUpper(p) {
	case "UDP":
		return unix.IPPROTO_UDP
	case "SCTP":
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return "tcp"
}

// icmpPortUnreachable is ICMP destination-unreachable code 3.
const icmpPortUnreachable = 3
