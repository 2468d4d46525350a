package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k1s.dev/k1s/pkg/pki"
)

// testAPI is a TLS server that answers rootCAPath for the right token and
// records whether the token was ever sent.
type testAPI struct {
	*httptest.Server
	ca        *pki.CA
	tokenSeen atomic.Bool
}

func newTestAPI(t *testing.T, withChain bool, publishedCA []byte) *testAPI {
	t.Helper()
	p := pki.New(t.TempDir())
	ca, err := p.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := p.EnsureServingCert(ca, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if withChain {
		cert.Certificate = append(cert.Certificate, ca.Cert.Raw)
	}
	if publishedCA == nil {
		publishedCA = ca.CertPEM
	}
	api := &testAPI{ca: ca}
	api.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			api.tokenSeen.Store(true)
		}
		if r.URL.Path != rootCAPath || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		json.NewEncoder(w).Encode(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(publishedCA)}})
	}))
	api.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	api.StartTLS()
	t.Cleanup(api.Close)
	return api
}

func TestDiscoverCA(t *testing.T) {
	other := pki.New(t.TempDir())
	otherCA, err := other.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		withChain bool
		// published overrides the ConfigMap's CA (a server lying about it)
		published []byte
		// token: "hash" (the server's CA), "wrong" (another CA's) or bare
		token  string
		pinned string // "", "own", "other"
		// want: ok, or an error text; untrusted marks errors not worth a retry
		wantErr   string
		untrusted bool
		tokenSent bool
	}{
		{name: "chain, hash matches: verified before the token is sent", withChain: true, token: "hash"},
		{name: "chain, wrong hash: refused, token not sent", withChain: true, token: "wrong",
			wantErr: "does not match the token's CA hash", untrusted: true},
		{name: "chain, bare token: trust on first use without sending it", withChain: true},
		{name: "leaf only, bare token: CA fetched with the token", tokenSent: true},
		{name: "leaf only, hash given: refused, token not sent", token: "hash",
			wantErr: "does not present its CA certificate", untrusted: true},
		{name: "leaf only, published CA did not sign the server", published: otherCA.CertPEM, tokenSent: true,
			wantErr: "server certificate not trusted", untrusted: true},
		{name: "pinned CA is used as is", pinned: "own"},
		{name: "pinned CA that no longer signs the server", pinned: "other",
			wantErr: "pinned by an earlier join", untrusted: true},
		{name: "pinned CA replaced when the token names another", withChain: true, pinned: "other", token: "hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newTestAPI(t, tt.withChain, tt.published)
			tok := Token{Secret: "s3cret"}
			switch tt.token {
			case "hash":
				tok.CAHash = pki.CAHash(api.ca.CertPEM)
			case "wrong":
				tok.CAHash = pki.CAHash(otherCA.CertPEM)
			}
			var pinned []byte
			switch tt.pinned {
			case "own":
				pinned = api.ca.CertPEM
			case "other":
				pinned = otherCA.CertPEM
			}
			got, err := discoverCA(context.Background(), api.URL, tok, pinned)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, errUntrusted) != tt.untrusted {
					t.Errorf("untrusted = %v, want %v", errors.Is(err, errUntrusted), tt.untrusted)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if string(got) != string(api.ca.CertPEM) {
				t.Errorf("trusted another CA")
			}
			if api.tokenSeen.Load() != tt.tokenSent {
				t.Errorf("token sent = %v, want %v", api.tokenSeen.Load(), tt.tokenSent)
			}
		})
	}
}

func TestDiscoverCAUnreachableIsRetried(t *testing.T) {
	api := newTestAPI(t, true, nil)
	url := api.URL
	api.Close()
	_, err := discoverCA(context.Background(), url, Token{Secret: "s3cret"}, nil)
	if err == nil || errors.Is(err, errUntrusted) {
		t.Fatalf("err %v, want a retryable error", err)
	}
	if _, err := discoverCA(context.Background(), "http://127.0.0.1:1", Token{Secret: "x"}, nil); err == nil || !strings.Contains(err.Error(), "want https://host:port") {
		t.Errorf("plain http: %v", err)
	}
}

func TestCanonicalCA(t *testing.T) {
	ca, err := pki.New(t.TempDir()).EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	messy := append([]byte("# the cluster CA\n"), ca.CertPEM...)
	messy = append(messy, "\n\n"...)
	got, err := canonicalCA(messy)
	if err != nil {
		t.Fatal(err)
	}
	if pki.CAHash(got) != pki.CAHash(ca.CertPEM) {
		t.Errorf("canonical form differs from the CA file")
	}
	if _, err := canonicalCA([]byte("nothing")); err == nil {
		t.Errorf("no error for a bundle without certificates")
	}
}
