package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// runProxy runs a proxy programming the test network's node namespace,
// stopped (and its table removed) at the end of the test.
func runProxy(t *testing.T, tn *testNet, objects ...runtime.Object) (*Proxier, *fake.Clientset) {
	cs := fake.NewClientset(objects...)
	p, err := New(Options{
		Client:          cs,
		NodeName:        "node1",
		NodeIPs:         []net.IP{net.ParseIP(testNodeIP)},
		ClusterCIDR:     "10.42.0.0/16",
		ServiceCIDR:     "10.43.0.0/16",
		TableName:       fmt.Sprintf("k1s-proxy-test-%d", time.Now().UnixNano()%1e6),
		MinSyncInterval: 20 * time.Millisecond,
		NetNSFd:         int(tn.node),
		BridgeNetfilter: ptr.To(true), // routed pods: nothing is bridged
		RemoveOnExit:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p, cs
}

func TestKernelDataPath(t *testing.T) {
	tn := newTestNet(t)
	pod1 := tn.addPod("pod1", "10.42.0.11")
	pod2 := tn.addPod("pod2", "10.42.0.12")
	client := tn.addPod("client", "10.42.0.13")
	serveName(t, pod1, "10.42.0.11:8080", "pod1")
	serveName(t, pod2, "10.42.0.12:8080", "pod2")
	serveName(t, client, "10.42.0.13:8080", "client")
	serveName(t, tn.node, testNodeIP+":9090", "host") // a host-runtime pod: the node's address
	serveNameUDP(t, pod1, "10.42.0.11:5353", "pod1")
	serveNameUDP(t, pod2, "10.42.0.12:5353", "pod2")
	udpPorts := []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To[int32](5353), Protocol: ptr.To(v1.ProtocolUDP)}}
	dnsPort := v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromString("dns")}

	ports := []discovery.EndpointPort{epPort("", 8080)}
	both := func(svc string) *discovery.EndpointSlice {
		return endpointSlice(svc, svc+"-abc", ports, readyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1"))
	}
	p, cs := runProxy(t, tn,
		nodePortService("web", "10.43.0.10", 80, 8080, 30080), both("web"),
		withAffinity(service("sticky", "10.43.0.11", svcPort("", 80, 8080)), 600), both("sticky"),
		service("empty", "10.43.0.12", svcPort("", 80, 8080)), endpointSlice("empty", "empty-abc", ports),
		service("host", "10.43.0.13", svcPort("", 80, 9090)),
		endpointSlice("host", "host-abc", []discovery.EndpointPort{epPort("", 9090)}, readyEP(testNodeIP, "node1")),
		loadBalancer(nodePortService("lb", "10.43.0.14", 8081, 8080, 30081), testNodeIP),
		endpointSlice("lb", "lb-abc", ports, readyEP("10.42.0.12", "node1")),
		service("hairpin", "10.43.0.15", svcPort("", 80, 8080)),
		endpointSlice("hairpin", "hairpin-abc", ports, readyEP("10.42.0.11", "node1")),
		service("flip", "10.43.0.16", svcPort("", 80, 8080)), both("flip"),
		service("three", "10.43.0.19", svcPort("", 80, 8080)),
		endpointSlice("three", "three-abc", ports, readyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1"), readyEP("10.42.0.13", "node1")),
		service("remote", "10.43.0.18", svcPort("", 80, 8080)),
		endpointSlice("remote", "remote-abc", ports, readyEP("10.42.0.12", "node2")), // as if on another node
		service("dns", "10.43.0.17", dnsPort), endpointSlice("dns", "dns-abc", udpPorts, readyEP("10.42.0.11", "node1")),
	)
	fromNode, fromPod, fromOut, fromPod1 := newDialer(t, tn.node), newDialer(t, client), newDialer(t, tn.out), newDialer(t, pod1)

	eventually(t, 5*time.Second, "first sync", func() error {
		_, err := fromNode.get("10.43.0.10:80")
		return err
	})
	t.Logf("programmed:\n%s", p.Dump())

	spread := func(t *testing.T, d *dialer, addr string, want ...string) {
		t.Helper()
		seen := map[string]int{}
		for range 40 {
			name, err := d.get(addr)
			if err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
			seen[name]++
		}
		for _, w := range want {
			if seen[w] == 0 {
				t.Fatalf("%s: %s never answered in 40 connections: %v", addr, w, seen)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%s: answered by %v, want only %v", addr, seen, want)
		}
	}
	refused := func(t *testing.T, d *dialer, addr string) {
		t.Helper()
		start := time.Now()
		c, err := d.dial(addr, 2*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected, want connection refused", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%s: %v, want connection refused", addr, err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("%s: refused after %s, want at once", addr, d)
		}
	}

	t.Run("ClusterIP spreads over ready endpoints, from the node and from a pod", func(t *testing.T) {
		spread(t, fromNode, "10.43.0.10:80", "pod1", "pod2")
		spread(t, fromPod, "10.43.0.10:80", "pod1", "pod2")
	})
	t.Run("three endpoints share new connections evenly", func(t *testing.T) {
		seen := map[string]int{}
		for range 300 {
			name, err := fromNode.get("10.43.0.19:80")
			if err != nil {
				t.Fatal(err)
			}
			seen[name]++
		}
		for _, n := range []string{"pod1", "pod2", "client"} {
			// 100 expected, standard deviation 8: far outside means a bias.
			if seen[n] < 55 || seen[n] > 145 {
				t.Fatalf("300 connections spread as %v", seen)
			}
		}
		t.Logf("300 connections: %v", seen)
	})
	t.Run("an endpoint on another node, from the node and from a pod", func(t *testing.T) {
		spread(t, fromNode, "10.43.0.18:80", "pod2")
		spread(t, fromPod, "10.43.0.18:80", "pod2")
	})
	t.Run("NodePort on the node's address, from outside, the node and a pod", func(t *testing.T) {
		spread(t, fromOut, testNodeIP+":30080", "pod1", "pod2")
		spread(t, fromNode, testNodeIP+":30080", "pod1", "pod2")
		spread(t, fromPod, testNodeIP+":30080", "pod1", "pod2")
	})
	t.Run("LoadBalancer ingress serves the service port", func(t *testing.T) {
		spread(t, fromOut, testNodeIP+":8081", "pod2")
		spread(t, fromNode, testNodeIP+":8081", "pod2")
		spread(t, fromPod, "10.43.0.14:8081", "pod2")
	})
	sticky := map[*dialer]string{}
	t.Run("sessionAffinity ClientIP sticks", func(t *testing.T) {
		for _, d := range []*dialer{fromNode, fromPod} {
			first, err := d.get("10.43.0.11:80")
			if err != nil {
				t.Fatal(err)
			}
			spread(t, d, "10.43.0.11:80", first)
			sticky[d] = first
		}
	})
	t.Run("UDP ClusterIP with a named targetPort", func(t *testing.T) {
		c, err := fromPod.dialNet("udp4", "10.43.0.17:53", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if name, err := ask(c); name != "pod1" || err != nil {
			t.Fatalf("got %q, %v; want pod1", name, err)
		}
		// The endpoint moves: the same client flow must follow it (its
		// conntrack entry is forgotten), not keep talking to pod1.
		es := endpointSlice("dns", "dns-abc", udpPorts, readyEP("10.42.0.12", "node1"))
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "the flow moves to pod2", func() error {
			if name, _ := ask(c); name != "pod2" {
				return fmt.Errorf("answered by %q", name)
			}
			return nil
		})
	})
	t.Run("host-runtime endpoint at the node's address", func(t *testing.T) {
		spread(t, fromNode, "10.43.0.13:80", "host")
		spread(t, fromPod, "10.43.0.13:80", "host")
	})
	t.Run("hairpin: a pod reaches itself through its Service", func(t *testing.T) {
		spread(t, fromPod1, "10.43.0.15:80", "pod1")
	})
	t.Run("no endpoints: connection refused at once", func(t *testing.T) {
		refused(t, fromNode, "10.43.0.12:80")
		refused(t, fromPod, "10.43.0.12:80")
	})
	t.Run("a ClusterIP's other ports are refused", func(t *testing.T) {
		refused(t, fromNode, "10.43.0.10:81")
		refused(t, fromPod, "10.43.0.10:81")
	})

	// flipSlice sets the flip Service's endpoints and returns when the
	// update is in the API.
	flipSlice := func(t *testing.T, eps ...discovery.Endpoint) time.Time {
		t.Helper()
		es := endpointSlice("flip", "flip-abc", ports, eps...)
		start := time.Now()
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return start
	}
	// onlyWithin checks that, from a second after start on, every
	// connection reaches want (and, if want is empty, is refused).
	onlyWithin := func(t *testing.T, start time.Time, want string) {
		t.Helper()
		var lastOther time.Duration
		for time.Since(start) < 1500*time.Millisecond {
			name, err := fromPod.get("10.43.0.16:80")
			if want == "" && errors.Is(err, syscall.ECONNREFUSED) || err == nil && name == want {
				continue
			}
			at := time.Since(start)
			if at > time.Second {
				t.Fatalf("%s after the update: got %q, %v; want %q", at, name, err, want)
			}
			lastOther = at
		}
		t.Logf("last connection elsewhere %s after the update", lastOther)
	}
	t.Run("an endpoint turning not ready stops receiving new connections within a second", func(t *testing.T) {
		spread(t, fromPod, "10.43.0.16:80", "pod1", "pod2")
		onlyWithin(t, flipSlice(t, unreadyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1")), "pod2")
	})
	t.Run("a ready endpoint comes back within a second", func(t *testing.T) {
		start := flipSlice(t, readyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1"))
		eventually(t, time.Second, "pod1 answers again", func() error {
			for range 10 {
				if name, _ := fromPod.get("10.43.0.16:80"); name == "pod1" {
					return nil
				}
			}
			return errUnexpected
		})
		t.Logf("pod1 back after %s", time.Since(start))
	})
	t.Run("a terminating endpoint gets no new connections", func(t *testing.T) {
		onlyWithin(t, flipSlice(t, readyEP("10.42.0.11", "node1"), terminatingEP("10.42.0.12", "node1")), "pod1")
	})
	t.Run("endpoints gone: refused within a second", func(t *testing.T) {
		onlyWithin(t, flipSlice(t), "")
	})
	t.Run("affinity survives the table's rewrites", func(t *testing.T) {
		for d, first := range sticky {
			spread(t, d, "10.43.0.11:80", first)
		}
	})
	t.Run("Service deleted: its ClusterIP no longer answers", func(t *testing.T) {
		if err := cs.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "web gone", func() error {
			_, err := fromPod.dial("10.43.0.10:80", 100*time.Millisecond)
			if err == nil {
				return errUnexpected
			}
			return nil
		})
		if strings.Contains(p.Dump(), "10.43.0.10") {
			t.Fatalf("web still programmed:\n%s", p.Dump())
		}
	})
}

// TestKernelBridgedPods: two pods on one bridge, without br_netfilter. A
// pod reaching a Service whose endpoint is the other pod gets its answer
// only because the proxy masquerades it (BridgeNetfilter false): the reply
// then comes back through the node, which undoes the NAT, instead of
// straight across the bridge.
func TestKernelBridgedPods(t *testing.T) {
	tn := newTestNet(t)
	podA := tn.addBridgedPod("a", "10.42.1.2")
	podB := tn.addBridgedPod("b", "10.42.1.3")
	_ = podA
	serveName(t, podB, "10.42.1.3:8080", "b")
	if err := inNS(tn.node, func() error { return setSysctl("net/bridge/bridge-nf-call-iptables", "0") }); err != nil {
		t.Skipf("cannot turn br_netfilter off in the test namespace: %v", err)
	}
	objects := []runtime.Object{
		service("web", "10.43.1.10", svcPort("", 80, 8080)),
		endpointSlice("web", "web-1", []discovery.EndpointPort{epPort("", 8080)}, readyEP("10.42.1.3", "node1")),
	}
	fromA := newDialer(t, podA)
	direct, err := fromA.get("10.42.1.3:8080")
	if err != nil || direct != "b" {
		t.Fatalf("pod a cannot reach pod b directly: %q, %v", direct, err)
	}

	cs := fake.NewClientset(objects...)
	p, err := New(Options{Client: cs, NodeName: "node1", NodeIPs: []net.IP{net.ParseIP(testNodeIP)},
		ClusterCIDR: "10.42.0.0/16", LocalPodCIDR: "10.42.1.0/24", NetNSFd: int(tn.node),
		TableName: "k1s-proxy-bridge-test", BridgeNetfilter: ptr.To(false), RemoveOnExit: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 5*time.Second, "pod a reaches pod b through the Service", func() error {
		name, err := fromA.get("10.43.1.10:80")
		if err != nil {
			return err
		}
		if name != "b" {
			return fmt.Errorf("answered by %q", name)
		}
		return nil
	})
}
