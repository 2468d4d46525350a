// Package server is `k1s server`: embedded etcd, the API server, the
// controllers, the scheduler and a node agent for this machine, each talking
// to the others only through the Kubernetes API over loopback.
package server

import (
	"context"
	"errors"
	"fmt"
	"k8s.io/client-go/informers"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"

	"k1s.dev/k1s/pkg/apiserver"
	"k1s.dev/k1s/pkg/pki"
	"k1s.dev/k1s/pkg/procmem"
	"k1s.dev/k1s/pkg/storage"
)

// Options of `k1s server`.
type Options struct {
	DataDir       string
	HTTPSPort     int
	BindAddress   string
	NodeName      string
	EtcdEndpoints []string
	ServiceCIDR   string
	// ClusterCIDR is the pod network (one NodeCIDRMaskSize block per node,
	// given to the Node as spec.podCIDR).
	ClusterCIDR string
	ClusterDNS  string
	// DefaultRuntime runs pods that name no RuntimeClass: "oci" or "host";
	// empty: oci when it can run here (root and runc), else host.
	DefaultRuntime string
	// RegistryConfig is a registries.yaml (k3s format): mirrors, rewrites,
	// auth and TLS for image pulls.
	RegistryConfig string
	NodePortRange  string
	// DisableAgent runs no node agent in the server.
	DisableAgent bool
	// DisableControllers runs neither controllers nor scheduler.
	DisableControllers bool
	// DisableServiceLB leaves LoadBalancer Services <pending> (no
	// ingress), as a cluster without a load-balancer controller.
	DisableServiceLB bool
	// StopPodsOnExit: a clean stop also stops the node's containers
	// (the flag's default; false: they keep running and the next start
	// adopts them).
	StopPodsOnExit bool
	// NodeMonitorGracePeriod: missed node status before NotReady (0: 50 s).
	NodeMonitorGracePeriod time.Duration
	// Components hook in what runs on top of the API (controllers,
	// scheduler, node agent): each gets the admin loopback config and runs
	// until ctx ends. Injected by cmd/k1s so this package stays small.
	Components []Component
}

// Component is something that runs against the API until ctx ends.
type Component struct {
	Name string
	Run  func(ctx context.Context, env *Env) error
}

// Env is what the server hands its components.
type Env struct {
	Options   Options
	AdminREST *rest.Config
	CAPEM     []byte
	PKI       *pki.PKI
	CA        *pki.CA
	NodeToken string
	APIServer string // https://host:port
	NodeIP    net.IP
	// Informers is the API server's informer factory: in-process
	// components that watch the same resources share its caches (and
	// its watches) instead of opening their own.
	Informers informers.SharedInformerFactory
}

// Defaults fills unset options.
func (o *Options) Defaults() {
	if o.DataDir == "" {
		home, _ := os.UserHomeDir()
		o.DataDir = filepath.Join(home, ".k1s")
	}
	if o.BindAddress == "" {
		o.BindAddress = "127.0.0.1"
	}
	if o.NodeName == "" {
		o.NodeName, _ = os.Hostname()
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.43.0.0/16"
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.42.0.0/16"
	}
	if o.ClusterDNS == "" {
		o.ClusterDNS = ClusterDNSFor(o.ServiceCIDR)
	}
	if o.NodePortRange == "" {
		o.NodePortRange = "30000-32767"
	}
}

// KubeconfigPath is where the admin kubeconfig lives in a data dir.
func KubeconfigPath(dataDir string) string { return filepath.Join(dataDir, "kubeconfig.yaml") }

// Run starts everything and blocks until ctx is done; ready is closed once
// /readyz answers ok (nil allowed).
func Run(ctx context.Context, o Options, ready chan<- struct{}) error {
	o.Defaults()
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	o.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	start := time.Now()

	// etcd first: it elects itself and opens its store while the
	// certificates and the API server are prepared (WaitReady below).
	etcd, err := storage.Start(ctx, storage.Options{DataDir: dataDir, Endpoints: o.EtcdEndpoints})
	if err != nil {
		return err
	}
	defer etcd.Close()

	// Bind before the certificates: --https-port 0 must be resolved before
	// they and the kubeconfig name the address.
	ln, err := net.Listen("tcp", net.JoinHostPort(o.BindAddress, strconv.Itoa(o.HTTPSPort)))
	if err != nil {
		return fmt.Errorf("listening on %s:%d: %w", o.BindAddress, o.HTTPSPort, err)
	}
	port := apiserver.PortOf(ln)
	nodeIP := advertiseIP(o.BindAddress)
	// The kubernetes Service's endpoint is nodeIP:port: pods reach the API
	// there (through the service proxy) even when it is bound to loopback.
	ln = withNodeAddress(ln, nodeIP)

	p := pki.New(dataDir)
	ca, err := p.EnsureCA()
	if err != nil {
		return err
	}
	svcIP, err := firstServiceIP(o.ServiceCIDR)
	if err != nil {
		return err
	}
	hosts := append(pki.DefaultServingHosts(svcIP.String(), "cluster.local"), nodeIP.String(), o.NodeName)
	if o.BindAddress != "0.0.0.0" && o.BindAddress != "::" {
		hosts = append(hosts, o.BindAddress)
	}
	serving, err := p.EnsureServingCert(ca, hosts)
	if err != nil {
		return err
	}
	// Serve the CA after the leaf: joining agents find the CA in the chain
	// and check it against the hash in their token before sending it.
	servingChain := filepath.Join(dataDir, "tls", "apiserver-chain.crt")
	if err := os.WriteFile(servingChain, append(append([]byte{}, serving.CertPEM...), ca.CertPEM...), 0o644); err != nil {
		return err
	}
	admin, err := p.EnsureClientCert(ca, "admin", pki.AdminCommonName, []string{pki.AdminOrganization})
	if err != nil {
		return err
	}
	kubeletClient, err := p.EnsureClientCert(ca, "apiserver-kubelet-client", pki.KubeletClientCommonName, []string{pki.AdminOrganization})
	if err != nil {
		return err
	}
	frontProxy, err := p.EnsureClientCert(ca, "front-proxy-client", apiserver.FrontProxyClientName, nil)
	if err != nil {
		return err
	}
	saKey, err := ensureServiceAccountKey(filepath.Join(dataDir, "tls", "service-account.key"))
	if err != nil {
		return err
	}
	token, err := pki.EnsureNodeToken(dataDir)
	if err != nil {
		return err
	}
	tokenFile, err := writeTokenAuthFile(dataDir, token)
	if err != nil {
		return err
	}

	connectHost := o.BindAddress
	if connectHost == "0.0.0.0" || connectHost == "::" || connectHost == "" {
		connectHost = "127.0.0.1"
	}
	serverURL := "https://" + net.JoinHostPort(connectHost, strconv.Itoa(port))
	if err := pki.WriteKubeconfig(KubeconfigPath(dataDir), serverURL, ca.CertPEM, admin.CertPEM, admin.KeyPEM, pki.DefaultContextName); err != nil {
		return err
	}

	_, svcNet, _ := net.ParseCIDR(o.ServiceCIDR)
	srv, err := apiserver.New(ctx, apiserver.Config{
		Listener:              ln,
		AdvertiseIP:           nodeIP,
		EtcdEndpoints:         etcd.Endpoints,
		Etcd:                  etcd,
		DataDir:               dataDir,
		ServingCertFile:       servingChain,
		ServingKeyFile:        serving.KeyFile,
		ClientCAFile:          p.CAFile(),
		KubeletClientCertFile: kubeletClient.CertFile,
		KubeletClientKeyFile:  kubeletClient.KeyFile,
		ServiceAccountKeyFile: saKey,
		ServiceAccountPubFile: saKey,
		ServiceCIDR:           svcNet.String(),
		NodePortRange:         o.NodePortRange,
		TokenAuthFile:         tokenFile,
		ProxyClientCertFile:   frontProxy.CertFile,
		ProxyClientKeyFile:    frontProxy.KeyFile,
	})
	if err != nil {
		return err
	}

	adminREST, err := clientcmd.BuildConfigFromFlags("", KubeconfigPath(dataDir))
	if err != nil {
		return err
	}
	adminREST.QPS, adminREST.Burst = 500, 1000
	// In-process components talk to the API over loopback: gzip would only
	// cost CPU on both ends, and every compressed watch keeps a decoder
	// (~40 kB) alive in the client.
	adminREST.DisableCompression = true
	// Their requests end when the server stops them (stoppableTransport).
	clientsStop, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	adminREST.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &stoppableTransport{next: rt, stop: clientsStop}
	})

	if err := etcd.WaitReady(ctx); err != nil {
		return err
	}
	klog.V(1).InfoS("etcd ready", "endpoints", etcd.Endpoints, "after", time.Since(start))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiDone := make(chan error, 1)
	go func() { apiDone <- srv.Run(ctx) }()

	if err := waitReady(ctx, adminREST, apiDone); err != nil {
		return err
	}
	klog.InfoS("k1s API ready", "server", serverURL, "after", time.Since(start).Round(time.Millisecond), "kubeconfig", KubeconfigPath(dataDir))

	// Start-up leaves ~60 MB of garbage, touched code and data all over
	// the binary (~150 MB of its pages mapped) and, on an existing data
	// dir, read all of etcd's database: 2 s after ready, hand the garbage
	// back to the OS and drop those pages. What the server keeps running
	// comes back page by page (~40 MB of the binary stay resident).
	go procmem.TrimAfterStartup(ctx, nil, 2*time.Second)
	// GC at +50 % busy, +25 % idle (procmem.IdleGC).
	// Going idle after a busy spell, it drops the pages the spell mapped
	// (at most once a minute).
	idleGC := procmem.DefaultIdleGC
	idleGC.OnIdle = procmem.DropBurstPages(time.Minute)
	go idleGC.Run(ctx)

	env := &Env{Options: o, AdminREST: adminREST, CAPEM: ca.CertPEM, PKI: p, CA: ca, NodeToken: token, APIServer: serverURL, NodeIP: nodeIP, Informers: srv.Informers}
	compDone := make(chan error, len(o.Components))
	for _, c := range o.Components {
		c := c
		go func() {
			err := c.Run(ctx, env)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", c.Name, err)
			} else {
				err = nil
			}
			compDone <- err
		}()
	}
	if ready != nil {
		close(ready)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-apiDone:
		runErr = err
		apiDone = nil
	case err := <-compDone:
		runErr = err
	}
	cancel()
	// Components first, then the API server, then etcd (deferred).
	deadline := time.After(8 * time.Second)
	for range o.Components {
		select {
		case <-compDone:
		case <-deadline:
		}
	}
	// Whatever the components left running (an event still being
	// retried) would keep the API server's connections busy: end it.
	stopClients()
	if apiDone != nil {
		select {
		case <-apiDone:
		case <-deadline:
		}
	}
	return runErr
}

func waitReady(ctx context.Context, cfg *rest.Config, apiDone <-chan error) error {
	c := rest.CopyConfig(cfg)
	c.Timeout = 2 * time.Second
	client, err := rest.UnversionedRESTClientFor(withCodec(c))
	if err != nil {
		return err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		res := client.Get().AbsPath("/readyz").Do(ctx)
		var code int
		res.StatusCode(&code)
		if code == 200 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-apiDone:
			if err == nil {
				err = errors.New("API server stopped")
			}
			return err
		case <-t.C:
		}
	}
}

// ClusterDNSFor is the cluster DNS address of a Service range: its tenth
// address (10.43.0.10 in 10.43.0.0/16), as k3s and kubeadm choose it.
func ClusterDNSFor(serviceCIDR string) string {
	_, n, err := net.ParseCIDR(serviceCIDR)
	if err != nil || n.IP.To4() == nil {
		return "10.43.0.10"
	}
	ip := n.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+10).String()
}

func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	ip[len(ip)-1]++
	return ip, nil
}

// advertiseIP is the node's address and the one the kubernetes Service
// names: the bind address unless it is a wildcard or loopback, else the
// first non-loopback address of the machine (as k3s does).
func advertiseIP(bind string) net.IP {
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		return ip
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return net.ParseIP("127.0.0.1")
}

func ensureServiceAccountKey(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	pem, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, pem, 0o600)
}

// writeTokenAuthFile lets agents holding the node token in as the
// bootstrap identity, which may only ask for a node certificate (CSR); the
// node then talks as system:node:<name> (see pkg/agent).
func writeTokenAuthFile(dataDir, token string) (string, error) {
	path := filepath.Join(dataDir, "server", "tokens.csv")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	line := fmt.Sprintf("%s,k1s-node-bootstrap,k1s-node-bootstrap,\"system:bootstrappers\"\n", token)
	return path, os.WriteFile(path, []byte(line), 0o600)
}
