package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"

	"k1s.dev/k1s/pkg/pki"
)

// servingTemplate is the kubelet serving certificate a node asks for: its
// name and address, as the kubelet's certificate manager does from the
// Node's Hostname and InternalIP.
func servingTemplate(nodeName, nodeIP string) *x509.CertificateRequest {
	t := &x509.CertificateRequest{Subject: pkix.Name{CommonName: pki.NodeCommonName(nodeName), Organization: []string{pki.NodesGroup}}}
	if ip := net.ParseIP(nodeName); ip != nil {
		t.IPAddresses = append(t.IPAddresses, ip)
	} else {
		t.DNSNames = append(t.DNSNames, nodeName)
	}
	if ip := net.ParseIP(nodeIP); ip != nil && !ip.Equal(net.ParseIP(nodeName)) {
		t.IPAddresses = append(t.IPAddresses, ip)
	}
	return t
}

// startCertManager starts a certificate manager that keeps the pair named
// name (kubelet-client, kubelet-server) in certDir, requesting and rotating
// it with CSRs for signer, and waits until it has a certificate.
func startCertManager(ctx context.Context, client kubernetes.Interface, certDir, name, signer string, tmpl *x509.CertificateRequest, usages func(any) []certificatesv1.KeyUsage) (certificate.Manager, error) {
	store, err := certificate.NewFileStore(name, certDir, certDir, "", "")
	if err != nil {
		return nil, err
	}
	m, err := certificate.NewManager(&certificate.Config{
		ClientsetFn:      func(*tls.Certificate) (kubernetes.Interface, error) { return client, nil },
		Template:         tmpl,
		SignerName:       signer,
		GetUsages:        usages,
		CertificateStore: store,
		Name:             name,
		Ctx:              &ctx,
	})
	if err != nil {
		return nil, err
	}
	m.Start()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for m.Current() == nil {
		select {
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return m, nil
}

// ServingTLS is the kubelet API's TLS configuration for a node that joined
// a server: a serving certificate signed by the cluster CA through a
// kubernetes.io/kubelet-serving CSR (kept in certDir and rotated), and the
// cluster CA to verify the API server's client certificate with.
func ServingTLS(ctx context.Context, client kubernetes.Interface, certDir string, caPEM []byte, nodeName, nodeIP string) (*tls.Config, error) {
	m, err := startCertManager(ctx, client, certDir, "kubelet-server", certificatesv1.KubeletServingSignerName,
		servingTemplate(nodeName, nodeIP), certificate.DefaultKubeletServingGetUsages)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := m.Current(); c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("no serving certificate available for the kubelet")
		},
		ClientCAs:  pool,
		ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}, nil
}

// rotateClientCert keeps the node's client certificate (certDir's
// kubelet-client pair, first obtained by Join) renewed before it expires,
// with CSRs the node makes as itself (approved as selfnodeclient). client-go
// reloads the files, so the node's connections pick the new one up.
func rotateClientCert(ctx context.Context, client kubernetes.Interface, certDir, nodeName string) error {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: pki.NodeCommonName(nodeName), Organization: []string{pki.NodesGroup}}}
	_, err := startCertManager(ctx, client, certDir, "kubelet-client", certificatesv1.KubeAPIServerClientKubeletSignerName,
		tmpl, certificate.DefaultKubeletClientGetUsages)
	return err
}

// LocalServingTLS is the serving identity of the server's own node agent,
// issued directly from the CA the server holds (tls/kubelet-<node>.crt),
// and the CA it checks the API server's client certificate against.
func LocalServingTLS(p *pki.PKI, ca *pki.CA, nodeName, nodeIP string) (*tls.Config, error) {
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
