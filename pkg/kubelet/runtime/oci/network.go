package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/network"
)

// SetPodCIDR gives the runtime's pod network the node's pod CIDR
// (Node.spec.podCIDR; the first IPv4 CIDR of a comma-separated list), as
// CRI's UpdateRuntimeConfig does. Until then sandboxes of pods that are not
// hostNetwork fail with "network is not ready". Idempotent and cheap: call
// it on every node update. Without a pod network it does nothing.
func (r *Runtime) SetPodCIDR(cidr string) error {
	if r.opts.Network == nil || strings.TrimSpace(cidr) == "" {
		return nil
	}
	var first string
	for _, c := range strings.Split(cidr, ",") {
		c = strings.TrimSpace(c)
		if ip, _, err := net.ParseCIDR(c); err == nil && ip.To4() != nil {
			first = c
			break
		}
	}
	if first == "" {
		return fmt.Errorf("pod CIDR %q: no IPv4 CIDR (IPv6 pod networks are not supported)", cidr)
	}
	return r.opts.Network.SetPodCIDR(first)
}

// NetworkReady returns nil when pod sandboxes can get a network (always
// without a pod network), else why not (CRI's NetworkReady condition).
func (r *Runtime) NetworkReady() error {
	if r.opts.Network == nil {
		return nil
	}
	return r.opts.Network.Ready()
}

func portMappings(ports []runtime.PortMapping) []network.PortMapping {
	var out []network.PortMapping
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		out = append(out, network.PortMapping{Protocol: p.Protocol, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP})
	}
	return out
}

// restoreNetwork, after an agent restart, finishes the removal of
// sandboxes whose host-runtime sandbox is gone (a removal interrupted
// after that step) and tears down the networks of sandboxes that no longer
// exist. Best effort: what fails is retried at the next start.
func (r *Runtime) restoreNetwork(ctx context.Context) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.sandboxes))
	for id := range r.sandboxes {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	keep := map[string]bool{}
	for _, id := range ids {
		if _, err := r.shims.PodSandboxStatus(ctx, id); errors.Is(err, runtime.ErrNotFound) && len(r.sandboxContainers(id)) == 0 {
			r.mu.Lock()
			delete(r.sandboxes, id)
			r.mu.Unlock()
			r.cleanupSandboxDir(r.sandboxDir(id))
			continue
		}
		keep[id] = true
	}
	if r.opts.Network != nil {
		_ = r.opts.Network.GC(keep)
	}
}

// dialInNetNS connects to port on the loopback interface of the network
// namespace at path (IPv4 first). The socket is made on a thread in that
// namespace and stays there; the thread goes back to the host namespace
// (or, if it cannot, exits).
func dialInNetNS(ctx context.Context, path string, port int32) (*net.TCPConn, error) {
	type result struct {
		conn *net.TCPConn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			goruntime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			goruntime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			goruntime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		var d net.Dialer
		var errs []error
		var conn *net.TCPConn
		for _, addr := range []string{"127.0.0.1", "::1"} {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(int(port))))
			if err == nil {
				conn = c.(*net.TCPConn)
				break
			}
			errs = append(errs, err)
		}
		if netns.Set(orig) == nil {
			goruntime.UnlockOSThread()
		}
		if conn == nil {
			done <- result{err: fmt.Errorf("failed to connect to localhost:%d inside namespace %q: %w", port, path, errors.Join(errs...))}
			return
		}
		done <- result{conn: conn}
	}()
	res := <-done
	return res.conn, res.err
}
