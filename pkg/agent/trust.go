package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"k1s.dev/k1s/pkg/pki"
)

// How an agent comes to trust a server's CA:
//
//  1. A CA pinned by an earlier join (DIR/tls/server-ca.crt) is used as is,
//     unless the token names another CA hash.
//  2. Otherwise the agent opens a TLS connection without credentials and
//     looks for the CA among the certificates the server presents (its
//     serving chain). With a K10<hash>::<secret> token the CA must have that
//     hash, so the secret is never sent to a server that cannot prove it
//     holds the cluster's CA.
//  3. A server that presents only its leaf certificate (kube-apiserver
//     with a --tls-cert-file without the CA) cannot be verified before the
//     secret is sent: with a K10 token the agent refuses; with a bare
//     secret it asks the API for the kube-public/kube-root-ca.crt ConfigMap
//     with the token, over a connection pinned to the leaf seen in step 2,
//     and checks that this CA signed the leaf.
//
// A bare secret (no hash) makes steps 2 and 3 trust on first use, as k3s
// does with short tokens; the CA is then pinned for later starts.

// rootCAPath is where the trusted CA's ConfigMap is read in step 3.
const rootCAPath = "/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt"

// discoverCA returns the canonical PEM of the CA the agent trusts for
// serverURL. pinned is the CA kept from an earlier join (nil if none).
func discoverCA(ctx context.Context, serverURL string, tok Token, pinned []byte) ([]byte, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://host:port", serverURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	chain, err := peerChain(ctx, addr, u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", serverURL, err)
	}
	ca, fetch, err := chooseCA(tok, pinned, chain)
	if err != nil {
		return nil, untrusted(err)
	}
	if fetch {
		if tok.CAHash != "" {
			return nil, untrusted(fmt.Errorf("%s does not present its CA certificate after its serving certificate, so the token's CA hash cannot be checked before the token is sent; join with the bare node token (trust on first use) instead", serverURL))
		}
		klog.InfoS("Joining with a token without CA hash: trusting the server's CA on first use", "server", serverURL)
		published, err := fetchRootCA(ctx, serverURL, tok.Secret, chain[0])
		if err != nil {
			return nil, err
		}
		if ca, err = canonicalCA(published); err != nil {
			return nil, untrusted(fmt.Errorf("kube-root-ca.crt: %w", err))
		}
	}
	if err := verifyServer(ca, chain, u.Hostname()); err != nil {
		if pinned != nil && string(ca) == string(pinned) {
			return nil, untrusted(fmt.Errorf("%w (the CA was pinned by an earlier join; if the server was reinstalled, remove the agent's tls/%s or join with a K10<hash>::<secret> token)", err, serverCAFile))
		}
		return nil, untrusted(err)
	}
	return ca, nil
}

// chooseCA decides from what is known before any credential is sent: the
// CA to trust (ca), or that it must be fetched with the token (fetch).
func chooseCA(tok Token, pinned []byte, chain []*x509.Certificate) (ca []byte, fetch bool, err error) {
	if len(chain) == 0 {
		return nil, false, errors.New("server presented no certificate")
	}
	if pinned != nil && (tok.CAHash == "" || pki.CAHash(pinned) == tok.CAHash) {
		return pinned, false, nil
	}
	for _, c := range chain {
		if !c.IsCA || chain[0].CheckSignatureFrom(c) != nil {
			continue
		}
		ca = pemOf(c)
		if tok.CAHash != "" && pki.CAHash(ca) != tok.CAHash {
			return nil, false, fmt.Errorf("the server's CA (sha256 %s) does not match the token's CA hash %s: not sending the token", pki.CAHash(ca), tok.CAHash)
		}
		return ca, false, nil
	}
	return nil, true, nil
}

// verifyServer checks that ca signed the served chain for host.
func verifyServer(caPEM []byte, chain []*x509.Certificate, host string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate to verify the server with")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("server certificate not trusted: %w", err)
	}
	return nil
}

// peerChain is the certificate chain the server presents, read without
// sending anything but a TLS hello.
func peerChain(ctx context.Context, addr, host string) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true}} //nolint:gosec // verified by the caller
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates, nil
}

// fetchRootCA reads the kube-root-ca.crt ConfigMap with the token, over a
// connection that must present leaf.
func fetchRootCA(ctx context.Context, serverURL, secret string, leaf *x509.Certificate) ([]byte, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // pinned to leaf below, checked against the CA after
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(leaf) {
				return errors.New("server certificate changed during discovery")
			}
			return nil
		},
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+rootCAPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the cluster CA: %s: %s", resp.Status, body)
	}
	var cm v1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	ca := cm.Data["ca.crt"]
	if ca == "" {
		return nil, errors.New("reading the cluster CA: kube-root-ca.crt has no ca.crt")
	}
	return []byte(ca), nil
}

// errUntrusted marks failures to trust the server: retrying cannot help.
var errUntrusted = errors.New("server not trusted")

func untrusted(err error) error { return fmt.Errorf("%w: %w", errUntrusted, err) }

// canonicalCA re-encodes the first certificate of a PEM bundle, which must
// be a CA, the way pki writes ca.crt (so pki.CAHash matches).
func canonicalCA(pemBytes []byte) ([]byte, error) {
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			return nil, errors.New("no CA certificate found")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		if !c.IsCA {
			return nil, errors.New("certificate is not a CA")
		}
		return pemOf(c), nil
	}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
