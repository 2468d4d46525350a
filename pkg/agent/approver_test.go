package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	capi "k8s.io/api/certificates/v1"
)

func TestServingVerdict(t *testing.T) {
	serving := []capi.KeyUsage{capi.UsageDigitalSignature, capi.UsageServerAuth}
	tests := []struct {
		name     string
		signer   string
		user     string
		groups   []string
		cn       string
		orgs     []string
		dns      []string
		ips      []string
		usages   []capi.KeyUsage
		approved bool
	}{
		{name: "node asks for its own name and address", approved: true},
		{name: "IP only", dns: []string{}, ips: []string{"10.0.0.7"}, approved: true},
		{name: "with key encipherment (RSA keys)", usages: []capi.KeyUsage{capi.UsageKeyEncipherment, capi.UsageDigitalSignature, capi.UsageServerAuth}, approved: true},
		{name: "another node's name", cn: "system:node:n2", dns: []string{"n2"}},
		{name: "a DNS name that is not the node's", dns: []string{"n1", "kubernetes.default"}},
		{name: "requested by the bootstrap token", user: "k1s-node-bootstrap", groups: []string{"system:bootstrappers", "system:nodes"}},
		{name: "not in system:nodes", groups: []string{"system:authenticated"}},
		{name: "wrong organization", orgs: []string{"system:masters"}},
		{name: "client usage", usages: []capi.KeyUsage{capi.UsageDigitalSignature, capi.UsageClientAuth}},
		{name: "no SAN", dns: []string{}, ips: []string{}},
		{name: "another signer", signer: capi.KubeAPIServerClientKubeletSignerName},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := func(v, d []string) []string {
				if v == nil {
					return d
				}
				return v
			}
			str := func(v, d string) string {
				if v == "" {
					return d
				}
				return v
			}
			req := &x509.CertificateRequest{
				Subject:  pkix.Name{CommonName: str(tt.cn, "system:node:n1"), Organization: def(tt.orgs, []string{"system:nodes"})},
				DNSNames: def(tt.dns, []string{"n1"}),
			}
			for _, ip := range def(tt.ips, []string{"192.0.2.2"}) {
				req.IPAddresses = append(req.IPAddresses, net.ParseIP(ip))
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, req, key)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			usages := tt.usages
			if usages == nil {
				usages = serving
			}
			csr := &capi.CertificateSigningRequest{Spec: capi.CertificateSigningRequestSpec{
				SignerName: str(tt.signer, capi.KubeletServingSignerName),
				Username:   str(tt.user, "system:node:n1"),
				Groups:     def(tt.groups, []string{"system:nodes", "system:authenticated"}),
				Usages:     usages,
			}}
			ok, why := servingVerdict(csr, parsed)
			if ok != tt.approved {
				t.Errorf("approved = %v (%s), want %v", ok, why, tt.approved)
			}
		})
	}
}

func TestServingTemplate(t *testing.T) {
	tmpl := servingTemplate("n1", "192.0.2.2")
	if tmpl.Subject.CommonName != "system:node:n1" || len(tmpl.Subject.Organization) != 1 || tmpl.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %v", tmpl.Subject)
	}
	if len(tmpl.DNSNames) != 1 || tmpl.DNSNames[0] != "n1" || len(tmpl.IPAddresses) != 1 || !tmpl.IPAddresses[0].Equal(net.ParseIP("192.0.2.2")) {
		t.Errorf("SANs %v %v", tmpl.DNSNames, tmpl.IPAddresses)
	}
	// a node named by its address gets it once, as an IP SAN
	tmpl = servingTemplate("192.0.2.2", "192.0.2.2")
	if len(tmpl.DNSNames) != 0 || len(tmpl.IPAddresses) != 1 {
		t.Errorf("SANs %v %v", tmpl.DNSNames, tmpl.IPAddresses)
	}
}
