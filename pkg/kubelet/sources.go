package kubelet

import (
	"context"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// apiSource reads ConfigMaps, Secrets, Services and service account tokens
// for container environments and volumes.
type apiSource struct{ k *Kubelet }

func (s *apiSource) ConfigMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	return s.k.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s *apiSource) Secret(ctx context.Context, ns, name string) (*v1.Secret, error) {
	return s.k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s *apiSource) Services() ([]*v1.Service, error) {
	return s.k.serviceLister.List(labels.Everything())
}

// ServiceAccountToken asks the TokenRequest API for a token bound to the pod.
func (s *apiSource) ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, time.Time, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	tr, err := s.k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, err
	}
	return tr.Status.Token, tr.Status.ExpirationTimestamp.Time, nil
}
