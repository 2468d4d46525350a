// Package pki keeps the certificates, keys, kubeconfigs and node token of a
// k1s data dir, the way kubeadm and k3s lay them out: one self-signed CA that
// signs the API server's serving certificate and every client certificate,
// all kept under <dir>/tls and reused across restarts.
//
// Files (all under <dir>/tls unless noted):
//
//	ca.crt, ca.key                 cluster CA (ECDSA P-256, 10 years)
//	<name>.crt, <name>.key         leaf certificates made by EnsureCert
//	                               (apiserver.crt for the serving cert)
//	<dir>/node-token               shared secret agents present to join
//
// Keys are written 0600, certificates 0644, each by write-to-temp + rename
// so a crash never leaves half a file.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/util/keyutil"
	"k8s.io/utils/clock"
)

const (
	// CAValidity is how long a new CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long a new serving or client certificate is valid
	// (kubeadm's one year).
	LeafValidity = 365 * 24 * time.Hour
	// RenewBefore is how close to expiry a leaf certificate is replaced by
	// EnsureCert (k3s renews 90 days before expiry).
	RenewBefore = 90 * 24 * time.Hour

	// ServingCertName is the file base name of the API server's serving cert.
	ServingCertName = "apiserver"

	// backdate covers small clock differences between machines, as kubeadm does.
	backdate = 5 * time.Minute
)

// Names used by Kubernetes for the identities k1s issues certificates to.
const (
	// AdminCommonName and AdminOrganization are kubeadm's admin identity:
	// the system:masters group is bound to cluster-admin.
	AdminCommonName   = "kubernetes-admin"
	AdminOrganization = "system:masters"
	// KubeletClientCommonName is the API server's identity towards kubelets
	// (logs, exec, port-forward); kubeadm puts it in system:masters too.
	KubeletClientCommonName = "kube-apiserver-kubelet-client"
	// NodesGroup is the group of every node identity system:node:<name>.
	NodesGroup = "system:nodes"
)

// NodeCommonName is the user name a node's client certificate carries.
func NodeCommonName(nodeName string) string { return "system:node:" + nodeName }

// DefaultServingHosts are the names and addresses every API server serving
// certificate carries, besides the machine's own: loopback, the first
// address of the service CIDR (the kubernetes Service) and the in-cluster
// DNS names of that Service.
func DefaultServingHosts(serviceIP string, clusterDomain string) []string {
	return []string{
		"127.0.0.1", "localhost", serviceIP,
		"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + clusterDomain,
	}
}

// PKI manages the files of one data dir. The zero Clock means the real clock.
type PKI struct {
	Dir   string
	Clock clock.PassiveClock
}

// New returns the PKI of a data dir using the real clock.
func New(dir string) *PKI { return &PKI{Dir: dir} }

func (p *PKI) now() time.Time {
	if p.Clock == nil {
		return time.Now()
	}
	return p.Clock.Now()
}

func (p *PKI) tlsDir() string { return filepath.Join(p.Dir, "tls") }

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte

	clock clock.PassiveClock
}

// KeyPair is a certificate with its key, as PEM and as the files they were
// written to (empty for pairs that were not written).
type KeyPair struct {
	CertPEM, KeyPEM   []byte
	CertFile, KeyFile string
	Cert              *x509.Certificate
}

// CertSpec describes a leaf certificate EnsureCert keeps.
type CertSpec struct {
	// Name is the file base name under <dir>/tls: Name.crt and Name.key.
	Name         string
	CommonName   string
	Organization []string
	// Hosts are the subject alternative names: IP addresses and DNS names.
	Hosts []string
	// Usages are the extended key usages (server auth, client auth).
	Usages []x509.ExtKeyUsage
}

// EnsureCA loads dir/tls/ca.{crt,key}, creating a new CA when absent.
func EnsureCA(dir string) (*CA, error) { return New(dir).EnsureCA() }

// EnsureServingCert keeps the API server's serving certificate in
// dir/tls/apiserver.{crt,key}, signed by the data dir's CA (created if
// absent). It is re-issued when its SANs differ from hosts, when the CA
// changed, or when it is within RenewBefore of expiry.
func EnsureServingCert(dir string, hosts []string) (*KeyPair, error) {
	p := New(dir)
	ca, err := p.EnsureCA()
	if err != nil {
		return nil, err
	}
	return p.EnsureServingCert(ca, hosts)
}

// EnsureCA loads the CA of the data dir, creating it when absent.
func (p *PKI) EnsureCA() (*CA, error) {
	certFile := filepath.Join(p.tlsDir(), "ca.crt")
	keyFile := filepath.Join(p.tlsDir(), "ca.key")
	certPEM, cerr := os.ReadFile(certFile)
	keyPEM, kerr := os.ReadFile(keyFile)
	switch {
	case cerr == nil && kerr == nil:
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("loading CA from %s: %w", p.tlsDir(), err)
		}
		ca.clock = p.Clock
		return ca, nil
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return nil, cerr
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return nil, kerr
	default:
		// One of the two is missing: a CA without its key (or the reverse)
		// cannot be used and must not be silently replaced, since every
		// kubeconfig in use trusts it.
		return nil, fmt.Errorf("incomplete CA in %s: need both ca.crt and ca.key", p.tlsDir())
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("k1s-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, err
	}
	// Key first: a crash in between leaves only a key, which the
	// "incomplete CA" check reports instead of reusing half a CA.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ca.clock = p.Clock
	return ca, nil
}

// CAFile is the path of the CA certificate.
func (p *PKI) CAFile() string { return filepath.Join(p.tlsDir(), "ca.crt") }

// EnsureServingCert keeps the API server serving certificate
// (tls/apiserver.{crt,key}, CN kube-apiserver, server auth) with hosts as
// its SANs.
func (p *PKI) EnsureServingCert(ca *CA, hosts []string) (*KeyPair, error) {
	return p.EnsureCert(ca, CertSpec{
		Name:       ServingCertName,
		CommonName: "kube-apiserver",
		Hosts:      hosts,
		Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// EnsureCert loads tls/<Name>.{crt,key} and keeps it when it still matches
// spec (subject, SANs, usages), is signed by ca and is not within
// RenewBefore of expiry; otherwise it issues and writes a new one.
func (p *PKI) EnsureCert(ca *CA, spec CertSpec) (*KeyPair, error) {
	if spec.Name == "" || strings.ContainsAny(spec.Name, `/\`) {
		return nil, fmt.Errorf("invalid certificate name %q", spec.Name)
	}
	certFile := filepath.Join(p.tlsDir(), spec.Name+".crt")
	keyFile := filepath.Join(p.tlsDir(), spec.Name+".key")
	if kp, ok := p.loadMatching(ca, spec, certFile, keyFile); ok {
		return kp, nil
	}
	certPEM, keyPEM, err := ca.issue(spec)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	return &KeyPair{CertPEM: certPEM, KeyPEM: keyPEM, CertFile: certFile, KeyFile: keyFile, Cert: cert}, nil
}

func (p *PKI) loadMatching(ca *CA, spec CertSpec, certFile, keyFile string) (*KeyPair, bool) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, false
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, false
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, false
	}
	key, err := parseSigner(keyPEM)
	if err != nil || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, false
	}
	if cert.CheckSignatureFrom(ca.Cert) != nil {
		return nil, false
	}
	if p.now().Add(RenewBefore).After(cert.NotAfter) {
		return nil, false
	}
	if !certMatches(cert, spec) {
		return nil, false
	}
	return &KeyPair{CertPEM: certPEM, KeyPEM: keyPEM, CertFile: certFile, KeyFile: keyFile, Cert: cert}, true
}

// IssueClientCert issues a client certificate (not written anywhere) for
// the user cn in the groups orgs, e.g. (AdminCommonName,
// []string{AdminOrganization}) or (NodeCommonName("n1"), []string{NodesGroup}).
func (ca *CA) IssueClientCert(cn string, orgs []string) (certPEM, keyPEM []byte, err error) {
	return ca.issue(CertSpec{CommonName: cn, Organization: orgs, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// IssueClientCert issues a client certificate signed by ca. See CA.IssueClientCert.
func IssueClientCert(ca *CA, cn string, orgs []string) (certPEM, keyPEM []byte, err error) {
	return ca.IssueClientCert(cn, orgs)
}

// EnsureClientCert keeps a client certificate in tls/<name>.{crt,key}, so
// that kubeconfigs written from it stay valid across restarts.
func (p *PKI) EnsureClientCert(ca *CA, name, cn string, orgs []string) (*KeyPair, error) {
	return p.EnsureCert(ca, CertSpec{Name: name, CommonName: cn, Organization: orgs,
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func (ca *CA) now() time.Time {
	if ca.clock == nil {
		return time.Now()
	}
	return ca.clock.Now()
}

func (ca *CA) issue(spec CertSpec) (certPEM, keyPEM []byte, err error) {
	if spec.CommonName == "" {
		return nil, nil, errors.New("certificate needs a common name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	ips, dns := splitHosts(spec.Hosts)
	now := ca.now()
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: slices.Clone(spec.Organization)},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  slices.Clone(spec.Usages),
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// certMatches says whether cert was issued for spec.
func certMatches(cert *x509.Certificate, spec CertSpec) bool {
	if cert.Subject.CommonName != spec.CommonName {
		return false
	}
	if !sameStrings(cert.Subject.Organization, spec.Organization) {
		return false
	}
	ips, dns := splitHosts(spec.Hosts)
	if !sameStrings(cert.DNSNames, dns) {
		return false
	}
	var want, have []string
	for _, ip := range ips {
		want = append(want, ip.String())
	}
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	if !sameStrings(have, want) {
		return false
	}
	if len(cert.ExtKeyUsage) != len(spec.Usages) {
		return false
	}
	for _, u := range spec.Usages {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			return false
		}
	}
	return true
}

// splitHosts separates IP addresses from DNS names, dropping empties and
// duplicates (so "127.0.0.1" given twice is one SAN).
func splitHosts(hosts []string) ([]net.IP, []string) {
	var ips []net.IP
	var dns []string
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip4 := ip.To4(); ip4 != nil {
				ip = ip4
			}
			if seen["ip:"+ip.String()] {
				continue
			}
			seen["ip:"+ip.String()] = true
			ips = append(ips, ip)
			continue
		}
		h = strings.ToLower(h)
		if seen["dns:"+h] {
			continue
		}
		seen["dns:"+h] = true
		dns = append(dns, h)
	}
	return ips, dns
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("ca.crt is not a CA certificate")
	}
	key, err := parseSigner(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("ca.key does not match ca.crt")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseSigner(keyPEM []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

func newSerial() *big.Int {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so readers see the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
