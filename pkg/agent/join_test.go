package agent

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/pki"
)

func TestClientCertValid(t *testing.T) {
	ca, err := pki.New(t.TempDir()).EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.New(t.TempDir()).EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA, cn string) *x509.Certificate {
		certPEM, _, err := ca.IssueClientCert(cn, []string{pki.NodesGroup})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	tests := []struct {
		name string
		cert *x509.Certificate
		at   time.Time
		want bool
	}{
		{name: "this node's, from the trusted CA", cert: issue(ca, "system:node:n1"), at: now, want: true},
		{name: "another node's (--node-name changed)", cert: issue(ca, "system:node:n2"), at: now},
		{name: "from another CA (server reinstalled)", cert: issue(other, "system:node:n1"), at: now},
		{name: "expired", cert: issue(ca, "system:node:n1"), at: now.Add(2 * pki.LeafValidity)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientCertValid(tt.cert, ca.CertPEM, "n1", tt.at); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUsableKubeconfig(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.New(t.TempDir()).EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, ca.CertPEM, 0o644)
	certPEM, keyPEM, err := ca.IssueClientCert("system:node:n1", []string{pki.NodesGroup})
	if err != nil {
		t.Fatal(err)
	}
	pair := filepath.Join(dir, "kubelet-client-current.pem")
	os.WriteFile(pair, append(certPEM, keyPEM...), 0o600)
	kc := filepath.Join(dir, "kubelet.kubeconfig")
	os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority: `+caFile+`}}]
users: [{name: u, user: {client-certificate: `+pair+`, client-key: `+pair+`}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
	tests := []struct {
		name, server, node string
		ca                 []byte
		want               bool
	}{
		{name: "same server, CA and node", server: "https://127.0.0.1:6443", node: "n1", ca: ca.CertPEM, want: true},
		{name: "another server", server: "https://127.0.0.1:7443", node: "n1", ca: ca.CertPEM},
		{name: "another node name", server: "https://127.0.0.1:6443", node: "n2", ca: ca.CertPEM},
		{name: "another CA", server: "https://127.0.0.1:6443", node: "n1", ca: []byte("other")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := usableKubeconfig(kc, tt.server, tt.ca, tt.node); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if usableKubeconfig(filepath.Join(dir, "absent"), "https://127.0.0.1:6443", ca.CertPEM, "n1") {
		t.Errorf("absent kubeconfig usable")
	}
}
