// Package network gives pods their own network namespace on a node bridge,
// the way a CNI bridge + host-local + portmap configuration does for
// containerd, without CNI binaries and without the Kubernetes API:
//
//   - SetPodCIDR (the node's spec.podCIDR, as CRI's UpdateRuntimeConfig)
//     readies the node network; the first pod that needs it (or pods left
//     by a previous run) creates the bridge (default k1s0) with the
//     gateway, the first address of the pod CIDR, turns on IPv4 forwarding
//     and bridge-nf-call-iptables
//     (bridged pod→pod traffic passes the IP hooks, which the service proxy
//     relies on), and installs the network's own nftables table: pod
//     traffic leaving the cluster CIDR is masqueraded.
//   - Setup makes a network namespace pinned by a bind mount at
//     StateDir/netns/<id>, a veth pair (host side on the bridge, hairpin on;
//     pod side eth0), the next free address of the pod CIDR (host-local
//     style: one file per allocated address in StateDir/ipam), a default
//     route via the gateway, and DNAT rules for hostPorts.
//   - Teardown undoes all of it; GC tears down whatever a crash left.
//
// Everything lives on disk in StateDir and in the kernel, so a new Manager
// on the same StateDir (an agent restart) sees the pods of the previous one.
// Two Managers on one host (two agents) need different BridgeNames and
// StateDirs (the nftables table is named after the bridge).
//
// IPv4 only.
package network

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultBridge is the bridge's name when Config.BridgeName is empty.
const DefaultBridge = "k1s0"

// DefaultMTU of the bridge and the veths when Config.MTU is 0.
const DefaultMTU = 1500

// ErrNotReady: the node has no pod CIDR yet (SetPodCIDR was not called).
var ErrNotReady = errors.New("network is not ready")

// Config of a Manager.
type Config struct {
	// BridgeName is the node bridge (a Linux interface name, at most 15
	// characters); default "k1s0". It must differ between nodes sharing a
	// host.
	BridgeName string
	// PodCIDR is the node's pod CIDR (e.g. 10.42.0.0/24); empty: set
	// later with SetPodCIDR.
	PodCIDR string
	// ClusterCIDR is the cluster's pod network (e.g. 10.42.0.0/16): pod
	// traffic to it is not masqueraded. Empty: only the node's pod CIDR.
	ClusterCIDR string
	// StateDir holds the address allocations (ipam/), hostPort mappings
	// (ports/) and the pinned network namespaces (netns/), e.g.
	// DATA_DIR/agent/network. It must differ between nodes sharing a host.
	StateDir string
	// MTU of the bridge and the pods' interfaces; default 1500.
	MTU int
	// TableName is the nftables table (family ip) of the network's NAT
	// rules; default "k1s-net-" + BridgeName.
	TableName string
}

// PortMapping is a hostPort: connections to a local address (HostIP if
// set) on HostPort are forwarded to the pod's ContainerPort.
type PortMapping struct {
	Protocol      string // TCP (default), UDP or SCTP
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

// SetupOptions of a pod's network.
type SetupOptions struct {
	// PortMappings of the pod; those without a HostPort are ignored.
	PortMappings []PortMapping
}

// Manager sets up pod networks on one node. Its methods are safe for
// concurrent use; calls for one id must not overlap.
type Manager struct {
	cfg     Config
	cluster *net.IPNet

	mu      sync.Mutex
	podNet  *net.IPNet // nil until SetPodCIDR
	gateway net.IP
	built   bool              // the bridge, forwarding and table exist for podNet
	pods    map[string]*pod   // id → allocation
	byIP    map[string]string // address → id
	last    uint32            // the last address handed out (round robin)
}

// pod is what is on disk of one pod's network.
type pod struct {
	ip    net.IP
	ports []PortMapping
}

// New opens the state in cfg.StateDir (allocations of a previous Manager
// are kept) and, when cfg.PodCIDR is set, configures the node network.
func New(cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("network: StateDir is required")
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridge
	}
	if len(cfg.BridgeName) > unix.IFNAMSIZ-1 || strings.ContainsAny(cfg.BridgeName, "/ \t\n:") {
		return nil, fmt.Errorf("network: invalid bridge name %q (at most 15 characters, no '/', ':' or spaces)", cfg.BridgeName)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.TableName == "" {
		cfg.TableName = "k1s-net-" + cfg.BridgeName
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = dir
	m := &Manager{cfg: cfg, pods: map[string]*pod{}, byIP: map[string]string{}}
	if cfg.ClusterCIDR != "" {
		n, err := parseCIDR(cfg.ClusterCIDR)
		if err != nil {
			return nil, fmt.Errorf("network: cluster CIDR: %w", err)
		}
		m.cluster = n
	}
	for _, d := range []string{"ipam", "ports", "netns"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	if cfg.PodCIDR != "" {
		if err := m.SetPodCIDR(cfg.PodCIDR); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// BridgeName is the node bridge's name.
func (m *Manager) BridgeName() string { return m.cfg.BridgeName }

// TableName is the nftables table (family ip) of the network's rules.
func (m *Manager) TableName() string { return m.cfg.TableName }

// PodCIDR is the pod CIDR set last, or "".
func (m *Manager) PodCIDR() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podNet == nil {
		return ""
	}
	return m.podNet.String()
}

// Ready returns nil once the node has a pod CIDR, else an error wrapping
// ErrNotReady.
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podNet == nil {
		return notReady()
	}
	return nil
}

func notReady() error {
	return fmt.Errorf("%w: the node has no pod CIDR yet", ErrNotReady)
}

func parseCIDR(s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("%s is not an IPv4 CIDR (IPv6 pod networks are not supported)", s)
	}
	n.IP = n.IP.To4()
	return n, nil
}

// SetPodCIDR sets the node's pod CIDR (CRI's UpdateRuntimeConfig). The
// node network — the bridge with the gateway address (the CIDR's first
// address), forwarding and the nftables table — is made on the first pod
// that needs it (a node whose pods are all on the host network, or on the
// host runtime, changes nothing on the machine), or at once when pods of a
// previous run still have networks. Idempotent and cheap when nothing
// changed. Allocations made in a previous CIDR stay until their Teardown.
func (m *Manager) SetPodCIDR(cidr string) error {
	n, err := parseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("network: pod CIDR: %w", err)
	}
	if ones, _ := n.Mask.Size(); ones > 30 {
		return fmt.Errorf("network: pod CIDR %s is too small", cidr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podNet != nil && m.podNet.String() == n.String() {
		if !m.built || linkExists(m.cfg.BridgeName) {
			return nil
		}
	}
	prevNet, prevGW, prevBuilt := m.podNet, m.gateway, m.built
	m.podNet, m.gateway, m.built = n, uintToIP(ipToUint(n.IP)+1), false
	if len(m.pods) > 0 || prevBuilt || linkExists(m.cfg.BridgeName) {
		if err := m.buildLocked(); err != nil {
			m.podNet, m.gateway, m.built = prevNet, prevGW, prevBuilt
			return err
		}
	}
	return nil
}

// buildLocked makes the node network for the current pod CIDR: the
// bridge, forwarding and the nftables table. m.mu is held.
func (m *Manager) buildLocked() error {
	if m.built {
		return nil
	}
	if err := m.ensureBridge(m.gateway, m.podNet); err != nil {
		return fmt.Errorf("network: bridge %s: %w", m.cfg.BridgeName, err)
	}
	if err := enableForwarding(); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := m.syncRules(); err != nil {
		return fmt.Errorf("network: nftables: %w", err)
	}
	m.built = true
	return nil
}

// ensureBridge creates or updates the bridge: up, with gw as its only
// IPv4 address.
func (m *Manager) ensureBridge(gw net.IP, n *net.IPNet) error {
	link, err := netlink.LinkByName(m.cfg.BridgeName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = m.cfg.BridgeName
		attrs.MTU = m.cfg.MTU
		// A fixed address: a bridge otherwise takes its lowest port's,
		// which changes as pods come and go (and the pods' ARP entries
		// for the gateway go stale).
		attrs.HardwareAddr = bridgeMAC(m.cfg.BridgeName)
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if link, err = netlink.LinkByName(m.cfg.BridgeName); err != nil {
			return err
		}
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("%s exists and is a %s, not a bridge", m.cfg.BridgeName, link.Type())
	}
	want := &net.IPNet{IP: gw, Mask: n.Mask}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return err
		}
	}
	if !have {
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: want}); err != nil {
			return err
		}
	}
	return netlink.LinkSetUp(link)
}

func bridgeMAC(name string) net.HardwareAddr {
	h := sha256.Sum256([]byte("k1s bridge " + name))
	mac := net.HardwareAddr(h[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	return mac
}

// enableForwarding turns on IPv4 forwarding and, when br_netfilter is
// loaded, the IP hooks for bridged traffic.
func enableForwarding() error {
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"} {
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) && strings.Contains(p, "/bridge/") {
				continue
			}
			return err
		}
		if strings.TrimSpace(string(data)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// vethName is the host side of a pod's veth pair.
func vethName(id string) string {
	h := sha256.Sum256([]byte(id))
	return "veth" + hex.EncodeToString(h[:4])
}

func (m *Manager) netnsPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "netns", id)
}

func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 200 {
		return fmt.Errorf("network: invalid id %q", id)
	}
	return nil
}

func normalizePorts(in []PortMapping) ([]PortMapping, error) {
	var out []PortMapping
	for _, p := range in {
		if p.HostPort == 0 {
			continue
		}
		p.Protocol = strings.ToUpper(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = "TCP"
		}
		if _, ok := protoNumbers[p.Protocol]; !ok {
			return nil, fmt.Errorf("network: hostPort %d: unsupported protocol %q", p.HostPort, p.Protocol)
		}
		if p.HostPort < 0 || p.HostPort > 65535 || p.ContainerPort <= 0 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("network: invalid port mapping %d→%d", p.HostPort, p.ContainerPort)
		}
		if p.HostIP != "" {
			ip := net.ParseIP(p.HostIP)
			if ip == nil {
				return nil, fmt.Errorf("network: hostPort %d: invalid hostIP %q", p.HostPort, p.HostIP)
			}
			if ip.To4() == nil {
				continue // an IPv6 hostIP: not ours to map
			}
			if ip.IsUnspecified() {
				p.HostIP = ""
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Setup creates the network of pod id: a pinned network namespace with lo
// and eth0 (the pod's address, a default route via the gateway) and the
// pod's hostPorts. It returns the namespace's path and the pod IP. A
// failed Setup leaves nothing behind. Setup of an id that is set up
// returns its namespace and IP.
func (m *Manager) Setup(ctx context.Context, id string, opts SetupOptions) (netnsPath, podIP string, err error) {
	if err := validID(id); err != nil {
		return "", "", err
	}
	ports, err := normalizePorts(opts.PortMappings)
	if err != nil {
		return "", "", err
	}
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	path := m.netnsPath(id)
	m.mu.Lock()
	ready := m.podNet != nil
	var buildErr error
	if ready {
		buildErr = m.buildLocked()
	}
	existing := m.pods[id]
	m.mu.Unlock()
	if !ready {
		return "", "", notReady()
	}
	if buildErr != nil {
		return "", "", buildErr
	}
	if existing != nil && isNetNSMount(path) && linkExists(vethName(id)) {
		return path, existing.ip.String(), nil
	}
	// Leftovers of an interrupted Setup of the same id.
	if err := m.Teardown(id); err != nil {
		return "", "", err
	}
	ip, podNet, gw, err := m.allocate(id, ports)
	if err != nil {
		return "", "", err
	}
	fail := func(err error) (string, string, error) {
		_ = m.Teardown(id)
		return "", "", fmt.Errorf("network setup of %s: %w", id, err)
	}
	if err := pinNewNetNS(path); err != nil {
		return fail(err)
	}
	if err := m.plumb(id, path, ip, podNet, gw); err != nil {
		return fail(err)
	}
	if len(ports) > 0 {
		m.mu.Lock()
		err := m.syncRules()
		m.mu.Unlock()
		if err != nil {
			return fail(fmt.Errorf("hostPort rules: %w", err))
		}
	}
	return path, ip.String(), nil
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// Teardown removes pod id's network: the veth pair, the pinned namespace,
// the address and the hostPort rules. Teardown of an unknown id is a no-op.
func (m *Manager) Teardown(id string) error {
	if validID(id) != nil {
		return nil // Setup refuses such ids: nothing to tear down
	}
	var errs []error
	if link, err := netlink.LinkByName(vethName(id)); err == nil {
		if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", link.Attrs().Name, err))
		}
	} else if !isLinkNotFound(err) {
		errs = append(errs, err)
	}
	if err := unpinNetNS(m.netnsPath(id)); err != nil {
		errs = append(errs, err)
	}
	m.mu.Lock()
	hadPorts, err := m.release(id)
	if err != nil {
		errs = append(errs, err)
	}
	if hadPorts {
		if err := m.syncRules(); err != nil {
			errs = append(errs, fmt.Errorf("hostPort rules: %w", err))
		}
	}
	m.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network teardown of %s: %w", id, err)
	}
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// Status returns the IP of pod id if it has one.
func (m *Manager) Status(id string) (podIP string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pods[id]; p != nil {
		return p.ip.String(), true
	}
	return "", false
}

// IDs lists the pods that have a network (allocated address or pinned
// namespace), sorted.
func (m *Manager) IDs() []string {
	set := m.knownIDs()
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (m *Manager) knownIDs() map[string]bool {
	set := map[string]bool{}
	m.mu.Lock()
	for id := range m.pods {
		set[id] = true
	}
	m.mu.Unlock()
	for _, d := range []string{"netns", "ports"} {
		es, _ := os.ReadDir(filepath.Join(m.cfg.StateDir, d))
		for _, e := range es {
			id := strings.TrimSuffix(e.Name(), ".json")
			if validID(id) == nil && !strings.HasSuffix(id, ".tmp") {
				set[id] = true
			}
		}
	}
	return set
}

// GC tears down the network of every pod not in keep, and removes veths
// on the bridge that belong to none of them (leftovers of a crash).
func (m *Manager) GC(keep map[string]bool) error {
	var errs []error
	for id := range m.knownIDs() {
		if !keep[id] {
			if err := m.Teardown(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if br, err := netlink.LinkByName(m.cfg.BridgeName); err == nil {
		kept := map[string]bool{}
		for id := range keep {
			kept[vethName(id)] = true
		}
		links, err := netlink.LinkList()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, err)
		}
		for _, l := range links {
			a := l.Attrs()
			if a.MasterIndex == br.Attrs().Index && l.Type() == "veth" && strings.HasPrefix(a.Name, "veth") && !kept[a.Name] {
				if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Cleanup tears down every pod network and removes the bridge and the
// nftables table: the node network is as before the first SetPodCIDR
// (forwarding stays on). The Manager is not ready afterwards.
func (m *Manager) Cleanup() error {
	errs := []error{m.GC(nil)}
	m.mu.Lock()
	m.podNet, m.gateway, m.built = nil, nil, false
	errs = append(errs, m.deleteTable())
	m.mu.Unlock()
	if link, err := netlink.LinkByName(m.cfg.BridgeName); err == nil {
		if link.Type() == "bridge" {
			if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) {
				errs = append(errs, err)
			}
		}
	} else if !isLinkNotFound(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func ipToUint(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func uintToIP(n uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, n)
	return ip
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}
