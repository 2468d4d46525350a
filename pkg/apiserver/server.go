// Package apiserver runs k1s's Kubernetes API: kube-apiserver's own assembly
// (k8s.io/kubernetes/cmd/kube-apiserver/app) in-process, configured by k1s
// and backed by k1s's etcd. Every REST semantic (defaulting, validation,
// patch types, server-side apply, watch, tables, discovery, OpenAPI,
// admission) is therefore upstream's, byte for byte. See README "Decisions".
package apiserver

import (
	"context"
	"fmt"
	"k8s.io/client-go/informers"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"k1s.dev/k1s/pkg/storage"
)

// Config of the API server. Paths point at PEM files (see pkg/pki).
type Config struct {
	// Listener is already bound (port 0 resolved by the caller).
	Listener      net.Listener
	AdvertiseIP   net.IP
	EtcdEndpoints []string
	// Etcd, when set, is the one client all resource stores share.
	Etcd            *storage.Etcd
	DataDir         string // for the authentication config file
	ServingCertFile string
	ServingKeyFile  string
	ClientCAFile    string
	// KubeletClientCertFile/KeyFile: the API server's identity towards
	// node agents (logs, exec, attach, port-forward).
	KubeletClientCertFile string
	KubeletClientKeyFile  string
	ServiceAccountKeyFile string // private key; its public half verifies
	ServiceAccountPubFile string
	ServiceCIDR           string // e.g. 10.43.0.0/16
	NodePortRange         string // e.g. 30000-32767
	// TokenAuthFile: static bearer tokens (csv token,user,uid,"group1,group2").
	TokenAuthFile string
	// ProxyClientCertFile/KeyFile: the aggregator's identity towards
	// aggregated API servers (metrics.k8s.io), CN front-proxy-client,
	// verified by them against ClientCAFile.
	ProxyClientCertFile string
	ProxyClientKeyFile  string
}

// FrontProxyClientName is the common name of the aggregator's client
// certificate, the only one aggregated API servers accept identity headers from.
const FrontProxyClientName = "front-proxy-client"

// Server is a prepared API server.
type Server struct {
	run func(ctx context.Context) error
	// Informers is the kube-apiserver's own informer factory (admission,
	// authorization), started with the server. Components of the same
	// process share it rather than open a second watch of each resource.
	Informers informers.SharedInformerFactory
}

// New builds kube-apiserver's server chain from Config.
func New(ctx context.Context, c Config) (*Server, error) {
	authnConfig, err := writeAuthenticationConfig(c.DataDir)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(c.Listener.Addr().String())
	if err != nil {
		return nil, err
	}
	args := []string{
		"--etcd-servers=" + strings.Join(c.EtcdEndpoints, ","),
		"--watch-cache=false",
		"--bind-address=" + host,
		"--secure-port=" + port,
		"--advertise-address=" + c.AdvertiseIP.String(),
		"--tls-cert-file=" + c.ServingCertFile,
		"--tls-private-key-file=" + c.ServingKeyFile,
		"--client-ca-file=" + c.ClientCAFile,
		"--authentication-config=" + authnConfig,
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate=" + c.KubeletClientCertFile,
		"--kubelet-client-key=" + c.KubeletClientKeyFile,
		"--kubelet-preferred-address-types=InternalIP,Hostname,ExternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.ServiceAccountPubFile,
		"--service-account-signing-key-file=" + c.ServiceAccountKeyFile,
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--service-node-port-range=" + c.NodePortRange,
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
	}
	if c.AdvertiseIP.IsLoopback() {
		// upstream refuses a loopback address in the kubernetes Service's
		// endpoints; a machine without another address gets none.
		args = append(args, "--endpoint-reconciler-type=none")
	}
	if c.ProxyClientCertFile != "" {
		args = append(args,
			"--requestheader-client-ca-file="+c.ClientCAFile,
			"--requestheader-allowed-names="+FrontProxyClientName,
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file="+c.ProxyClientCertFile,
			"--proxy-client-key-file="+c.ProxyClientKeyFile,
			// aggregated APIs are reached at their endpoints, not through
			// a Service cluster IP (there is no kube-proxy in front).
			"--enable-aggregator-routing=true",
		)
	}
	if c.TokenAuthFile != "" {
		args = append(args, "--token-auth-file="+c.TokenAuthFile)
	}
	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("api server options: %w", err)
	}
	s.SecureServing.Listener = c.Listener
	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("api server options: %w", err)
	}
	if errs := completed.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("api server options: %w", utilerrors.NewAggregate(errs))
	}
	cfg, err := app.NewConfig(completed)
	if err != nil {
		return nil, fmt.Errorf("api server config: %w", err)
	}
	if c.Etcd != nil {
		kg := cfg.KubeAPIs.ControlPlane.Generic
		kg.RESTOptionsGetter = storage.SharedClient(c.Etcd, kg.RESTOptionsGetter)
		eg := cfg.ApiExtensions.GenericConfig
		eg.RESTOptionsGetter = storage.SharedClient(c.Etcd, eg.RESTOptionsGetter)
		ag := cfg.Aggregator.GenericConfig.Config
		ag.RESTOptionsGetter = storage.SharedClient(c.Etcd, ag.RESTOptionsGetter)
	}
	routeOperationIDs(cfg.KubeAPIs.ControlPlane.Generic, &cfg.ApiExtensions.GenericConfig.Config, &cfg.Aggregator.GenericConfig.Config)
	openAPI := skipOpenAPIInstallation(cfg.KubeAPIs.ControlPlane.Generic)
	if err := replaceBootstrapHooks(cfg.KubeAPIs.ControlPlane.Generic); err != nil {
		return nil, fmt.Errorf("api server config: %w", err)
	}
	ag := cfg.Aggregator.GenericConfig
	ag.BuildHandlerChainFunc = withVersion(ag.BuildHandlerChainFunc)
	cc, err := cfg.Complete()
	if err != nil {
		return nil, fmt.Errorf("api server config: %w", err)
	}
	chain, err := app.CreateServerChain(cc)
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	kube, err := kubeAPIServerOf(chain.GenericAPIServer)
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	openAPI.install(kube.Handler.GoRestfulContainer, kube.Handler.NonGoRestfulMux)
	prepared, err := chain.PrepareRun()
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	openAPI.releaseDefinitions()
	return &Server{run: prepared.Run, Informers: cfg.KubeAPIs.ControlPlane.VersionedInformers}, nil
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error { return s.run(ctx) }

// writeAuthenticationConfig allows anonymous requests only to the health
// endpoints (so `curl -k https://127.0.0.1:6443/readyz` answers ok) while
// every API request needs a client certificate or a token.
func writeAuthenticationConfig(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "server", "authentication-config.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	conf := `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
  - path: /version
`
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// PortOf returns the TCP port of a listener.
func PortOf(l net.Listener) int {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
