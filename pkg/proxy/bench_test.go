package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// BenchmarkDataPath compares reaching a pod through a ClusterIP (the kernel
// DNATs the first packet, conntrack the rest) with reaching its IP
// directly, from another pod and from the node:
//
//	conn: a whole connection: connect, read the server's name, close
//	rtt:  a 1-byte echo over a connection kept open
//
// It reports connections (or round trips) per second and the p50 / p99
// latency. Needs root; run with
//
//	go test ./pkg/proxy -run XXX -bench DataPath -benchtime 3s
func BenchmarkDataPath(b *testing.B) {
	tn := newTestNet(b)
	srv := tn.addPod("server", "10.42.0.11")
	srv2 := tn.addPod("server2", "10.42.0.12")
	client := tn.addPod("client", "10.42.0.13")
	serveEcho(b, srv, "10.42.0.11:7")

	// Each case talks to its own server port. Connections come and go
	// faster than TIME_WAIT ends, so client ports are reused; a server
	// accepts a new SYN on a TIME_WAIT tuple only if its timestamp is newer,
	// and a client's timestamps follow the address pair it sees (pod IP or
	// ClusterIP): two cases sharing a server tuple would stall each other.
	type target struct {
		name, addr string
		port       int32
		client     string
	}
	targets := []target{
		{"conn/pod/direct", "10.42.0.11:8080", 8080, "pod"},
		{"conn/pod/clusterip-1-endpoint", "10.43.0.10:80", 8081, "pod"},
		{"conn/pod/clusterip-2-endpoints", "10.43.0.11:80", 8082, "pod"},
		{"conn/pod/clusterip-affinity", "10.43.0.12:80", 8083, "pod"},
		{"conn/node/direct", "10.42.0.11:8084", 8084, "node"},
		{"conn/node/clusterip-1-endpoint", "10.43.0.14:80", 8085, "node"},
	}
	for _, tg := range targets {
		serveName(b, srv, fmt.Sprintf("10.42.0.11:%d", tg.port), "server")
		serveName(b, srv2, fmt.Sprintf("10.42.0.12:%d", tg.port), "server2")
	}
	slice := func(svc string, port int32, ips ...string) *discovery.EndpointSlice {
		var eps []discovery.Endpoint
		for _, ip := range ips {
			eps = append(eps, readyEP(ip, "node1"))
		}
		return endpointSlice(svc, svc+"-1", []discovery.EndpointPort{epPort("", port)}, eps...)
	}
	objects := []runtime.Object{
		service("one", "10.43.0.10", svcPort("", 80, 8081)), slice("one", 8081, "10.42.0.11"),
		service("two", "10.43.0.11", svcPort("", 80, 8082)), slice("two", 8082, "10.42.0.11", "10.42.0.12"),
		withAffinity(service("sticky", "10.43.0.12", svcPort("", 80, 8083)), 600), slice("sticky", 8083, "10.42.0.11", "10.42.0.12"),
		service("echo", "10.43.0.13", svcPort("", 7, 7)), slice("echo", 7, "10.42.0.11"),
		service("fromnode", "10.43.0.14", svcPort("", 80, 8085)), slice("fromnode", 8085, "10.42.0.11"),
	}
	// 100 more Services, so that lookups are not in a one-entry map.
	for i := range 100 {
		name := fmt.Sprintf("filler-%d", i)
		objects = append(objects, service(name, fmt.Sprintf("10.43.1.%d", i), svcPort("", 80, 8080)),
			slice(name, 8080, fmt.Sprintf("10.42.2.%d", i)))
	}
	p, err := New(Options{Client: fake.NewClientset(objects...), NodeName: "node1",
		NodeIPs: []net.IP{net.ParseIP(testNodeIP)}, ClusterCIDR: "10.42.0.0/16",
		TableName: "k1s-proxy-bench", NetNSFd: int(tn.node), BridgeNetfilter: ptr.To(true), RemoveOnExit: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })

	fromPod, fromNode := newDialer(b, client), newDialer(b, tn.node)
	eventually(b, 5*time.Second, "rules in place", func() error {
		_, err := fromPod.get("10.43.0.10:80")
		return err
	})
	dialers := map[string]*dialer{"pod": fromPod, "node": fromNode}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			d := dialers[tg.client]
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if _, err := d.get(tg.addr); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat, "conns/s")
		})
	}
	for _, c := range []struct {
		name string
		d    *dialer
		addr string
	}{
		{"rtt/pod/direct", fromPod, "10.42.0.11:7"},
		{"rtt/pod/clusterip", fromPod, "10.43.0.13:7"},
	} {
		b.Run(c.name, func(b *testing.B) {
			conn, err := c.d.dial(c.addr, 2*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			buf := []byte{0}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat, "rtts/s")
		})
	}
}

func report(b *testing.B, lat []time.Duration, rate string) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(len(lat))/sum.Seconds(), rate)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// serveEcho echoes every connection's bytes back.
func serveEcho(t testing.TB, ns netns.NsHandle, addr string) {
	var l net.Listener
	if err := inNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}
