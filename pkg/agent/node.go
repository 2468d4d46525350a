package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet"
	kruntime "k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/oci"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
	"k1s.dev/k1s/pkg/network"
	"k1s.dev/k1s/pkg/pki"
	"k1s.dev/k1s/pkg/proxy"
	"k1s.dev/k1s/pkg/server"
)

// DefaultKubeletPort is the kubelet API's port when it is free.
const DefaultKubeletPort = 10250

// NodeConfig is one node agent: the host runtime and the kubelet on it.
type NodeConfig struct {
	// Client talks to the API as the node (system:node:<name>).
	Client   kubernetes.Interface
	NodeName string
	// NodeIP is the node's InternalIP, every pod's hostIP and the address
	// the kubelet API listens on.
	NodeIP string
	// Dir holds the runtime's state, pods' directories and logs.
	Dir string
	// ServerTLS is the kubelet API's serving identity and client CA.
	ServerTLS  *tls.Config
	ClusterDNS string
	// StopPodsOnExit stops the node's containers when RunNode returns
	// (default: they keep running and the next start adopts them).
	StopPodsOnExit bool
	// Port of the kubelet API; 0 picks a free one. The kubelet publishes
	// it in node.status.daemonEndpoints.
	Port int
	// Ready is closed once the Node is registered (nil allowed).
	Ready chan<- struct{}
	// DefaultRuntime runs pods without a RuntimeClass: "oci", "host", or
	// empty for oci when it can run here, else host (with a warning).
	DefaultRuntime string
	// RegistryConfig is a registries.yaml for the oci runtime's pulls.
	RegistryConfig string
	// ClusterCIDR is the cluster's pod network (not masqueraded between
	// nodes).
	ClusterCIDR string
	// ServiceCIDR is the range of ClusterIPs (for the service proxy).
	ServiceCIDR string
	// Local: the server's own node (see NetworkNames).
	Local bool
	// DisableProxy runs no service proxy on this node.
	DisableProxy bool
}

// RunNode runs the node agent until ctx ends.
func RunNode(ctx context.Context, c NodeConfig) error {
	host, err := process.New(process.Options{
		RootDir: filepath.Join(c.Dir, "runtime", "host"),
		HostIP:  c.NodeIP,
	})
	if err != nil {
		return fmt.Errorf("host runtime: %w", err)
	}
	runtimes := map[string]kruntime.Runtime{"host": host}
	def := c.DefaultRuntime
	if os.Geteuid() == 0 {
		// the node's bridge and proxy table are this process's alone
		bridge, _ := NetworkNames(c.NodeName, c.ClusterCIDR, c.Local)
		unlock, err := lockNodeNetwork(bridge)
		if err != nil {
			return err
		}
		defer unlock()
	}
	oci, podNet, err := ociRuntime(c)
	if err != nil {
		switch def {
		case "oci":
			return fmt.Errorf("--default-runtime oci: %w", err)
		case "":
			klog.InfoS("WARNING: the oci runtime cannot run here; pods run on the host runtime (no isolation, no images)", "reason", err)
		}
	} else {
		runtimes["oci"] = oci
		if def == "" {
			def = "oci"
		}
	}
	if def == "" {
		def = "host"
	}
	if _, ok := runtimes[def]; !ok {
		return fmt.Errorf("--default-runtime %q: unknown runtime (oci or host)", def)
	}
	var dns []string
	if c.ClusterDNS != "" {
		dns = []string{c.ClusterDNS}
	}
	k, err := kubelet.New(kubelet.Dependencies{
		KubeClient:     c.Client,
		NodeName:       c.NodeName,
		NodeIP:         c.NodeIP,
		Runtimes:       runtimes,
		DefaultRuntime: def,
		RootDir:        c.Dir,
		Clock:          clock.RealClock{},
		ServerAddress:  c.NodeIP,
		ServerPort:     c.Port,
		ServerTLS:      c.ServerTLS,
		ClusterDNS:     dns,
		ClusterDomain:  "cluster.local",
		StopPodsOnExit: c.StopPodsOnExit,
		// only the API server (its kubelet-client certificate) and cluster
		// admins; not other nodes, whose certificates the same CA signed
		AuthorizeClient: func(cert *x509.Certificate) bool {
			return cert.Subject.CommonName == pki.KubeletClientCommonName || slices.Contains(cert.Subject.Organization, pki.AdminOrganization)
		},
		Version: Version(),
		Ready:   c.Ready,
	})
	if err != nil {
		return err
	}
	var proxyDone chan struct{}
	if !c.DisableProxy {
		proxyDone = startProxy(ctx, c)
	}
	err = k.Run(ctx)
	if proxyDone != nil {
		<-proxyDone
	}
	if c.StopPodsOnExit && podNet != nil {
		// the pods are gone: so is the node's bridge and NAT table
		if cerr := podNet.Cleanup(); cerr != nil {
			klog.ErrorS(cerr, "removing the pod network")
		}
	}
	return err
}

// startProxy runs the node's service proxy (pkg/proxy, nftables) until
// ctx ends; the returned channel closes when it has stopped. It needs
// root; without it Services are not reachable through their ClusterIPs.
func startProxy(ctx context.Context, c NodeConfig) chan struct{} {
	done := make(chan struct{})
	if os.Geteuid() != 0 {
		klog.InfoS("WARNING: the service proxy needs root; ClusterIPs, NodePorts and cluster DNS are not reachable on this node")
		close(done)
		return done
	}
	_, table := NetworkNames(c.NodeName, c.ClusterCIDR, c.Local)
	var ips []net.IP
	if ip := net.ParseIP(c.NodeIP); ip != nil {
		ips = append(ips, ip)
	}
	p, err := proxy.New(proxy.Options{
		Client:      c.Client,
		NodeName:    c.NodeName,
		NodeIPs:     ips,
		ClusterCIDR: c.ClusterCIDR,
		ServiceCIDR: c.ServiceCIDR,
		TableName:   table,
		// a clean stop removes the rules with the pods; a crash leaves
		// them for the next start to replace
		RemoveOnExit: c.StopPodsOnExit,
	})
	if err != nil {
		klog.ErrorS(err, "service proxy not started")
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			klog.ErrorS(err, "service proxy stopped")
		}
	}()
	return done
}

// lockNodeNetwork takes /run/k1s/<bridge>.lock for as long as this
// process lives (or until unlock): two nodes with the same bridge on one
// machine would share, then tear down, each other's pod network.
func lockNodeNetwork(bridge string) (unlock func(), err error) {
	dir := "/run/k1s"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, bridge+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("the pod network %s is in use by another k1s node on this machine: give this server its own --cluster-cidr (and an agent its own --node-name)", bridge)
	}
	return func() { f.Close() }, nil
}

// DefaultClusterCIDR is the pod network of `k1s server` and `k1s agent`.
const DefaultClusterCIDR = "10.42.0.0/16"

// NetworkNames are what a node owns in the host's network: the bridge of
// its pods and the service proxy's nftables table. The server's own node
// on the default pod network has the plain names (k1s0, k1s-proxy); every
// other node — joined agents, servers on other pod networks, all of which
// may share one host — a name of its own.
func NetworkNames(nodeName, clusterCIDR string, local bool) (bridge, proxyTable string) {
	if local && (clusterCIDR == "" || clusterCIDR == DefaultClusterCIDR) {
		return network.DefaultBridge, proxy.DefaultTableName
	}
	sum := sha256.Sum256([]byte(clusterCIDR + "/" + nodeName))
	h := hex.EncodeToString(sum[:4])
	return "k1s-" + h, "k1s-proxy-" + h
}

// LocalComponent is the server's own node agent (`k1s server` without
// --disable-agent). It talks to the API as system:node:<name>, with a
// client certificate the server issues from its CA, like any other node.
func LocalComponent() server.Component {
	return server.Component{Name: "node agent", Run: runLocal}
}

func runLocal(ctx context.Context, env *server.Env) error {
	o := env.Options
	nodeIP := env.NodeIP.String()
	serverTLS, err := LocalServingTLS(env.PKI, env.CA, o.NodeName, nodeIP)
	if err != nil {
		return err
	}
	cfg, err := localNodeREST(env)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// The join service (ServerComponent) starts with this agent; the RBAC a
	// node needs beyond the Node authorizer must exist before its first
	// request. Failures are the join service's to retry.
	if admin, err := kubernetes.NewForConfig(env.AdminREST); err == nil {
		_ = ensureJoinPolicy(ctx, admin)
	}
	return RunNode(ctx, NodeConfig{
		Client:         client,
		NodeName:       o.NodeName,
		NodeIP:         nodeIP,
		Dir:            filepath.Join(o.DataDir, "agent"),
		ServerTLS:      serverTLS,
		ClusterDNS:     o.ClusterDNS,
		StopPodsOnExit: o.StopPodsOnExit,
		Port:           FreePortOr(nodeIP, DefaultKubeletPort),
		DefaultRuntime: o.DefaultRuntime,
		RegistryConfig: o.RegistryConfig,
		ClusterCIDR:    o.ClusterCIDR,
		ServiceCIDR:    o.ServiceCIDR,
		Local:          true,
	})
}

// localNodeREST is the loopback config with the local node's identity.
func localNodeREST(env *server.Env) (*rest.Config, error) {
	name := env.Options.NodeName
	kp, err := env.PKI.EnsureClientCert(env.CA, "kubelet-client-"+name, pki.NodeCommonName(name), []string{pki.NodesGroup})
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(env.AdminREST)
	cfg.CertData, cfg.KeyData = kp.CertPEM, kp.KeyPEM
	cfg.UserAgent = "kubelet"
	return cfg, nil
}

// FreePortOr returns port if it can be bound on host, else 0 (the kubelet
// then picks a free one): several agents and tests share one machine.
func FreePortOr(host string, port int) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0
	}
	l.Close()
	return port
}

// kubernetesVersion is the release whose modules k1s is built on.
const kubernetesVersion = "v1.37.2"

// Version is k1s's version (the node's containerRuntimeVersion host://<it>).
func Version() string {
	v := version.Get().GitVersion
	if strings.HasPrefix(v, "v0.0.0") { // built without the Makefile's -ldflags
		return kubernetesVersion + "+k1s"
	}
	return v
}

// ociRuntime is the isolating runtime (runc, images from the node's store),
// offered as RuntimeClass "oci" and the default runtime when it can run
// here (root, runc installed).
func ociRuntime(c NodeConfig) (kruntime.Runtime, *network.Manager, error) {
	if _, err := oci.Available(); err != nil {
		return nil, nil, err
	}
	images, err := image.Open(filepath.Join(c.Dir, "images")) // = image.StoreDir(data dir) for the server
	if err != nil {
		return nil, nil, fmt.Errorf("image store: %w", err)
	}
	if c.RegistryConfig != "" {
		rc, err := image.LoadRegistryConfig(c.RegistryConfig)
		if err != nil {
			return nil, nil, fmt.Errorf("--registry-config: %w", err)
		}
		images.SetRegistryConfig(rc)
	}
	bridge, _ := NetworkNames(c.NodeName, c.ClusterCIDR, c.Local)
	podNet, err := network.New(network.Config{
		BridgeName:  bridge,
		ClusterCIDR: c.ClusterCIDR,
		StateDir:    filepath.Join(c.Dir, "network"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("pod network: %w", err)
	}
	rt, err := oci.New(oci.Options{
		RootDir: filepath.Join(c.Dir, "runtime", "oci"),
		Images:  images,
		HostIP:  c.NodeIP,
		Network: podNet,
	})
	if err != nil {
		return nil, nil, err
	}
	return rt, podNet, nil
}
