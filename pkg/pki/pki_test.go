package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestPKI(t *testing.T) (*PKI, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	return &PKI{Dir: t.TempDir(), Clock: clk}, clk
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureCACreatesAndReuses(t *testing.T) {
	p, clk := newTestPKI(t)
	ca, err := p.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA cert is not a signing CA: IsCA=%v usage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	if got, want := ca.Cert.NotAfter, t0.Add(CAValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if m := mode(t, filepath.Join(p.Dir, "tls", "ca.key")); m != 0o600 {
		t.Errorf("ca.key mode = %v, want 0600", m)
	}
	if m := mode(t, filepath.Join(p.Dir, "tls", "ca.crt")); m != 0o644 {
		t.Errorf("ca.crt mode = %v, want 0644", m)
	}

	clk.Step(48 * time.Hour)
	again, err := EnsureCA(p.Dir) // the package-level form, real clock
	if err != nil {
		t.Fatal(err)
	}
	if string(again.CertPEM) != string(ca.CertPEM) || string(again.KeyPEM) != string(ca.KeyPEM) {
		t.Error("restart created a new CA instead of reusing the one on disk")
	}
}

func TestEnsureCARefusesHalfACA(t *testing.T) {
	for _, missing := range []string{"ca.crt", "ca.key"} {
		t.Run(missing, func(t *testing.T) {
			p, _ := newTestPKI(t)
			if _, err := p.EnsureCA(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(p.Dir, "tls", missing)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.EnsureCA(); err == nil {
				t.Fatal("EnsureCA with one file missing succeeded; it must not replace the CA silently")
			}
		})
	}
}

var apiHosts = []string{"127.0.0.1", "localhost", "myhost", "192.0.2.2", "10.43.0.1",
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

func TestServingCertVerifiesForEveryHost(t *testing.T) {
	p, _ := newTestPKI(t)
	ca, err := p.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := p.EnsureServingCert(ca, apiHosts)
	if err != nil {
		t.Fatal(err)
	}
	if kp.CertFile != filepath.Join(p.Dir, "tls", "apiserver.crt") {
		t.Errorf("CertFile = %s", kp.CertFile)
	}
	if m := mode(t, kp.KeyFile); m != 0o600 {
		t.Errorf("key mode = %v", m)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, h := range apiHosts {
		_, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("verify for %q: %v", h, err)
		}
	}
	if kp.Cert.Subject.CommonName != "kube-apiserver" {
		t.Errorf("CN = %q", kp.Cert.Subject.CommonName)
	}
}

func TestEnsureServingCertReissue(t *testing.T) {
	tests := []struct {
		name     string
		change   func(t *testing.T, p *PKI, clk *clocktesting.FakeClock) (*CA, []string)
		reissued bool
	}{
		{"same hosts, other order and duplicates", func(t *testing.T, p *PKI, _ *clocktesting.FakeClock) (*CA, []string) {
			h := slices.Clone(apiHosts)
			slices.Reverse(h)
			return mustCA(t, p), append(h, "127.0.0.1", "LOCALHOST")
		}, false},
		{"host added", func(t *testing.T, p *PKI, _ *clocktesting.FakeClock) (*CA, []string) {
			return mustCA(t, p), append(slices.Clone(apiHosts), "192.0.2.3")
		}, true},
		{"host removed", func(t *testing.T, p *PKI, _ *clocktesting.FakeClock) (*CA, []string) {
			return mustCA(t, p), apiHosts[1:]
		}, true},
		{"months later, not yet due", func(t *testing.T, p *PKI, clk *clocktesting.FakeClock) (*CA, []string) {
			clk.Step(LeafValidity - RenewBefore - time.Hour)
			return mustCA(t, p), apiHosts
		}, false},
		{"within renewal window", func(t *testing.T, p *PKI, clk *clocktesting.FakeClock) (*CA, []string) {
			clk.Step(LeafValidity - RenewBefore + time.Hour)
			return mustCA(t, p), apiHosts
		}, true},
		{"CA replaced", func(t *testing.T, p *PKI, _ *clocktesting.FakeClock) (*CA, []string) {
			os.Remove(filepath.Join(p.Dir, "tls", "ca.crt"))
			os.Remove(filepath.Join(p.Dir, "tls", "ca.key"))
			return mustCA(t, p), apiHosts
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clk := newTestPKI(t)
			first, err := p.EnsureServingCert(mustCA(t, p), apiHosts)
			if err != nil {
				t.Fatal(err)
			}
			ca, hosts := tt.change(t, p, clk)
			second, err := p.EnsureServingCert(ca, hosts)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(first.CertPEM) != string(second.CertPEM); got != tt.reissued {
				t.Errorf("reissued = %v, want %v", got, tt.reissued)
			}
			if err := second.Cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("cert not signed by current CA: %v", err)
			}
			onDisk, err := os.ReadFile(second.CertFile)
			if err != nil || string(onDisk) != string(second.CertPEM) {
				t.Errorf("file does not hold the returned cert (err %v)", err)
			}
		})
	}
}

func mustCA(t *testing.T, p *PKI) *CA {
	t.Helper()
	ca, err := p.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestIssueClientCert(t *testing.T) {
	tests := []struct {
		cn   string
		orgs []string
	}{
		{AdminCommonName, []string{AdminOrganization}},
		{KubeletClientCommonName, []string{AdminOrganization}},
		{NodeCommonName("vm"), []string{NodesGroup}},
	}
	p, _ := newTestPKI(t)
	ca := mustCA(t, p)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tt := range tests {
		t.Run(tt.cn, func(t *testing.T) {
			certPEM, keyPEM, err := IssueClientCert(ca, tt.cn, tt.orgs)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(pair.Certificate[0])
			if cert.Subject.CommonName != tt.cn || !slices.Equal(cert.Subject.Organization, tt.orgs) {
				t.Errorf("subject = %v", cert.Subject)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify as client: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("client cert also verifies as a server cert")
			}
		})
	}
}

func TestEnsureClientCertStable(t *testing.T) {
	p, _ := newTestPKI(t)
	ca := mustCA(t, p)
	a, err := p.EnsureClientCert(ca, "client-admin", AdminCommonName, []string{AdminOrganization})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.EnsureClientCert(ca, "client-admin", AdminCommonName, []string{AdminOrganization})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.CertPEM) != string(b.CertPEM) {
		t.Error("client cert reissued without reason")
	}
	c, err := p.EnsureClientCert(ca, "client-admin", AdminCommonName, []string{"other"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.CertPEM) == string(c.CertPEM) {
		t.Error("client cert kept although its groups changed")
	}
	if _, err := p.EnsureClientCert(ca, "../escape", "x", nil); err == nil {
		t.Error("a name with a path separator was accepted")
	}
}

// TestKubeconfigTalksTLS writes a kubeconfig and uses it, through client-go,
// against a server presenting the serving cert and requiring client certs.
func TestKubeconfigTalksTLS(t *testing.T) {
	dir := t.TempDir()
	serving, err := EnsureServingCert(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := IssueClientCert(ca, AdminCommonName, []string{AdminOrganization})
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.TLS.PeerCertificates[0]
		io.WriteString(w, c.Subject.CommonName+"/"+c.Subject.Organization[0])
	}))
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(dir, "kubeconfig.yaml")
	if err := WriteKubeconfig(path, srv.URL, ca.CertPEM, certPEM, keyPEM, ""); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("kubeconfig mode = %v", m)
	}
	loaded, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.CurrentContext != "k1s" || loaded.Contexts["k1s"] == nil ||
		loaded.Contexts["k1s"].Cluster != "k1s" || loaded.Contexts["k1s"].AuthInfo != "k1s" {
		t.Errorf("names: current=%q contexts=%v", loaded.CurrentContext, loaded.Contexts)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "kubernetes-admin/system:masters" {
		t.Errorf("server saw %q", body)
	}
}

func TestEnsureNodeToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := EnsureNodeToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 {
		t.Errorf("token %q: want 64 hex chars", tok)
	}
	if m := mode(t, filepath.Join(dir, NodeTokenFile)); m != 0o600 {
		t.Errorf("mode = %v", m)
	}
	again, err := EnsureNodeToken(dir)
	if err != nil || again != tok {
		t.Errorf("second call = %q, %v; want the same token", again, err)
	}
	other, _ := EnsureNodeToken(t.TempDir())
	if other == tok {
		t.Error("two data dirs got the same token")
	}
	if CAHash([]byte("x")) == CAHash([]byte("y")) {
		t.Error("CAHash collides")
	}
}

func TestMachineHostsAndDefaults(t *testing.T) {
	hosts := append(MachineHosts(), DefaultServingHosts("10.43.0.1", "cluster.local")...)
	name, _ := os.Hostname()
	if name != "" && !slices.Contains(hosts, name) {
		t.Errorf("hosts %v lack the host name %q", hosts, name)
	}
	for _, want := range []string{"127.0.0.1", "localhost", "10.43.0.1", "kubernetes.default.svc.cluster.local"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("hosts lack %s", want)
		}
	}
	p, _ := newTestPKI(t)
	if _, err := p.EnsureServingCert(mustCA(t, p), hosts); err != nil {
		t.Fatal(err)
	}
}
