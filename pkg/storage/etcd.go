// Package storage gives the API server its etcd: an embedded etcd server in
// the data dir by default, or an external cluster (--etcd-endpoints). Either
// way everything above talks to it through go.etcd.io/etcd/client/v3, so
// resourceVersion is the etcd revision and watches are etcd watches, as in
// kube-apiserver.
package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdk8s "go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a connected etcd, embedded or external.
type Etcd struct {
	Client    *etcdk8s.Client
	Endpoints []string
	server    *embed.Etcd
}

// Options choose between embedded and external etcd.
type Options struct {
	DataDir   string   // embedded: <DataDir>/etcd
	Endpoints []string // external cluster; empty means embedded
}

// Start starts the embedded etcd and connects a client, without waiting
// for it to serve: an embedded etcd listens at once but elects itself and
// opens its store in the next 50–150 ms, which the caller can spend
// building the API server. Call WaitReady before relying on it; requests
// made earlier wait. An external cluster is asked for its status here.
func Start(ctx context.Context, o Options) (*Etcd, error) {
	e := &Etcd{Endpoints: o.Endpoints}
	if len(o.Endpoints) == 0 {
		srv, endpoint, err := startEmbedded(o.DataDir)
		if err != nil {
			return nil, err
		}
		e.server = srv
		e.Endpoints = []string{endpoint}
	}
	cli, err := etcdk8s.New(clientv3.Config{
		Endpoints:          e.Endpoints,
		DialTimeout:        10 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 64 << 20,
		MaxCallRecvMsgSize: 256 << 20,
		Context:            ctx,
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("connecting to etcd %v: %w", e.Endpoints, err)
	}
	e.Client = cli
	if e.server == nil {
		// an external cluster must answer now: a wrong --etcd-endpoints
		// is reported as such, not as the API server's failure later.
		if err := e.checkExternal(ctx); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// WaitReady returns once etcd serves: the embedded server has joined its
// one-member cluster (an external one answered in Start).
func (e *Etcd) WaitReady(ctx context.Context) error {
	if e.server == nil {
		return nil
	}
	select {
	case <-e.server.Server.ReadyNotify():
		return nil
	case <-time.After(60 * time.Second):
		return fmt.Errorf("embedded etcd in %s did not become ready", e.server.Config().Dir)
	case err := <-e.server.Err():
		return fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkExternal asks the first endpoint of an external cluster for its status.
func (e *Etcd) checkExternal(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.Client.Status(sctx, e.Endpoints[0]); err != nil {
		return fmt.Errorf("etcd %v does not answer: %w", e.Endpoints, err)
	}
	return nil
}

func startEmbedded(dataDir string) (*embed.Etcd, string, error) {
	dir := filepath.Join(dataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "k1s"
	cfg.Dir = dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// No peer listener: a one-member cluster never talks to peers.
	peer, _ := url.Parse("http://127.0.0.1:2380")
	cfg.ListenPeerUrls = nil
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	client, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.AutoCompactionMode = embed.CompactorModeRevision
	cfg.AutoCompactionRetention = "10000"
	cfg.QuotaBackendBytes = 2 << 30
	cfg.SnapshotCount = 10000
	// A one-member cluster elects itself after the election timeout: at
	// etcd's default (100 ms ticks, 1 s) that is 0.1–1 s of every start
	// spent waiting; 20 ms ticks and 100 ms bring it to 20–100 ms. There
	// are no peers whose heartbeats these settings would pace.
	cfg.TickMs = 20
	cfg.ElectionMs = 100
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("starting embedded etcd in %s: %w", dir, err)
	}
	return srv, "http://" + srv.Clients[0].Addr().String(), nil
}

// Close stops the client first, then the embedded server (the other order
// makes etcd wait ~7 s for clients that never come back).
func (e *Etcd) Close() {
	if e.Client != nil {
		e.Client.Close()
		e.Client = nil
	}
	if e.server != nil {
		e.server.Close()
		e.server = nil
	}
}
