package metrics

import (
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
)

// Request-header authentication as kube-apiserver configures it for
// aggregated APIs (--requestheader-*).
const (
	HeaderUser  = "X-Remote-User"
	HeaderGroup = "X-Remote-Group"
)

// anonymousPaths answer without a client certificate, as metrics-server's
// health checks do.
var anonymousPaths = []string{"/healthz", "/livez", "/readyz"}

// FrontProxyAuth lets through only requests that come from the
// aggregator: their TLS client certificate must have been verified against
// the cluster CA (the server's tls.Config does that, with
// VerifyClientCertIfGiven) and carry one of AllowedNames as its common
// name. The user the aggregator authenticated is in X-Remote-User (and
// X-Remote-Group); kube-apiserver has already authorized the request, so
// the user is only logged. Its availability checks send no user: they are
// the front proxy itself.
type FrontProxyAuth struct {
	AllowedNames []string
	Next         http.Handler

	serializer runtime.NegotiatedSerializer
}

// NewFrontProxyAuth wraps next.
func NewFrontProxyAuth(next http.Handler, allowedNames ...string) *FrontProxyAuth {
	return &FrontProxyAuth{AllowedNames: allowedNames, Next: next, serializer: newSerializer()}
}

// ServeHTTP implements http.Handler.
func (f *FrontProxyAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if slices.Contains(anonymousPaths, r.URL.Path) {
		f.Next.ServeHTTP(w, r)
		return
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		f.deny(w, r, "no verified client certificate")
		return
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if !slices.Contains(f.AllowedNames, cn) {
		f.deny(w, r, "client certificate "+cn+" is not an allowed front proxy")
		return
	}
	user := r.Header.Get(HeaderUser)
	if user == "" {
		user = cn
	}
	klog.V(4).InfoS("Metrics API request", "user", user, "groups", r.Header.Values(HeaderGroup), "path", r.URL.Path)
	f.Next.ServeHTTP(w, r)
}

func (f *FrontProxyAuth) deny(w http.ResponseWriter, r *http.Request, why string) {
	klog.V(2).InfoS("Unauthorized metrics API request", "reason", why, "remote", r.RemoteAddr, "path", r.URL.Path)
	responsewriters.ErrorNegotiated(apierrors.NewUnauthorized("Unauthorized"), f.serializer, metricsv1beta1.SchemeGroupVersion, w, r)
}
