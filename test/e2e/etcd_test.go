package e2e

import (
	"context"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// TestExternalEtcd runs a server on an etcd of its own (--etcd-endpoints):
// objects land in that etcd under /registry, as kube-apiserver writes them.
func TestExternalEtcd(t *testing.T) {
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	client, _ := url.Parse("http://127.0.0.1:0")
	peer, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("test etcd not ready")
	}
	endpoint := "http://" + e.Clients[0].Addr().String()

	s, err := StartServer(t.TempDir(), "--etcd-endpoints", endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ns := s.Namespace(t)
	s.MustKubectl(t, "create", "configmap", "ext", "-n", ns, "--from-literal=a=1")

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/registry/configmaps/"+ns+"/ext")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("configmap %s/ext not in the external etcd", ns)
	}
	rv := s.MustKubectl(t, "get", "cm", "ext", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	if want := resp.Kvs[0].ModRevision; rv != strconv.FormatInt(want, 10) {
		t.Errorf("resourceVersion %s, etcd mod revision %d", rv, want)
	}
}

// TestExternalEtcdUnreachable: a wrong --etcd-endpoints is reported as
// such, and the server exits.
func TestExternalEtcdUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "server", "--data-dir", t.TempDir(), "--https-port", "0",
		"--etcd-endpoints", "http://127.0.0.1:1").CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("server with an unreachable etcd: err %v (ctx %v)\n%s", err, ctx.Err(), out)
	}
	Contains(t, string(out), `etcd [http://127.0.0.1:1] does not answer`)
}
