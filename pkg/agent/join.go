package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"

	"k1s.dev/k1s/pkg/pki"
)

// Files of an agent's data dir, laid out as the kubelet's (--cert-dir pki,
// --kubeconfig, --bootstrap-kubeconfig).
const (
	serverCAFile        = "server-ca.crt"        // under tls/: the pinned cluster CA
	bootstrapKubeconfig = "bootstrap.kubeconfig" // server, CA and token
	nodeKubeconfig      = "kubelet.kubeconfig"   // server, CA and the node's certificate
	certDirName         = "pki"                  // kubelet-client-current.pem, kubelet-server-current.pem
)

// JoinConfig is what Join needs.
type JoinConfig struct {
	Server   string // https://host:port
	Token    Token
	Dir      string
	NodeName string
}

// Credentials are a joined node's: its identity system:node:<name> and the
// CA it trusts.
type Credentials struct {
	// Config talks to the API as the node; its certificate files are
	// reloaded by client-go when rotation replaces them.
	Config  *rest.Config
	CAPEM   []byte
	CertDir string
}

// Join makes the agent's data dir hold credentials for the node: it
// establishes trust in the server (see discoverCA), then, unless a valid
// certificate for this node is already there, obtains one the way the
// kubelet's TLS bootstrap does: a CertificateSigningRequest for
// kubernetes.io/kube-apiserver-client-kubelet made with the token, approved
// and signed by the server. It retries until ctx ends, except when the
// server cannot be trusted.
func Join(ctx context.Context, c JoinConfig) (*Credentials, error) {
	delay := time.Second
	for {
		creds, err := joinOnce(ctx, c)
		if err == nil {
			return creds, nil
		}
		if errors.Is(err, errUntrusted) || ctx.Err() != nil {
			return nil, err
		}
		klog.InfoS("Joining the server failed; retrying", "server", c.Server, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func joinOnce(ctx context.Context, c JoinConfig) (*Credentials, error) {
	tlsDir := filepath.Join(c.Dir, "tls")
	caPath := filepath.Join(tlsDir, serverCAFile)
	pinned, err := os.ReadFile(caPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if len(pinned) == 0 {
		pinned = nil
	}
	ca, err := discoverCA(ctx, c.Server, c.Token, pinned)
	if err != nil {
		return nil, err
	}
	if string(ca) != string(pinned) {
		if err := writeFile(caPath, ca, 0o644); err != nil {
			return nil, err
		}
		klog.InfoS("Trusting the cluster CA", "sha256", pki.CAHash(ca), "file", caPath)
	}

	certDir := filepath.Join(c.Dir, certDirName)
	kubeconfig := filepath.Join(c.Dir, nodeKubeconfig)
	if !usableKubeconfig(kubeconfig, c.Server, ca, c.NodeName) {
		if err := os.Remove(kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	bootPath := filepath.Join(c.Dir, bootstrapKubeconfig)
	if err := writeBootstrapKubeconfig(bootPath, c.Server, caPath, c.Token.Secret); err != nil {
		return nil, err
	}
	if err := bootstrap.LoadClientCert(ctx, kubeconfig, bootPath, certDir, types.NodeName(c.NodeName)); err != nil {
		return nil, fmt.Errorf("obtaining the node's client certificate: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	return &Credentials{Config: cfg, CAPEM: ca, CertDir: certDir}, nil
}

// usableKubeconfig says whether the node kubeconfig of an earlier join can
// be kept: same server, same CA, a certificate of this node signed by it
// and not expired.
func usableKubeconfig(path, server string, ca []byte, nodeName string) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil || cfg.Host != server {
		return false
	}
	if cfg.CAFile == "" {
		return false
	}
	if have, err := os.ReadFile(cfg.CAFile); err != nil || string(have) != string(ca) {
		return false
	}
	certs, err := certutil.CertsFromFile(cfg.CertFile)
	if err != nil || len(certs) == 0 {
		return false
	}
	return clientCertValid(certs[0], ca, nodeName, time.Now())
}

// clientCertValid: cert is nodeName's client certificate, signed by ca and
// valid at now.
func clientCertValid(cert *x509.Certificate, ca []byte, nodeName string, now time.Time) bool {
	if cert.Subject.CommonName != pki.NodeCommonName(nodeName) {
		return false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return false
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func writeBootstrapKubeconfig(path, server, caFile, secret string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["k1s"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["k1s-bootstrap"] = &clientcmdapi.AuthInfo{Token: secret}
	cfg.Contexts["k1s-bootstrap"] = &clientcmdapi.Context{Cluster: "k1s", AuthInfo: "k1s-bootstrap"}
	cfg.CurrentContext = "k1s-bootstrap"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFile(path, data, 0o600)
}

// writeFile replaces path atomically.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
