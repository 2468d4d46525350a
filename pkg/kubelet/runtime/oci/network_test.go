package oci

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/network"
)

// newNetworkRuntime is a test runtime with a pod network on a bridge of
// its own (pod CIDR 10.214.N.0/24 unless notReady). Sandboxes, the
// runtime and then the network are removed when the test ends, and the
// network is checked to have left nothing behind.
func newNetworkRuntime(t *testing.T, notReady bool) (*Runtime, *network.Manager, string) {
	t.Helper()
	setup(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	stateDir := t.TempDir()
	nm, err := network.New(network.Config{BridgeName: "k1so" + hex.EncodeToString(b[:]), StateDir: stateDir, ClusterCIDR: "10.214.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nm.Cleanup(); err != nil {
			t.Errorf("network cleanup: %v", err)
		}
		if _, err := netlink.LinkByName(nm.BridgeName()); err == nil {
			t.Errorf("bridge %s left", nm.BridgeName())
		}
		assertNoNetns(t, stateDir)
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		RootDir:      t.TempDir(),
		Images:       fixture.store,
		ShimBinary:   exe,
		ShimEnv:      []string{shimEnv + "=1"},
		HostIP:       "127.0.0.1",
		CgroupParent: "/" + testCgroupParent,
		Network:      nm,
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cidr := ""
	if !notReady {
		n, _ := rand.Int(rand.Reader, big.NewInt(250))
		cidr = fmt.Sprintf("10.214.%d.0/24", n.Int64()+2)
		if err := r.SetPodCIDR(cidr); err != nil {
			t.Fatal(err)
		}
	}
	return r, nm, stateDir
}

// assertNoNetns checks that no pinned namespace file or mount is left in
// the network's state directory.
func assertNoNetns(t *testing.T, stateDir string) {
	t.Helper()
	if es, _ := os.ReadDir(filepath.Join(stateDir, "netns")); len(es) > 0 {
		t.Errorf("netns files left: %v", es)
	}
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], stateDir) {
			t.Errorf("mount left: %s", f[4])
		}
	}
}

// bridgePorts lists the interfaces on the bridge.
func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func podSandbox(t *testing.T, r *Runtime, name string, hostNetwork bool) string {
	t.Helper()
	sb, err := r.RunPodSandbox(context.Background(), &runtime.PodSandboxConfig{UID: newID()[:8], Name: name, Namespace: "net", Hostname: name, HostNetwork: hostNetwork})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.RemovePodSandbox(context.Background(), sb) })
	return sb
}

// startContainer starts a long-running busybox container running script.
func startContainer(t *testing.T, r *Runtime, sb, script string) string {
	t.Helper()
	ctx := context.Background()
	id, err := r.CreateContainer(ctx, sb, &runtime.ContainerConfig{Name: "c" + newID()[:6], Image: fixture.image,
		Command: []string{"sh", "-c", script}, LogPath: filepath.Join(t.TempDir(), "0.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// httpGet fetches url, retrying until the server answers or 10 s passed.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webServer serves the pod's hostname on 8080 and "local" on
// 127.0.0.1:9090 (busybox httpd; the second one in the background).
const webServer = `mkdir -p /www /lo && hostname > /www/index.html && echo local > /lo/index.html &&
httpd -p 127.0.0.1:9090 -h /lo && exec httpd -f -p 8080 -h /www`

func TestPodNetwork(t *testing.T) {
	r, nm, _ := newNetworkRuntime(t, false)
	ctx := context.Background()
	_, podNet, _ := net.ParseCIDR(nm.PodCIDR())
	ips := map[string]string{}
	sbs := map[string]string{}
	for _, name := range []string{"web-a", "web-b"} {
		sb := podSandbox(t, r, name, false)
		st, err := r.PodSandboxStatus(ctx, sb)
		if err != nil {
			t.Fatal(err)
		}
		if !podNet.Contains(net.ParseIP(st.IP)) {
			t.Fatalf("%s: sandbox IP %q not in %s", name, st.IP, podNet)
		}
		sbs[name], ips[name] = sb, st.IP
		startContainer(t, r, sb, webServer)
	}
	if ips["web-a"] == ips["web-b"] {
		t.Fatalf("both sandboxes got %s", ips["web-a"])
	}
	list, err := r.ListPodSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if want := ips[st.Name]; st.IP != want {
			t.Errorf("ListPodSandboxes: %s has IP %q, want %q", st.Name, st.IP, want)
		}
	}
	// Both pods listen on 8080; the host reaches each at its IP (as the
	// kubelet's HTTP and TCP probes do); hostname is the pod's name.
	for name, ip := range ips {
		if got := httpGet(t, "http://"+net.JoinHostPort(ip, "8080")+"/"); got != name+"\n" {
			t.Errorf("GET %s:8080 = %q, want %q", ip, got, name+"\n")
		}
	}
	// A listener on the pod's 127.0.0.1 is not reachable from outside.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(ips["web-a"], "9090"), time.Second); err == nil {
		c.Close()
		t.Errorf("127.0.0.1:9090 in the pod is reachable at the pod IP")
	}
	// A second container of the pod shares its network; /etc/hosts names
	// the pod IP.
	c2 := startContainer(t, r, sbs["web-a"], "exec sleep 3600")
	for _, tc := range []struct {
		name string
		cmd  []string
		want string
	}{
		{"loopback shared", []string{"wget", "-qO-", "http://127.0.0.1:9090/"}, "local\n"},
		{"other pod", []string{"wget", "-qO-", "http://" + ips["web-b"] + ":8080/"}, "web-b\n"},
		{"hosts", []string{"grep", "web-a", "/etc/hosts"}, ips["web-a"] + "\tweb-a\n"},
		{"hostname", []string{"hostname"}, "web-a\n"},
		{"eth0", []string{"sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9./]*'"}, "inet " + ips["web-a"] + "/24\n"},
	} {
		out, stderr, code, err := r.ExecSync(ctx, c2, tc.cmd, 10*time.Second)
		if err != nil || code != 0 || string(out) != tc.want {
			t.Errorf("%s: %q (stderr %q) exit %d %v, want %q", tc.name, out, stderr, code, err, tc.want)
		}
	}
	// PortForward reaches the 127.0.0.1-only listener inside the pod.
	client, server := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := r.PortForward(ctx, sbs["web-a"], 9090, server)
		server.Close() // as the kubelet closes the stream
		errc <- err
	}()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(client, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(client)
	if err := <-errc; err != nil {
		t.Errorf("PortForward: %v", err)
	}
	client.Close()
	if !strings.HasSuffix(string(resp), "\r\n\r\nlocal\n") {
		t.Errorf("port-forwarded response %q", resp)
	}
	if err := r.PortForward(ctx, sbs["web-a"], 9091, nopStream{}); err == nil || !strings.Contains(err.Error(), "failed to connect to localhost:9091") {
		t.Errorf("PortForward to a closed port: %v", err)
	}

	// A stopped sandbox keeps its IP until removal.
	if err := r.StopPodSandbox(ctx, sbs["web-b"]); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.PodSandboxStatus(ctx, sbs["web-b"]); st == nil || st.IP != ips["web-b"] {
		t.Errorf("stopped sandbox status %+v", st)
	}
	for _, sb := range sbs {
		if err := r.RemovePodSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	if ports := bridgePorts(t, nm.BridgeName()); len(ports) > 0 {
		t.Errorf("veths left on the bridge: %v", ports)
	}
	if ids := nm.IDs(); len(ids) > 0 {
		t.Errorf("networks left: %v", ids)
	}
}

type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopStream) Write(p []byte) (int, error) { return len(p), nil }
func (nopStream) Close() error                { return nil }

func TestPodNetworkHostNetwork(t *testing.T) {
	r, nm, stateDir := newNetworkRuntime(t, false)
	sb := podSandbox(t, r, "hostnet", true)
	st, err := r.PodSandboxStatus(context.Background(), sb)
	if err != nil || st.IP != "127.0.0.1" {
		t.Errorf("hostNetwork sandbox status %+v %v, want HostIP", st, err)
	}
	if ids := nm.IDs(); len(ids) > 0 {
		t.Errorf("a hostNetwork sandbox got a network: %v", ids)
	}
	assertNoNetns(t, stateDir)
}

func TestPodNetworkNotReady(t *testing.T) {
	r, _, _ := newNetworkRuntime(t, true)
	ctx := context.Background()
	_, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: "nr", Name: "nr", Namespace: "net"})
	if !errors.Is(err, network.ErrNotReady) || !strings.Contains(err.Error(), "network is not ready") {
		t.Errorf("RunPodSandbox before the pod CIDR: %v", err)
	}
	if err := r.NetworkReady(); !errors.Is(err, network.ErrNotReady) {
		t.Errorf("NetworkReady: %v", err)
	}
	if list, _ := r.ListPodSandboxes(ctx); len(list) != 0 {
		t.Errorf("a failed sandbox is listed: %+v", list)
	}
	// hostNetwork pods run before the pod CIDR is known.
	podSandbox(t, r, "hostnet", true)
}

// TestPodNetworkAdoption: a new runtime on the same state keeps the
// network of its sandboxes and tears down those of sandboxes that are gone.
func TestPodNetworkAdoption(t *testing.T) {
	r, nm, _ := newNetworkRuntime(t, false)
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: "adopt", Name: "adopt", Namespace: "net"})
	if err != nil {
		t.Fatal(err)
	}
	owner := r
	t.Cleanup(func() {
		if owner != nil {
			_ = owner.RemovePodSandbox(context.Background(), sb)
		}
	})
	startContainer(t, r, sb, webServer)
	st, _ := r.PodSandboxStatus(ctx, sb)
	if got := httpGet(t, "http://"+net.JoinHostPort(st.IP, "8080")+"/"); got != "adopt\n" {
		t.Fatalf("before restart: %q", got)
	}
	// A network whose sandbox is gone (a crash between Setup and the
	// sandbox record).
	if _, _, err := nm.Setup(ctx, "stale", network.SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r2, err := New(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	owner = nil
	t.Cleanup(func() {
		_ = r2.RemovePodSandbox(context.Background(), sb)
		r2.Close()
	})
	st2, err := r2.PodSandboxStatus(ctx, sb)
	if err != nil || st2.IP != st.IP {
		t.Fatalf("after restart: %+v %v, want IP %s", st2, err, st.IP)
	}
	if ids := nm.IDs(); len(ids) != 1 || ids[0] != sb {
		t.Errorf("networks after restart: %v, want only %s", ids, sb)
	}
	if got := httpGet(t, "http://"+net.JoinHostPort(st.IP, "8080")+"/"); got != "adopt\n" {
		t.Errorf("after restart: %q", got)
	}
	if err := r2.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if ids := nm.IDs(); len(ids) != 0 {
		t.Errorf("networks after removal: %v", ids)
	}
}
