package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"k1s.dev/k1s/pkg/pki"
)

func TestFrontProxyAuth(t *testing.T) {
	dir := t.TempDir()
	p := pki.New(dir)
	ca, err := p.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.New(t.TempDir()).EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := servingTLS(p, ca, "127.0.0.1", "vm")
	if err != nil {
		t.Fatal(err)
	}

	var gotUser string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser = r.Header.Get(HeaderUser)
		w.Write([]byte("through"))
	})
	srv := httptest.NewUnstartedServer(NewFrontProxyAuth(next, "front-proxy-client"))
	srv.TLS = serverTLS
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	client := func(signer *pki.CA, cn string) *http.Client {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca.CertPEM)
		cfg := &tls.Config{RootCAs: roots, ServerName: "metrics-server.kube-system.svc"}
		if signer != nil {
			certPEM, keyPEM, err := signer.IssueClientCert(cn, nil)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}

	tests := []struct {
		name   string
		client *http.Client
		path   string
		user   string
		code   int // 0: the TLS handshake fails
	}{
		{"the aggregator, for a user", client(ca, "front-proxy-client"), "/apis/metrics.k8s.io/v1beta1/nodes", "alice", 200},
		{"the aggregator's availability check", client(ca, "front-proxy-client"), "/apis/metrics.k8s.io/v1beta1", "", 200},
		{"another identity of the cluster CA", client(ca, "kubernetes-admin"), "/apis/metrics.k8s.io/v1beta1/nodes", "alice", 401},
		{"a certificate of another CA", client(other, "front-proxy-client"), "/apis/metrics.k8s.io/v1beta1/nodes", "alice", 0},
		{"no certificate", client(nil, ""), "/apis/metrics.k8s.io/v1beta1/nodes", "alice", 401},
		{"health without a certificate", client(nil, ""), "/healthz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotUser = ""
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			if tt.user != "" {
				req.Header.Set(HeaderUser, tt.user)
				req.Header.Add(HeaderGroup, "system:authenticated")
			}
			resp, err := tt.client.Do(req)
			if tt.code == 0 {
				// refused either way: the handshake fails, or (when the
				// client finds its certificate unacceptable to the
				// server's CA list and sends none) the request is 401
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("handshake succeeded: %d", resp.StatusCode)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.code)
			}
			if tt.code == 200 && gotUser != tt.user {
				t.Errorf("user %q, want %q", gotUser, tt.user)
			}
			if tt.code == 401 && gotUser != "" {
				t.Errorf("the request went through")
			}
		})
	}
}
