package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

type host struct{}

func (host) GetPod(ns, name string) (*v1.Pod, bool) { return nil, false }
func (host) ListPods() []*v1.Pod                    { return nil }
func (host) ContainerLogs(context.Context, *v1.Pod, string, *v1.PodLogOptions, io.Writer, io.Writer) error {
	return nil
}
func (host) CheckRunning(context.Context, *v1.Pod, string) error { return nil }
func (host) Exec(context.Context, *v1.Pod, string, []string, runtime.Streams) error {
	return nil
}
func (host) Attach(context.Context, *v1.Pod, string, runtime.Streams) error { return nil }
func (host) PortForward(context.Context, *v1.Pod, int32, io.ReadWriteCloser) error {
	return nil
}
func (host) Summary(context.Context) (*statsapi.Summary, error) { return &statsapi.Summary{}, nil }

func TestRequireClientCert(t *testing.T) {
	srv := New(host{}, Options{RequireClientCert: true})
	cases := []struct {
		name string
		tls  *tls.ConnectionState
		want int
	}{
		{"plain HTTP", nil, http.StatusUnauthorized},
		{"TLS without a client certificate", &tls.ConnectionState{}, http.StatusUnauthorized},
		{"verified client certificate", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}, http.StatusOK},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.TLS = tc.tls
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
}

func TestAuthorizeClient(t *testing.T) {
	srv := New(host{}, Options{RequireClientCert: true, Authorize: func(c *x509.Certificate) bool {
		return c.Subject.CommonName == "kube-apiserver-kubelet-client"
	}})
	chain := func(cn string) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	for _, tc := range []struct {
		cn   string
		want int
		body string
	}{
		{"kube-apiserver-kubelet-client", http.StatusOK, "ok"},
		{"system:node:other", http.StatusForbidden, "Forbidden (user=system:node:other, verb=get, resource=nodes, subresource=proxy)\n"},
	} {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.TLS = chain(tc.cn)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != tc.want || w.Body.String() != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.cn, w.Code, w.Body.String(), tc.want, tc.body)
		}
	}
}

func TestParseLogOptions(t *testing.T) {
	cases := []struct {
		query   map[string][]string
		check   func(*v1.PodLogOptions) bool
		wantErr string
	}{
		{map[string][]string{"follow": {"true"}, "tailLines": {"10"}, "timestamps": {"1"}},
			func(o *v1.PodLogOptions) bool { return o.Follow && *o.TailLines == 10 && o.Timestamps }, ""},
		{map[string][]string{"tail": {"5"}}, func(o *v1.PodLogOptions) bool { return *o.TailLines == 5 }, ""},
		{map[string][]string{"tail": {"all"}}, func(o *v1.PodLogOptions) bool { return o.TailLines == nil }, ""},
		{map[string][]string{"sinceTime": {"2026-11-26T16:00:00Z"}, "previous": {"true"}},
			func(o *v1.PodLogOptions) bool { return o.SinceTime != nil && o.Previous }, ""},
		{map[string][]string{"limitBytes": {"100"}, "sinceSeconds": {"5"}},
			func(o *v1.PodLogOptions) bool { return *o.LimitBytes == 100 && *o.SinceSeconds == 5 }, ""},
		{map[string][]string{"follow": {"maybe"}}, nil, `{"message": "Unable to decode query."}`},
		{map[string][]string{"sinceSeconds": {"5"}, "sinceTime": {"2026-11-26T16:00:00Z"}}, nil, `{"message": "Invalid request."}`},
		{map[string][]string{"limitBytes": {"0"}}, nil, `{"message": "Invalid request."}`},
	}
	for i, tc := range cases {
		o, err := parseLogOptions(tc.query)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%d: err %v, want %s", i, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !tc.check(o) {
			t.Errorf("%d: %+v %v", i, o, err)
		}
	}
}
