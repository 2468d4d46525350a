package dns

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestNotSyncedIsServfail: until the caches are filled, cluster names get
// SERVFAIL (clients retry) rather than an NXDOMAIN they would cache.
func TestNotSyncedIsServfail(t *testing.T) {
	client := fake.NewClientset(cluster()...)
	release := make(chan struct{})
	client.PrependReactor("list", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	srv, err := New(Options{Client: client, Listen: []string{"127.0.0.1:0"}, Upstreams: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	defer close(release) // before cancel: the informers must see the release

	eventually(t, "listening", func() bool { return len(srv.Addrs()) == 1 })
	addr := srv.Addrs()[0]
	if m := exchange(t, "udp", addr, "web.ns1.svc.cluster.local", mdns.TypeA); m.Rcode != mdns.RcodeServerFailure {
		t.Errorf("before sync: rcode %s, want SERVFAIL", mdns.RcodeToString[m.Rcode])
	}
	select {
	case <-srv.Ready():
		t.Fatal("ready before the caches filled")
	default:
	}
	release <- struct{}{}
	select {
	case <-srv.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready after the caches filled")
	}
	if m := exchange(t, "udp", addr, "web.ns1.svc.cluster.local", mdns.TypeA); len(m.Answer) != 1 {
		t.Errorf("after sync: %v", m)
	}
}

func TestRunBindError(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	srv, err := New(Options{
		Client:    fake.NewClientset(),
		Listen:    []string{"127.0.0.1:0", busy.LocalAddr().String()},
		Upstreams: []string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Errorf("Run = %v, want an error naming %s", err, busy.LocalAddr())
	}
}

func TestNewValidates(t *testing.T) {
	client := fake.NewClientset()
	cases := map[string]Options{
		"no client":  {Listen: []string{"127.0.0.1:0"}},
		"no listen":  {Client: client},
		"bad listen": {Client: client, Listen: []string{"10.43.0.10"}},
		"bad domain": {Client: client, Listen: []string{"127.0.0.1:0"}, Domain: "a..b"},
	}
	for name, opts := range cases {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	srv, err := New(Options{Client: client, Listen: []string{"127.0.0.1:0"}, Upstreams: []string{"10.0.0.1", "10.0.0.2:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(srv.Upstreams(), ","); got != "10.0.0.1:53,10.0.0.2:5353" {
		t.Errorf("upstreams %s", got)
	}
	if srv.zone.ttl != DefaultTTL || srv.zone.origin != "cluster.local." || srv.forward.timeout != DefaultForwardTimeout {
		t.Errorf("defaults: ttl %d origin %q timeout %v", srv.zone.ttl, srv.zone.origin, srv.forward.timeout)
	}
}
