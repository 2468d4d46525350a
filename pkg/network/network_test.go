package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pod networks need root")
	}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// testCIDR is a pod CIDR in 10.213.0.0/16 with a random third octet.
func testCIDR(prefix int) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	return fmt.Sprintf("10.213.%d.0/%d", n.Int64()+2, prefix)
}

// newTestManager is a Manager on a bridge of the test's own; everything
// it made is removed (and checked gone) when the test ends, failed or not.
func newTestManager(t *testing.T, cidr string) *Manager {
	t.Helper()
	requireRoot(t)
	m, err := New(Config{BridgeName: "k1st" + randHex(6), StateDir: t.TempDir(), ClusterCIDR: "10.213.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		assertNothingLeft(t, m)
	})
	if cidr != "" {
		if err := m.SetPodCIDR(cidr); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// assertNothingLeft checks that no bridge, table, mount or pinned
// namespace of m remains.
func assertNothingLeft(t *testing.T, m *Manager) {
	t.Helper()
	if _, err := netlink.LinkByName(m.cfg.BridgeName); err == nil {
		t.Errorf("bridge %s still exists", m.cfg.BridgeName)
	}
	if tableExists(t, m.cfg.TableName) {
		t.Errorf("nftables table %s still exists", m.cfg.TableName)
	}
	if ms := mountsUnder(t, m.cfg.StateDir); len(ms) > 0 {
		t.Errorf("mounts left: %q", ms)
	}
	if es, _ := os.ReadDir(filepath.Join(m.cfg.StateDir, "netns")); len(es) > 0 {
		t.Errorf("netns files left: %v", es)
	}
}

func tableExists(t *testing.T, name string) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// inNetNS runs f on a thread in the namespace at path.
func inNetNS(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread dies with the goroutine
		errc <- err
	}()
	return <-errc
}

// serveIn listens on addr in the namespace at path; each connection gets
// greeting.
func serveIn(t *testing.T, path, addr, greeting string) {
	t.Helper()
	var l net.Listener
	if err := inNetNS(path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, greeting)
			c.Close()
		}
	}()
}

// fetch dials addr (from the namespace at path, or the host when path
// is "") and returns what the server says.
func fetch(path, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	}
	var err error
	if path == "" {
		err = dial()
	} else {
		err = inNetNS(path, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	data, err := io.ReadAll(c)
	return string(data), err
}

func gateway(m *Manager) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gateway.String()
}

func TestNotReady(t *testing.T) {
	m, err := New(Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = m.Setup(context.Background(), "pod1", SetupOptions{})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "network is not ready: the node has no pod CIDR yet") {
		t.Errorf("Setup before the pod CIDR: %v", err)
	}
	if err := m.Ready(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Ready: %v", err)
	}
	if err := m.Teardown("pod1"); err != nil {
		t.Errorf("Teardown of an unknown id: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		cidr string
		want string
	}{
		{"no state dir", Config{}, "", "StateDir is required"},
		{"long bridge name", Config{BridgeName: "k1s-bridge-too-long"}, "", "invalid bridge name"},
		{"IPv6 pod CIDR", Config{}, "fd00::/64", "not an IPv4 CIDR"},
		{"tiny pod CIDR", Config{}, "10.213.0.0/31", "too small"},
		{"garbage", Config{}, "ten/8", "invalid CIDR"},
		{"bad cluster CIDR", Config{ClusterCIDR: "x"}, "", "cluster CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if tc.name != "no state dir" {
				cfg.StateDir = t.TempDir()
			}
			m, err := New(cfg)
			if err == nil && tc.cidr != "" {
				err = m.SetPodCIDR(tc.cidr)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestPodToPod(t *testing.T) {
	cidr := testCIDR(24)
	m := newTestManager(t, cidr)
	_, podNet, _ := net.ParseCIDR(cidr)
	ctx := context.Background()
	if err := m.SetPodCIDR(cidr); err != nil { // again: idempotent
		t.Fatal(err)
	}
	// The node network is made for the first pod that needs it.
	if linkExists(m.BridgeName()) {
		t.Errorf("bridge %s exists before any pod needs it", m.BridgeName())
	}
	if _, _, err := m.Setup(ctx, "first", SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown("first"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(data)) != "1" {
		t.Errorf("ip_forward = %q", data)
	}
	br, err := netlink.LinkByName(m.BridgeName())
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != gateway(m)+"/24" {
		t.Errorf("bridge addresses %v, want %s/24", addrs, gateway(m))
	}

	paths, ips := map[string]string{}, map[string]string{}
	for _, id := range []string{"a", "b"} {
		path, ip, err := m.Setup(ctx, id, SetupOptions{})
		if err != nil {
			t.Fatalf("Setup %s: %v", id, err)
		}
		paths[id], ips[id] = path, ip
		if !podNet.Contains(net.ParseIP(ip)) || ip == gateway(m) || strings.HasSuffix(ip, ".0") || strings.HasSuffix(ip, ".255") {
			t.Errorf("pod %s got %s in %s", id, ip, cidr)
		}
		if got, ok := m.Status(id); !ok || got != ip {
			t.Errorf("Status(%s) = %q %v, want %s", id, got, ok, ip)
		}
		// Setup again returns the same network.
		if p2, ip2, err := m.Setup(ctx, id, SetupOptions{}); err != nil || p2 != path || ip2 != ip {
			t.Errorf("second Setup of %s: %s %s %v", id, p2, ip2, err)
		}
		link, err := netlink.LinkByName(vethName(id))
		if err != nil {
			t.Fatalf("host veth of %s: %v", id, err)
		}
		if link.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("veth %s is not on the bridge", link.Attrs().Name)
		}
		if pi, err := netlink.LinkGetProtinfo(link); err != nil || !pi.Hairpin {
			t.Errorf("hairpin on %s: %+v %v", link.Attrs().Name, pi, err)
		}
		serveIn(t, path, ":8080", "hello from "+id)
	}
	if ips["a"] == ips["b"] {
		t.Fatalf("both pods got %s", ips["a"])
	}
	for _, tc := range []struct {
		name, from, to string
	}{
		{"host to a", "", "a"},
		{"host to b", "", "b"},
		{"b to a", paths["b"], "a"},
		{"a to b", paths["a"], "b"},
		{"a to itself", paths["a"], "a"},
	} {
		got, err := fetch(tc.from, net.JoinHostPort(ips[tc.to], "8080"))
		if err != nil || got != "hello from "+tc.to {
			t.Errorf("%s: %q %v", tc.name, got, err)
		}
	}
	// A pod's own loopback is its own.
	if err := inNetNS(paths["a"], func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			l.Close()
		}
		return err
	}); err != nil {
		t.Errorf("loopback in the pod: %v", err)
	}

	for _, id := range []string{"a", "b"} {
		if err := m.Teardown(id); err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(id); err != nil {
			t.Errorf("second Teardown: %v", err)
		}
		if _, err := netlink.LinkByName(vethName(id)); err == nil {
			t.Errorf("veth of %s left", id)
		}
		if _, err := os.Stat(paths[id]); !os.IsNotExist(err) {
			t.Errorf("netns of %s left: %v", id, err)
		}
		if _, ok := m.Status(id); ok {
			t.Errorf("%s still has an address", id)
		}
	}
	if ms := mountsUnder(t, m.cfg.StateDir); len(ms) > 0 {
		t.Errorf("mounts left after Teardown: %q", ms)
	}
	if es, _ := os.ReadDir(filepath.Join(m.cfg.StateDir, "ipam")); len(es) != 1 || es[0].Name() != lastFile {
		t.Errorf("ipam files left: %v", es)
	}
}

func TestHostPort(t *testing.T) {
	m := newTestManager(t, testCIDR(24))
	ctx := context.Background()
	n, _ := rand.Int(rand.Reader, big.NewInt(10000))
	hostPort := int32(40000 + n.Int64())
	pathA, ipA, err := m.Setup(ctx, "a", SetupOptions{PortMappings: []PortMapping{
		{ContainerPort: 8080, HostPort: hostPort},
		{ContainerPort: 8081}, // no hostPort: nothing to map
	}})
	if err != nil {
		t.Fatal(err)
	}
	pathB, _, err := m.Setup(ctx, "b", SetupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serveIn(t, pathA, ":8080", "a")
	// The gateway is a local address of the node like any other.
	node := net.JoinHostPort(gateway(m), fmt.Sprint(hostPort))
	for _, tc := range []struct{ name, from string }{
		{"from the host", ""},
		{"from another pod", pathB},
		{"from the pod itself (hairpin)", pathA},
	} {
		if got, err := fetch(tc.from, node); err != nil || got != "a" {
			t.Errorf("%s: %q %v", tc.name, got, err)
		}
	}
	// Restarted manager: rules are rebuilt from the state on disk.
	m2, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.SetPodCIDR(m.PodCIDR()); err != nil {
		t.Fatal(err)
	}
	if ip, ok := m2.Status("a"); !ok || ip != ipA {
		t.Errorf("restarted Status(a) = %s %v", ip, ok)
	}
	if got, err := fetch("", node); err != nil || got != "a" {
		t.Errorf("after restart: %q %v", got, err)
	}
	if err := m2.Teardown("a"); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch("", node); err == nil {
		t.Errorf("hostPort still forwarded after Teardown: %q", got)
	}
	if err := m2.Teardown("b"); err != nil {
		t.Fatal(err)
	}
}

func TestIPAM(t *testing.T) {
	cidr := testCIDR(29) // .2 to .6 are handed out
	m := newTestManager(t, cidr)
	ctx := context.Background()
	base := strings.TrimSuffix(cidr, "0/29")
	got := map[string]string{}
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("pod%d", i)
		_, ip, err := m.Setup(ctx, id, SetupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got[id] = ip
		if want := fmt.Sprintf("%s%d", base, i+1); ip != want {
			t.Errorf("%s got %s, want %s", id, ip, want)
		}
	}
	if _, _, err := m.Setup(ctx, "pod6", SetupOptions{}); err == nil || !strings.Contains(err.Error(), "no free IP address") {
		t.Errorf("Setup in a full range: %v", err)
	}
	if _, err := os.Stat(m.netnsPath("pod6")); !os.IsNotExist(err) {
		t.Errorf("a failed Setup left its netns: %v", err)
	}
	if err := m.Teardown("pod3"); err != nil {
		t.Fatal(err)
	}
	if _, ip, err := m.Setup(ctx, "pod6", SetupOptions{}); err != nil || ip != got["pod3"] {
		t.Errorf("Setup after a Teardown: %s %v, want %s", ip, err, got["pod3"])
	}
	got["pod6"] = got["pod3"]
	delete(got, "pod3")

	// A new Manager on the same state (an agent restart).
	m2, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for id, ip := range got {
		if s, ok := m2.Status(id); !ok || s != ip {
			t.Errorf("after restart Status(%s) = %s %v, want %s", id, s, ok, ip)
		}
	}
	if _, _, err := m2.Setup(ctx, "pod7", SetupOptions{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("Setup before the restarted manager has a pod CIDR: %v", err)
	}
	if err := m2.SetPodCIDR(cidr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m2.Setup(ctx, "pod7", SetupOptions{}); err == nil {
		t.Errorf("the restarted manager handed out an allocated address")
	}
	// GC keeps pod2 and pod4 only.
	if err := m2.GC(map[string]bool{"pod2": true, "pod4": true}); err != nil {
		t.Fatal(err)
	}
	if ids := m2.IDs(); strings.Join(ids, ",") != "pod2,pod4" {
		t.Errorf("after GC: %v", ids)
	}
	for _, id := range []string{"pod1", "pod5", "pod6"} {
		if _, err := netlink.LinkByName(vethName(id)); err == nil {
			t.Errorf("GC left the veth of %s", id)
		}
		if _, err := os.Stat(m2.netnsPath(id)); !os.IsNotExist(err) {
			t.Errorf("GC left the netns of %s", id)
		}
	}
	if _, err := netlink.LinkByName(vethName("pod2")); err != nil {
		t.Errorf("GC removed a kept pod's veth: %v", err)
	}
	// A stray veth on the bridge (a crash between the veth and its
	// allocation) goes too.
	br, _ := netlink.LinkByName(m2.BridgeName())
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MasterIndex = vethName("stray"), br.Attrs().Index
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "k1st" + randHex(6)}); err != nil {
		t.Fatal(err)
	}
	if err := m2.GC(map[string]bool{"pod2": true, "pod4": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(attrs.Name); err == nil {
		t.Errorf("GC left a stray veth")
		_ = netlink.LinkDel(&netlink.Veth{LinkAttrs: attrs})
	}
	// m's Cleanup (registered by newTestManager) tears down the rest.
}

func TestConcurrentSetup(t *testing.T) {
	m := newTestManager(t, testCIDR(24))
	const n = 12
	var wg sync.WaitGroup
	ips := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, ips[i], errs[i] = m.Setup(context.Background(), fmt.Sprintf("c%d", i), SetupOptions{})
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("Setup c%d: %v", i, errs[i])
			continue
		}
		if seen[ips[i]] {
			t.Errorf("%s handed out twice", ips[i])
		}
		seen[ips[i]] = true
	}
}

func TestRules(t *testing.T) {
	m := newTestManager(t, testCIDR(24))
	if _, _, err := m.Setup(context.Background(), "first", SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Name: m.TableName(), Family: nftables.TableFamilyIPv4}
	count := func(chain string) int {
		rules, err := c.GetRules(tb, &nftables.Chain{Name: chain, Table: tb})
		if err != nil {
			t.Fatalf("rules of %s: %v", chain, err)
		}
		return len(rules)
	}
	for _, tc := range []struct {
		chain string
		want  int
	}{{"prerouting", 1}, {"output", 1}, {"hostports", 0}, {"postrouting", 1}} {
		if got := count(tc.chain); got != tc.want {
			t.Errorf("%s: %d rules, want %d", tc.chain, got, tc.want)
		}
	}
	if _, _, err := m.Setup(context.Background(), "p", SetupOptions{PortMappings: []PortMapping{
		{ContainerPort: 80, HostPort: 48080}, {Protocol: "udp", ContainerPort: 53, HostPort: 48053, HostIP: "192.0.2.2"},
	}}); err != nil {
		t.Fatal(err)
	}
	if got := count("hostports"); got != 2 {
		t.Errorf("hostports: %d rules, want 2", got)
	}
	if got := count("postrouting"); got != 2 {
		t.Errorf("postrouting: %d rules, want 2 (hairpin + masquerade)", got)
	}
	if err := m.Teardown("p"); err != nil {
		t.Fatal(err)
	}
	if got := count("hostports"); got != 0 {
		t.Errorf("hostports after Teardown: %d rules", got)
	}
}

// reachability dials addr (from the namespace at path, or the host) and
// tells whether an answer came back: connected or refused.
func reachability(path, addr string) (bool, error) {
	var err error
	dial := func() error {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if c != nil {
			c.Close()
		}
		return nil
	}
	if path == "" {
		_ = dial()
	} else if e := inNetNS(path, dial); e != nil {
		return false, e
	}
	return err == nil || errors.Is(err, syscall.ECONNREFUSED), err
}

// TestMasquerade: a pod reaches the host's default gateway (outside the
// cluster CIDR) with the node's address, when the host itself gets an
// answer from it.
func TestMasquerade(t *testing.T) {
	requireRoot(t)
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var gw net.IP
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			gw = r.Gw
		}
	}
	if gw == nil {
		t.Skip("no default route")
	}
	addr := net.JoinHostPort(gw.String(), "53")
	if ok, err := reachability("", addr); !ok {
		t.Skipf("the host gets no answer from %s: %v", addr, err)
	}
	m := newTestManager(t, testCIDR(24))
	path, _, err := m.Setup(context.Background(), "p", SetupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := reachability(path, addr); !ok {
		t.Errorf("the pod gets no answer from %s: %v", addr, err)
	}
}
