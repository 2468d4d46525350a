package image

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is an in-process registry on loopback that counts the
// manifest requests it sees, optionally behind basic auth.
type testRegistry struct {
	host string
	mu   sync.Mutex
	hits []string // "METHOD /v2/.../manifests/..."
}

func newTestRegistry(t *testing.T, user, pass string) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if strings.Contains(r.URL.Path, "/manifests/") {
			tr.mu.Lock()
			tr.hits = append(tr.hits, r.Method+" "+r.URL.Path)
			tr.mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	return tr
}

func (r *testRegistry) push(t *testing.T, repoTag string, opts ...remote.Option) {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, testImage(t), opts...); err != nil {
		t.Fatal(err)
	}
}

func (r *testRegistry) served() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hits...)
}

func writeConfig(t *testing.T, yaml string) *RegistryConfig {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadRegistryConfig(p)
	if err != nil {
		t.Fatalf("LoadRegistryConfig: %v", err)
	}
	return c
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestPullThroughMirrors(t *testing.T) {
	mirror := newTestRegistry(t, "", "")
	mirror.push(t, "library/busybox:latest")
	mirror.push(t, "mirror/app:latest")
	mirror.push(t, "terrycho-sandbox/liveness:v1")
	secured := newTestRegistry(t, "alice", "s3cret")
	secured.push(t, "library/nginx:latest", remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	upstream := newTestRegistry(t, "", "") // an image's "own" registry, reached when the mirrors lack it
	upstream.push(t, "team/only-upstream:v1")
	dead := refusedAddr(t)

	tests := []struct {
		name, config, ref string
		wantTag           string
		served            []*testRegistry
		wantErr           string
		notFound          bool
		noUp              bool // DisableDefaultEndpoint
	}{{
		name:    "docker.io through a plain HTTP mirror",
		config:  "mirrors:\n  docker.io:\n    endpoint: [\"http://" + mirror.host + "\"]\n",
		ref:     "busybox",
		wantTag: "docker.io/library/busybox:latest",
		served:  []*testRegistry{mirror},
	}, {
		name:    "rewrite on the mirror",
		config:  "mirrors:\n  docker.io:\n    endpoint: [\"http://" + mirror.host + "\"]\n    rewrite:\n      \"^kubetm/(.*)\": \"mirror/$1\"\n",
		ref:     "kubetm/app",
		wantTag: "docker.io/kubetm/app:latest",
		served:  []*testRegistry{mirror},
	}, {
		name:    "a dead mirror first, then the next one",
		config:  "mirrors:\n  gcr.io:\n    endpoint: [\"http://" + dead + "\", \"" + mirror.host + "\"]\n",
		ref:     "gcr.io/terrycho-sandbox/liveness:v1",
		wantTag: "gcr.io/terrycho-sandbox/liveness:v1",
		served:  []*testRegistry{mirror},
	}, {
		name:    "wildcard mirror",
		config:  "mirrors:\n  \"*\":\n    endpoint: [\"http://" + mirror.host + "\"]\n",
		ref:     "quay.io/library/busybox:latest",
		wantTag: "quay.io/library/busybox:latest",
		served:  []*testRegistry{mirror},
	}, {
		name:    "mirror with basic auth from configs",
		config:  "mirrors:\n  docker.io:\n    endpoint: [\"http://" + secured.host + "\"]\nconfigs:\n  \"" + secured.host + "\":\n    auth: {username: alice, password: s3cret}\n",
		ref:     "nginx",
		wantTag: "docker.io/library/nginx:latest",
		served:  []*testRegistry{secured},
	}, {
		name:    "mirror lacks it: the registry itself",
		config:  "mirrors:\n  \"" + upstream.host + "\":\n    endpoint: [\"http://" + mirror.host + "\"]\n",
		ref:     upstream.host + "/team/only-upstream:v1",
		wantTag: upstream.host + "/team/only-upstream:v1",
		served:  []*testRegistry{mirror, upstream},
	}, {
		name:     "nowhere: not found, as containerd words it",
		config:   "mirrors:\n  \"" + upstream.host + "\":\n    endpoint: [\"http://" + mirror.host + "\"]\n",
		ref:      upstream.host + "/library/busybox:doesnotexist",
		wantErr:  `rpc error: code = NotFound desc = failed to pull and unpack image "` + upstream.host + `/library/busybox:doesnotexist": failed to resolve reference "` + upstream.host + `/library/busybox:doesnotexist": ` + upstream.host + `/library/busybox:doesnotexist: not found`,
		notFound: true,
		served:   []*testRegistry{mirror, upstream},
	}, {
		name:     "docker.io without its default endpoint: not found, offline",
		config:   "mirrors:\n  docker.io:\n    endpoint: [\"http://" + mirror.host + "\"]\n",
		noUp:     true,
		ref:      "busybox:doesnotexist",
		wantErr:  `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/busybox:doesnotexist": failed to resolve reference "docker.io/library/busybox:doesnotexist": docker.io/library/busybox:doesnotexist: not found`,
		notFound: true,
		served:   []*testRegistry{mirror},
	}, {
		name:    "refused loopback registry: plain HTTP HEAD, the dial error",
		config:  "",
		ref:     dead + "/does-not/exist:v1",
		wantErr: `failed to pull and unpack image "` + dead + `/does-not/exist:v1": failed to resolve reference "` + dead + `/does-not/exist:v1": failed to do request: Head "http://` + dead + `/v2/does-not/exist/manifests/v1": dial tcp ` + dead + `: connect: connection refused`,
	}, {
		name:    "wrong credentials",
		config:  "mirrors:\n  docker.io:\n    endpoint: [\"http://" + secured.host + "\"]\nconfigs:\n  \"" + secured.host + "\":\n    auth: {username: alice, password: wrong}\n",
		ref:     "nginx",
		wantErr: "pull access denied",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			cfg := writeConfig(t, tc.config)
			cfg.DisableDefaultEndpoint = tc.noUp
			s.SetRegistryConfig(cfg)
			before := map[*testRegistry]int{}
			for _, r := range []*testRegistry{mirror, secured, upstream} {
				before[r] = len(r.served())
			}
			img, err := s.Pull(context.Background(), tc.ref, PullOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v\nwant %s", err, tc.wantErr)
				}
				if errors.Is(err, ErrNotFound) != tc.notFound {
					t.Errorf("errors.Is(ErrNotFound) = %v", !tc.notFound)
				}
			} else {
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				if len(img.RepoTags) != 1 || img.RepoTags[0] != tc.wantTag {
					t.Errorf("tags = %v, want %s", img.RepoTags, tc.wantTag)
				}
				name := strings.TrimSuffix(tc.wantTag, tc.wantTag[strings.LastIndexByte(tc.wantTag, ':'):])
				if len(img.RepoDigests) == 0 || !strings.HasPrefix(img.RepoDigests[0], name+"@sha256:") {
					t.Errorf("digests = %v, want under %s", img.RepoDigests, name)
				}
				if got, err := s.Get(tc.ref); err != nil || got.ID != img.ID {
					t.Errorf("Get(%s) = %v, %v", tc.ref, got, err)
				}
			}
			for _, r := range tc.served {
				if len(r.served()) == before[r] {
					t.Errorf("registry %s was not asked", r.host)
				}
			}
		})
	}
}

func TestLoadRegistryConfig(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
		check               func(*testing.T, *RegistryConfig)
	}{{
		name: "k3s example",
		yaml: `mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example.com:5000"
      - "http://127.0.0.1:5000/v2"
    rewrite:
      "^rancher/(.*)": "mirror/rancher-images/$1"
  index.docker.io:
    endpoint: ["localhost:5001"]
configs:
  "mirror.example.com:5000":
    auth:
      username: xxxxxx
      password: xxxxxx
    tls:
      insecure_skip_verify: true
`,
		check: func(t *testing.T, c *RegistryConfig) {
			// index.docker.io is Docker Hub too; the "docker.io" entry wins.
			m := c.mirrorOf("docker.io")
			want := []endpoint{{"mirror.example.com:5000", "https"}, {"127.0.0.1:5000", "http"}}
			if m == nil || len(m.endpoints) != 2 || m.endpoints[0] != want[0] || m.endpoints[1] != want[1] {
				t.Fatalf("docker.io mirror = %+v", m)
			}
			if hc, ok := c.hostConfig("mirror.example.com:5000"); !ok || hc.Auth.Username != "xxxxxx" || !hc.TLS.InsecureSkipVerify {
				t.Errorf("configs = %+v", hc)
			}
		},
	}, {
		name: "rewrite and scheme defaults",
		yaml: "mirrors:\n  gcr.io:\n    endpoint: [\"127.0.0.1:5000\", \"mirror.example.com\"]\n    rewrite: {\"^(.*)$\": \"gcr/$1\"}\n",
		check: func(t *testing.T, c *RegistryConfig) {
			m := c.mirrorOf("gcr.io")
			want := []endpoint{{"127.0.0.1:5000", "http"}, {"mirror.example.com", "https"}}
			if len(m.endpoints) != 2 || m.endpoints[0] != want[0] || m.endpoints[1] != want[1] {
				t.Errorf("endpoints = %+v", m.endpoints)
			}
			if got := m.rewriteRepo("terrycho-sandbox/liveness"); got != "gcr/terrycho-sandbox/liveness" {
				t.Errorf("rewrite = %q", got)
			}
			if c.mirrorOf("quay.io") != nil {
				t.Errorf("quay.io has a mirror")
			}
		},
	}, {
		name:    "bad scheme",
		yaml:    "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
		wantErr: "scheme must be http or https",
	}, {
		name:    "bad rewrite",
		yaml:    "mirrors:\n  docker.io:\n    endpoint: [\"http://x\"]\n    rewrite: {\"(\": \"y\"}\n",
		wantErr: "rewrite",
	}, {
		name:    "cert without key",
		yaml:    "configs:\n  x:\n    tls: {cert_file: /c}\n",
		wantErr: "cert_file and key_file",
	}, {
		name: "empty",
		yaml: "",
		check: func(t *testing.T, c *RegistryConfig) {
			if c.mirrorOf("docker.io") != nil {
				t.Errorf("mirror in an empty config")
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "registries.yaml")
			os.WriteFile(p, []byte(tc.yaml), 0o600)
			c, err := LoadRegistryConfig(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	if _, err := LoadRegistryConfig(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Errorf("a missing file loaded")
	}
}
