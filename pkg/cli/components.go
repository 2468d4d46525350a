package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/kubelet"
	kruntime "k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
	"k1s.dev/k1s/pkg/pki"
	"k1s.dev/k1s/pkg/server"
)

// ServerComponents are what `k1s server` runs on top of its API.
func ServerComponents(o *server.Options) []server.Component {
	var cs []server.Component
	if !o.DisableControllers {
		cs = append(cs, controllerComponents()...)
	}
	if !o.DisableAgent {
		cs = append(cs, server.Component{Name: "node agent", Run: runLocalAgent})
	}
	return cs
}

// runLocalAgent runs the node agent for this machine inside the server.
func runLocalAgent(ctx context.Context, env *server.Env) error {
	o := env.Options
	client, err := kubernetes.NewForConfig(env.AdminREST)
	if err != nil {
		return err
	}
	agentDir := filepath.Join(o.DataDir, "agent")
	serverTLS, err := kubeletTLS(env.PKI, env.CA, o.NodeName, env.NodeIP.String())
	if err != nil {
		return err
	}
	return runAgent(ctx, agentConfig{
		Client:     client,
		NodeName:   o.NodeName,
		NodeIP:     env.NodeIP.String(),
		Dir:        agentDir,
		ServerTLS:  serverTLS,
		ClusterDNS: o.ClusterDNS,
		StopPods:   o.StopPodsOnExit,
	})
}

type agentConfig struct {
	Client     kubernetes.Interface
	NodeName   string
	NodeIP     string
	Dir        string
	ServerTLS  *tls.Config
	ClusterDNS string
	StopPods   bool
	Port       int
}

func runAgent(ctx context.Context, c agentConfig) error {
	host, err := process.New(process.Options{
		RootDir: filepath.Join(c.Dir, "runtime", "host"),
		HostIP:  c.NodeIP,
	})
	if err != nil {
		return fmt.Errorf("host runtime: %w", err)
	}
	port := c.Port
	if port == 0 {
		port = 10250
	}
	k, err := kubelet.New(kubelet.Dependencies{
		KubeClient:     c.Client,
		NodeName:       c.NodeName,
		NodeIP:         c.NodeIP,
		Runtimes:       map[string]kruntime.Runtime{"host": host},
		DefaultRuntime: "host",
		RootDir:        c.Dir,
		Clock:          clock.RealClock{},
		ServerAddress:  c.NodeIP,
		ServerPort:     freePortOr(c.NodeIP, port),
		ServerTLS:      c.ServerTLS,
		ClusterDNS:     []string{c.ClusterDNS},
		ClusterDomain:  "cluster.local",
		StopPodsOnExit: c.StopPods,
		Version:        versionString(),
	})
	if err != nil {
		return err
	}
	return k.Run(ctx)
}

// kubeletTLS is the node agent's serving identity, and the CA it checks the
// API server's client certificate against (logs, exec, port-forward).
func kubeletTLS(p *pki.PKI, ca *pki.CA, nodeName, nodeIP string) (*tls.Config, error) {
	kp, err := p.EnsureCert(ca, pki.CertSpec{
		Name:         "kubelet-" + nodeName,
		CommonName:   pki.NodeCommonName(nodeName),
		Organization: []string{pki.NodesGroup},
		Hosts:        []string{nodeName, nodeIP, "127.0.0.1", "localhost"},
		Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
