package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	capi "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	certificatesinformers "k8s.io/client-go/informers/certificates/v1"
	"k8s.io/client-go/kubernetes"
	capihelper "k8s.io/kubernetes/pkg/apis/certificates"
	"k8s.io/kubernetes/pkg/controller/certificates"
)

// servingApprovedMessage is the Approved condition's message on kubelet
// serving CSRs k1s approves. Upstream leaves these to an administrator or
// an external approver; k1s approves a node's request for its own name.
const servingApprovedMessage = "Auto approving self kubelet serving certificate."

// servingVerdict says whether a kubernetes.io/kubelet-serving CSR is a
// node's request for its own serving certificate, and why not.
func servingVerdict(csr *capi.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	if csr.Spec.SignerName != capi.KubeletServingSignerName {
		return false, "not a kubelet serving request"
	}
	usages := sets.NewString()
	for _, u := range csr.Spec.Usages {
		usages.Insert(string(u))
	}
	if err := capihelper.ValidateKubeletServingCSR(req, usages); err != nil {
		return false, err.Error()
	}
	if csr.Spec.Username != req.Subject.CommonName || !slices.Contains(csr.Spec.Groups, nodesGroup) {
		return false, fmt.Sprintf("requested by %q, not by the node %q", csr.Spec.Username, req.Subject.CommonName)
	}
	node := strings.TrimPrefix(req.Subject.CommonName, "system:node:")
	for _, name := range req.DNSNames {
		if name != node {
			return false, fmt.Sprintf("DNS name %q is not the node's name", name)
		}
	}
	return true, ""
}

// newServingApprover approves kubelet serving CSRs that servingVerdict
// accepts, with upstream's certificate controller loop.
func newServingApprover(ctx context.Context, client kubernetes.Interface, csrs certificatesinformers.CertificateSigningRequestInformer) *certificates.CertificateController {
	return certificates.NewCertificateController(ctx, "k1s-csrapproving-serving", client, csrs,
		func(ctx context.Context, csr *capi.CertificateSigningRequest) error {
			if len(csr.Status.Certificate) != 0 || csr.Spec.SignerName != capi.KubeletServingSignerName {
				return nil
			}
			if approved, denied := certificates.GetCertApprovalCondition(&csr.Status); approved || denied {
				return nil
			}
			req, err := capihelper.ParseCSR(csr.Spec.Request)
			if err != nil {
				return fmt.Errorf("unable to parse csr %q: %v", csr.Name, err)
			}
			if ok, _ := servingVerdict(csr, req); !ok {
				return nil
			}
			csr = csr.DeepCopy()
			csr.Status.Conditions = append(csr.Status.Conditions, capi.CertificateSigningRequestCondition{
				Type:    capi.CertificateApproved,
				Status:  v1.ConditionTrue,
				Reason:  "AutoApproved",
				Message: servingApprovedMessage,
			})
			_, err = client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
			return err
		})
}
