package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A private registry (basic auth, on loopback): a pod with the
// imagePullSecret pulls from it, one without gets ErrImagePull (pull policy
// Always: an image already on the node is not checked again, as upstream).
func TestOCIImagePullSecrets(t *testing.T) {
	s := OCIServer(t)
	src, err := OCIRegistry(t).MirrorRef("busybox")
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(mustRef(t, src))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "k1s" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	private := host + "/private/busybox:v1"
	if err := remote.Write(mustRef(t, private), img, remote.WithAuth(&authn.Basic{Username: "k1s", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}

	ns := s.Namespace(t)
	s.MustKubectl(t, "create", "secret", "docker-registry", "regcred", "-n", ns,
		"--docker-server="+host, "--docker-username=k1s", "--docker-password=s3cret")
	pod := func(name, secrets string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  terminationGracePeriodSeconds: 1
  ` + secrets + `
  containers:
  - {name: c, image: ` + private + `, imagePullPolicy: Always, command: ['sh', '-c', 'sleep 3600']}
---
`
	}
	s.MustApply(t, ns, pod("with-secret", "imagePullSecrets: [{name: regcred}]")+pod("without-secret", ""))
	s.MustKubectl(t, "wait", "--for=condition=Ready", "pod/with-secret", "-n", ns, "--timeout=90s")
	var reason, msg string
	Eventually(t, 60*time.Second, "without-secret: ErrImagePull or ImagePullBackOff", func() (bool, string) {
		reason = s.Jsonpath(t, ns, "pod/without-secret", "{.status.containerStatuses[0].state.waiting.reason}")
		msg = s.Jsonpath(t, ns, "pod/without-secret", "{.status.containerStatuses[0].state.waiting.message}")
		return reason == "ErrImagePull" || reason == "ImagePullBackOff", reason + ": " + msg
	})
	if !strings.Contains(msg, "401") && !strings.Contains(strings.ToLower(msg), "unauthorized") {
		t.Errorf("pull without the secret: %s: %s (want a 401 / unauthorized error)", reason, msg)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
