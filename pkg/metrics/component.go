package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/apiserver"
	"k1s.dev/k1s/pkg/pki"
	"k1s.dev/k1s/pkg/server"
)

// Timing, as metrics-server is deployed (--metric-resolution=15s), with
// a quick start so that `kubectl top` answers seconds after a node is Ready.
const (
	// ScrapeInterval between scrapes once every Ready node has metrics:
	// metrics-server's --metric-resolution in its published manifest.
	ScrapeInterval = 15 * time.Second
	// FirstScrapeInterval between scrapes while a Ready node has none.
	FirstScrapeInterval = 1500 * time.Millisecond
	// Resolution: containers younger than this at their first point are
	// measured from their start (metrics-server's fresh-container rule).
	Resolution = 15 * time.Second
	// MaxStale: how long the points of a node whose scrape failed are
	// kept (see Store.MaxStale).
	MaxStale = 30 * time.Second
	// ScrapeTimeout of one node.
	ScrapeTimeout = 5 * time.Second
	// RegisterInterval between checks that the registration objects are
	// in place (they are reapplied each time).
	RegisterInterval = 30 * time.Second
)

// ServerComponent runs the metrics server inside `k1s server`.
func ServerComponent() server.Component {
	return server.Component{Name: "metrics server", Run: Run}
}

// Run serves metrics.k8s.io on the node's address until ctx ends.
func Run(ctx context.Context, env *server.Env) error {
	cfg := rest.CopyConfig(env.AdminREST)
	cfg.UserAgent = "metrics-server"
	cfg.WarningHandler = rest.NoWarnings{} // v1 Endpoints are deprecated; we write them on purpose
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	agg, err := aggregator.NewForConfig(cfg)
	if err != nil {
		return err
	}

	nodeIP := env.NodeIP
	if nodeIP == nil {
		nodeIP = net.ParseIP("127.0.0.1")
	}
	// Listen and register first, on the port the registration left by a
	// previous run names when it is free, so that the aggregator finds
	// this server where it looks as soon as possible after a restart.
	ln, err := listen(nodeIP.String(), previousPort(ctx, kube))
	if err != nil {
		return err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	reg := &Registrar{Kube: kube, Aggregator: agg, Registration: Registration{
		Address:  nodeIP.String(),
		Port:     int32(port),
		CABundle: env.CA.CertPEM,
		NodeName: env.Options.NodeName,
	}}
	clk := clock.RealClock{}
	go keepRegistered(ctx, reg, clk)

	tlsConfig, err := servingTLS(env.PKI, env.CA, nodeIP.String(), env.Options.NodeName)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}

	nodeInformers := informers.NewSharedInformerFactory(kube, 0)
	nodes := nodeInformers.Core().V1().Nodes()
	if err := nodes.Informer().SetTransform(trimNode); err != nil {
		return err
	}
	podInformer := metadatainformer.NewFilteredMetadataInformer(meta, corev1.SchemeGroupVersion.WithResource("pods"),
		metav1.NamespaceAll, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.FieldSelector = "status.phase=Running" })
	if err := podInformer.Informer().SetTransform(trimMeta); err != nil {
		return err
	}
	nodeInformers.Start(ctx.Done())
	go podInformer.Informer().RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced, podInformer.Informer().HasSynced) {
		return ctx.Err()
	}

	store := &Store{Resolution: Resolution, MaxStale: MaxStale}
	api := NewAPI(nodes.Lister(), MetadataPods{podInformer.Lister()}, store, clk)
	srv := &http.Server{
		Handler:           NewFrontProxyAuth(api, apiserver.FrontProxyClientName),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(klogWriter{}, "", 0),
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(tls.NewListener(ln, tlsConfig)) }()
	klog.InfoS("Metrics server serving metrics.k8s.io", "address", ln.Addr().String())

	collector := &Collector{
		Nodes:         nodes.Lister(),
		Kubelet:       NodeProxy{Client: kube.CoreV1().RESTClient()},
		Store:         store,
		Clock:         clk,
		Interval:      ScrapeInterval,
		FirstInterval: FirstScrapeInterval,
		Timeout:       ScrapeTimeout,
	}
	go collector.Run(ctx)

	select {
	case <-ctx.Done():
	case err := <-serveDone:
		return fmt.Errorf("serving metrics.k8s.io: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	return nil
}

// previousPort is the port the EndpointSlice of a previous run names, or 0.
func previousPort(ctx context.Context, kube kubernetes.Interface) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	es, err := kube.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if err != nil {
		return 0
	}
	for _, p := range es.Ports {
		if p.Port != nil && p.Name != nil && *p.Name == PortName {
			return int(*p.Port)
		}
	}
	return 0
}

// listen listens on host:port, or on a free port when port is 0 or taken.
func listen(host string, port int) (net.Listener, error) {
	if port != 0 {
		if ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}

// keepRegistered applies the registration objects now (retrying every
// second until it works), then every RegisterInterval.
func keepRegistered(ctx context.Context, reg *Registrar, clk clock.Clock) {
	registered := false
	for {
		err := reg.Ensure(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			klog.ErrorS(err, "Failed to register the metrics API")
		case err == nil && !registered:
			registered = true
			klog.InfoS("Registered APIService", "name", APIServiceName, "service", Namespace+"/"+ServiceName)
		}
		wait := RegisterInterval
		if err != nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-clk.After(wait):
		}
	}
}

// ServingHosts are the names the serving certificate carries: the node's
// address and the Service's DNS names (the aggregator checks
// metrics-server.kube-system.svc against the CA bundle).
func ServingHosts(nodeIP, nodeName string) []string {
	hosts := []string{nodeIP, "127.0.0.1", "localhost",
		ServiceName, ServiceName + "." + Namespace, ServiceName + "." + Namespace + ".svc",
		ServiceName + "." + Namespace + ".svc.cluster.local"}
	if nodeName != "" {
		hosts = append(hosts, nodeName)
	}
	return hosts
}

// servingTLS is the metrics server's TLS identity, signed by the cluster
// CA, and the CA it verifies the aggregator's client certificate against.
func servingTLS(p *pki.PKI, ca *pki.CA, nodeIP, nodeName string) (*tls.Config, error) {
	kp, err := p.EnsureCert(ca, pki.CertSpec{
		Name:       "metrics-server",
		CommonName: "metrics-server",
		Hosts:      ServingHosts(nodeIP, nodeName),
		Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM) {
		return nil, errors.New("no CA certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// trimNode keeps what the metrics API and the collector read of a node.
func trimNode(obj any) (any, error) {
	if n, ok := obj.(*corev1.Node); ok {
		n.ManagedFields = nil
		n.Annotations = nil
		n.Status.Images = nil
	}
	return obj, nil
}

// trimMeta keeps what the metrics API reads of a pod: names and labels.
func trimMeta(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ManagedFields = nil
		m.Annotations = nil
		m.OwnerReferences = nil
	}
	return obj, nil
}

// klogWriter sends net/http's server errors (mostly TLS handshakes that
// were dropped) to klog at verbosity 2.
type klogWriter struct{}

func (klogWriter) Write(p []byte) (int, error) {
	klog.V(2).InfoS("Metrics server HTTP error", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
