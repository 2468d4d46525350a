package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The kernel tests build a small network in namespaces of their own, so the
// host is never touched:
//
//	out (192.0.2.1) ──ext0── node (192.0.2.2, the node's address)
//	                          ├─ vp1 ── pod1 (10.42.0.11)
//	                          ├─ vp2 ── pod2 (10.42.0.12)
//	                          └─ ...
//
// Pods are routed (a /32 each, gateway 10.42.0.1 on the node's side of
// every veth), so pod-to-pod traffic crosses the node's IP stack and
// br_netfilter plays no part.
type testNet struct {
	t    testing.TB
	node netns.NsHandle
	out  netns.NsHandle
	pods map[string]netns.NsHandle
	ips  map[string]net.IP
	n    int
}

const (
	testNodeIP = "192.0.2.2"
	testOutIP  = "192.0.2.1"
)

func requireRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
}

// inNS runs f on a thread in ns. The thread is never given back to the Go
// scheduler (it ends with its goroutine), so no other goroutine can run in
// the namespace by accident. Sockets f creates stay in ns.
func inNS(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				errc <- err
				return
			}
		}
		errc <- f()
	}()
	return <-errc
}

// newNetns makes an empty network namespace, closed at the end of the test
// (it disappears with its last reference).
func newNetns(t testing.TB) netns.NsHandle {
	var ns netns.NsHandle
	err := inNS(netns.None(), func() error {
		var err error
		ns, err = netns.New() // this thread's namespace; the thread ends with it
		if err == nil {
			err = setSysctl("net/ipv4/ip_forward", "1")
		}
		for _, c := range []string{"all", "default"} {
			if err == nil {
				err = setSysctl("net/ipv4/conf/"+c+"/rp_filter", "0")
			}
		}
		if err == nil {
			var lo netlink.Link
			if lo, err = netlink.LinkByName("lo"); err == nil {
				err = netlink.LinkSetUp(lo)
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func setSysctl(name, value string) error {
	return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
}

func newTestNet(t testing.TB) *testNet {
	requireRoot(t)
	tn := &testNet{t: t, node: newNetns(t), out: newNetns(t), pods: map[string]netns.NsHandle{}, ips: map[string]net.IP{}}
	tn.link("ext0", tn.out, "ext0")
	tn.run(tn.node, func(h *netlink.Handle) error {
		if err := addAddr(h, "ext0", testNodeIP+"/24"); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{Gw: net.ParseIP(testOutIP)})
	})
	tn.run(tn.out, func(h *netlink.Handle) error { return addAddr(h, "ext0", testOutIP+"/24") })
	return tn
}

// link creates a veth pair: nodeName in the node namespace, peerName in
// peer, both up.
func (tn *testNet) link(nodeName string, peer netns.NsHandle, peerName string) {
	tn.run(tn.node, func(h *netlink.Handle) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nodeName}, PeerName: peerName, PeerNamespace: netlink.NsFd(int(peer))}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s: %w", nodeName, err)
		}
		l, err := h.LinkByName(nodeName)
		if err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
	tn.run(peer, func(h *netlink.Handle) error {
		l, err := h.LinkByName(peerName)
		if err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
}

// addPod adds a pod namespace with address ip.
func (tn *testNet) addPod(name, ip string) netns.NsHandle {
	tn.n++
	ns := newNetns(tn.t)
	hostSide := fmt.Sprintf("vp%d", tn.n)
	tn.link(hostSide, ns, "eth0")
	tn.run(ns, func(h *netlink.Handle) error {
		if err := addAddr(h, "eth0", ip+"/32"); err != nil {
			return err
		}
		l, _ := h.LinkByName("eth0")
		gw := net.ParseIP("10.42.0.1")
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw})
	})
	tn.run(tn.node, func(h *netlink.Handle) error {
		if err := addAddr(h, hostSide, "10.42.0.1/32"); err != nil {
			return err
		}
		l, _ := h.LinkByName(hostSide)
		return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK})
	})
	tn.pods[name] = ns
	tn.ips[name] = net.ParseIP(ip)
	return ns
}

// addBridgedPod adds a pod namespace with address ip (in 10.42.1.0/24) on
// the node's bridge br0 (10.42.1.1), made on first use.
func (tn *testNet) addBridgedPod(name, ip string) netns.NsHandle {
	tn.run(tn.node, func(h *netlink.Handle) error {
		if _, err := h.LinkByName("br0"); err == nil {
			return nil
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return err
		}
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := addAddr(h, "br0", "10.42.1.1/24"); err != nil {
			return err
		}
		return h.LinkSetUp(br)
	})
	tn.n++
	ns := newNetns(tn.t)
	hostSide := fmt.Sprintf("vb%d", tn.n)
	tn.link(hostSide, ns, "eth0")
	tn.run(tn.node, func(h *netlink.Handle) error {
		l, err := h.LinkByName(hostSide)
		if err != nil {
			return err
		}
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		return h.LinkSetMaster(l, br)
	})
	tn.run(ns, func(h *netlink.Handle) error {
		if err := addAddr(h, "eth0", ip+"/24"); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.42.1.1")})
	})
	tn.pods[name] = ns
	tn.ips[name] = net.ParseIP(ip)
	return ns
}

func (tn *testNet) run(ns netns.NsHandle, f func(h *netlink.Handle) error) {
	tn.t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer h.Close()
	if err := f(h); err != nil {
		tn.t.Fatal(err)
	}
}

func addAddr(h *netlink.Handle, dev, cidr string) error {
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	return h.AddrAdd(l, a)
}

// serveName listens on addr in ns and answers every connection with name.
// It stops at the end of the test.
func serveName(t testing.TB, ns netns.NsHandle, addr, name string) {
	var l net.Listener
	if err := inNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, name)
			}()
		}
	}()
}

// serveNameUDP answers every datagram on addr in ns with name.
func serveNameUDP(t testing.TB, ns netns.NsHandle, addr, name string) {
	var pc net.PacketConn
	if err := inNS(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
}

// ask sends a datagram on c and returns the answer.
func ask(c net.Conn) (string, error) {
	if _, err := c.Write([]byte("?")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// dialer dials from a namespace. Its sockets are made on one locked thread
// in the namespace, kept for the dialer's life.
type dialer struct {
	calls chan func()
	done  chan struct{}
}

func newDialer(t testing.TB, ns netns.NsHandle) *dialer {
	d := &dialer{calls: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(ns); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for {
			select {
			case f := <-d.calls:
				f()
			case <-d.done:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(d.done) })
	return d
}

// socket creates a TCP socket in the dialer's namespace and connects it to
// addr (the connect waits on the netpoller, off the thread).
func (d *dialer) dial(addr string, timeout time.Duration) (net.Conn, error) {
	return d.dialNet("tcp4", addr, timeout)
}

func (d *dialer) dialNet(network, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d.calls <- func() {
		// DialContext makes the socket on this thread before waiting.
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		res <- result{c, err}
	}
	r := <-res
	return r.c, r.err
}

// get connects to addr and returns what the server says: its name.
func (d *dialer) get(addr string) (string, error) {
	c, err := d.dial(addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// eventually retries f until it returns nil or the time is up.
func eventually(t testing.TB, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errUnexpected = errors.New("unexpected")
