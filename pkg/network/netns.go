package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// pinNewNetNS creates a network namespace and keeps it alive without a
// process by bind-mounting it on path (as `ip netns add` and CNI's ns
// package do). The namespace is made on a thread of its own that exits
// afterwards, so no goroutine ever runs in it.
func pinNewNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and with it
		// the thread's membership of the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("pin network namespace at %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// unpinNetNS unmounts and removes a pinned namespace; the namespace goes
// away with the last process in it. A missing path is not an error.
func unpinNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// isNetNSMount tells whether path is a pinned network namespace.
func isNetNSMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// plumb connects the namespace at path to the bridge: a veth pair whose
// pod side is eth0 with ip, lo up, a default route via gw.
func (m *Manager) plumb(id, path string, ip net.IP, podNet *net.IPNet, gw net.IP) error {
	br, err := netlink.LinkByName(m.cfg.BridgeName)
	if err != nil {
		return fmt.Errorf("%w: bridge %s: %v", ErrNotReady, m.cfg.BridgeName, err)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer ns.Close()

	attrs := netlink.NewLinkAttrs()
	attrs.Name = vethName(id)
	attrs.MTU = m.cfg.MTU
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns)), PeerTxQLen: -1}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", attrs.Name, err)
	}
	host, err := netlink.LinkByName(attrs.Name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", attrs.Name, m.cfg.BridgeName, err)
	}
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", attrs.Name, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: podNet.Mask}}); err != nil {
		return fmt.Errorf("address %s: %w", ip, err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	def := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: def, Gw: gw}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}
