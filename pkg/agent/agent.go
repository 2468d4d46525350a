// Package agent is `k1s agent`: a node agent that joins a k1s server (or
// any Kubernetes API that runs the CSR approvers and signers) and runs the
// node's pods; and the server's side of joining (ServerComponent), and the
// server's own node agent (LocalComponent).
//
// Joining follows the kubelet's TLS bootstrap: the agent trusts the server
// (see discoverCA), asks for a client certificate system:node:<name> with
// the node token, then talks to the API only as that node, under the Node
// authorizer. Its kubelet API serves a certificate obtained the same way.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"k1s.dev/k1s/pkg/procmem"
	"k1s.dev/k1s/pkg/server"
)

// Options of `k1s agent`.
type Options struct {
	Server   string // https://host:port of the API
	Token    string // the server's node-token, bare or K10<ca-hash>::<secret>
	DataDir  string
	NodeName string
	NodeIP   string
	// KubeletPort: the kubelet API's port; 0 picks a free one, a negative
	// value DefaultKubeletPort when it is free, else a free one.
	KubeletPort    int
	ClusterDNS     string
	StopPodsOnExit bool
	// DefaultRuntime and RegistryConfig: see NodeConfig.
	DefaultRuntime string
	RegistryConfig string
	ClusterCIDR    string
	ServiceCIDR    string
	// Ready is closed once the Node is registered (nil allowed).
	Ready chan<- struct{}
}

// Main is `k1s agent`.
func Main(args []string) int {
	var o Options
	var tokenFile string
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.StringVar(&o.Server, "server", os.Getenv("K1S_URL"), "URL of the k1s server's API, https://host:port ($K1S_URL)")
	fs.StringVar(&o.Token, "token", os.Getenv("K1S_TOKEN"), "the server's DATA_DIR/node-token, or K10<sha256 of its CA>::<node-token> to verify the server before sending it ($K1S_TOKEN)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the token")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the node's credentials, pods and logs (default $HOME/.k1s-agent)")
	fs.StringVar(&o.NodeName, "node-name", "", "name of this node (default the hostname)")
	fs.StringVar(&o.NodeIP, "node-ip", "", "the node's InternalIP, where the API server reaches its kubelet (default the address used to reach the server)")
	fs.IntVar(&o.KubeletPort, "kubelet-port", DefaultKubeletPort, "port of the kubelet API (0 picks a free one; the default falls back to a free one when taken)")
	fs.StringVar(&o.ClusterDNS, "cluster-dns", "10.43.0.10", "cluster DNS address given to pods")
	fs.BoolVar(&o.StopPodsOnExit, "stop-pods-on-exit", true, "stop this node's pods gracefully when the agent stops (--stop-pods-on-exit=false leaves them running for the next start to adopt)")
	fs.StringVar(&o.DefaultRuntime, "default-runtime", "", "runtime of pods that name no RuntimeClass: oci or host (default oci when running as root with runc installed, else host)")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", DefaultClusterCIDR, "the cluster's pod network (the server's --cluster-cidr)")
	fs.StringVar(&o.ServiceCIDR, "service-cidr", "10.43.0.0/16", "the cluster's Service IP range (the server's --service-cidr)")
	fs.StringVar(&o.RegistryConfig, "registry-config", "", "registries.yaml with registry mirrors, rewrites, auth and TLS (k3s format)")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "k1s agent:", err)
			return 2
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if !fs.Changed("cluster-dns") {
		o.ClusterDNS = server.ClusterDNSFor(o.ServiceCIDR)
	}
	if !fs.Changed("kubelet-port") {
		o.KubeletPort = -1 // DefaultKubeletPort if free
	}
	exposeSelfOnPath()
	// The agent's heap is mostly long-lived pod state: a GC target of
	// 1.5× the live heap instead of Go's 2× keeps ~20 MB less resident at
	// 500 probing pods for a few % of a core (bench/README.md). $GOGC
	// still rules when set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ready := make(chan struct{})
	o.Ready = ready
	go procmem.TrimAfterStartup(ctx, ready, 5*time.Second)
	if err := Run(ctx, o); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "k1s agent:", err)
		return 1
	}
	return 0
}

// agentGCPercent is `k1s agent`'s GOGC unless $GOGC is set.
const agentGCPercent = 50

// Run joins the server and runs the node agent until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Server == "" {
		return errors.New("--server is required")
	}
	o.Server = strings.TrimRight(o.Server, "/")
	if o.Token == "" {
		return errors.New("--token or --token-file is required (the server's DATA_DIR/node-token)")
	}
	tok, err := ParseToken(o.Token)
	if err != nil {
		return err
	}
	if o.NodeName == "" {
		if o.NodeName, err = os.Hostname(); err != nil {
			return err
		}
	}
	o.NodeName = strings.ToLower(o.NodeName)
	if o.DataDir == "" {
		home, _ := os.UserHomeDir()
		o.DataDir = filepath.Join(home, ".k1s-agent")
	}
	if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return err
	}
	if o.NodeIP == "" {
		o.NodeIP = nodeIPFor(o.Server)
	}
	if o.KubeletPort < 0 {
		o.KubeletPort = FreePortOr(o.NodeIP, DefaultKubeletPort)
	}

	creds, err := Join(ctx, JoinConfig{Server: o.Server, Token: tok, Dir: o.DataDir, NodeName: o.NodeName})
	if err != nil {
		return err
	}
	cfg := creds.Config
	cfg.UserAgent = "kubelet"
	cfg.QPS, cfg.Burst = 50, 100 // the kubelet's kubeAPIQPS / kubeAPIBurst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := rotateClientCert(ctx, client, creds.CertDir, o.NodeName); err != nil {
		return err
	}
	serverTLS, err := ServingTLS(ctx, client, creds.CertDir, creds.CAPEM, o.NodeName, o.NodeIP)
	if err != nil {
		return err
	}
	klog.InfoS("k1s agent joined", "server", o.Server, "node", o.NodeName, "nodeIP", o.NodeIP)
	return RunNode(ctx, NodeConfig{
		Client:         client,
		NodeName:       o.NodeName,
		NodeIP:         o.NodeIP,
		Dir:            o.DataDir,
		ServerTLS:      serverTLS,
		ClusterDNS:     o.ClusterDNS,
		StopPodsOnExit: o.StopPodsOnExit,
		Port:           o.KubeletPort,
		Ready:          o.Ready,
		DefaultRuntime: o.DefaultRuntime,
		RegistryConfig: o.RegistryConfig,
		ClusterCIDR:    o.ClusterCIDR,
		ServiceCIDR:    o.ServiceCIDR,
	})
}

// nodeIPFor is the local address this machine uses to reach the server,
// or, when that is loopback (server and agent on one machine), the first
// non-loopback IPv4 address as the server itself advertises.
func nodeIPFor(serverURL string) string {
	if u, err := url.Parse(serverURL); err == nil {
		port := u.Port()
		if port == "" {
			port = "443"
		}
		if c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)); err == nil {
			ip := c.LocalAddr().(*net.UDPAddr).IP
			c.Close()
			if !ip.IsLoopback() {
				return ip.String()
			}
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

// exposeSelfOnPath puts this binary's directory first on PATH, so host-runtime
// containers can run `k1s app` wherever k1s lives (as `k1s server` does).
func exposeSelfOnPath() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	os.Setenv("PATH", filepath.Dir(exe)+string(os.PathListSeparator)+os.Getenv("PATH"))
}
