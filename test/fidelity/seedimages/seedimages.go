// Package seedimages builds the images the source documents' demos use,
// as stand-ins made from what the machine has (../shared/reference/README.md,
// "Images used"): every image is Debian's busybox-static with every applet
// (so `kubectl exec` works), plus, for the servers, cmd/k1s-app:
//
//	busybox, busybox:1.28                   busybox, `sh` by default
//	gcr.io/terrycho-sandbox/liveness:v1     seed 001's server.js on 8080 (k1s-app hello),
//	gcr.io/terrycho-sandbox/readiness:v1    shipping /tmp/healthy
//	kubetm/app                              seed 000's app on 8080 (k1s app)
//	nginx                                   static files of /usr/share/nginx/html on 80
//
// A Registry serves them all on loopback; Config is the registries.yaml
// that mirrors docker.io, gcr.io and registry.k8s.io to it. Import puts
// the tagged ones on a node before its server starts, as the reference
// cluster had them; the `latest` ones are pulled from the mirror each time.
package seedimages

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k1s.dev/k1s/pkg/image/imagetest"
)

// Image is one stand-in.
type Image struct {
	// Ref as the manifests write it ("busybox", "gcr.io/terrycho-sandbox/liveness:v1").
	Ref string
	// Present: imported onto the node before it starts (tagged images);
	// else only in the mirror, pulled each time (pull policy Always).
	Present bool
	Image   v1.Image
}

// AppPath is where the images keep cmd/k1s-app.
const AppPath = "/usr/local/bin/k1s-app"

// BuildApp builds cmd/k1s-app, static, at out; repoRoot is the module's
// root directory.
func BuildApp(repoRoot, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/k1s-app")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building cmd/k1s-app: %v\n%s", err, b)
	}
	return nil
}

// created is every image's creation time: builds are reproducible.
var created = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// Build makes the images from the host's /bin/busybox (busybox-static)
// and the static k1s-app binary at appBinary; workDir keeps the layers.
func Build(appBinary, workDir string) ([]Image, error) {
	rootfs := filepath.Join(workDir, "busybox-rootfs.tar")
	if err := imagetest.WriteBusyboxRootfs(rootfs); err != nil {
		return nil, err
	}
	base, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		return nil, err
	}
	app, err := os.ReadFile(appBinary)
	if err != nil {
		return nil, err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	port := func(p string) map[string]struct{} { return map[string]struct{}{p + "/tcp": {}} }
	seed001 := []file{dir("tmp", 0o1777), reg("tmp/healthy", 0o644, nil)}
	specs := []struct {
		ref     string
		present bool
		files   []file
		cfg     v1.Config
	}{
		{"busybox", false, nil, v1.Config{Env: env, Cmd: []string{"sh"}}},
		{"busybox:1.28", true, nil, v1.Config{Env: env, Cmd: []string{"sh"}, Labels: map[string]string{"org.opencontainers.image.version": "1.28"}}},
		{"gcr.io/terrycho-sandbox/liveness:v1", true, seed001,
			v1.Config{Env: env, Cmd: []string{AppPath, "hello"}, ExposedPorts: port("8080")}},
		{"gcr.io/terrycho-sandbox/readiness:v1", true, seed001,
			v1.Config{Env: env, Cmd: []string{AppPath, "hello"}, ExposedPorts: port("8080")}},
		{"kubetm/app", false, nil,
			v1.Config{Env: env, Cmd: []string{AppPath, "--port", "8080"}, ExposedPorts: port("8080")}},
		{"nginx", false, []file{dir("usr/share", 0o755), dir("usr/share/nginx", 0o755), dir("usr/share/nginx/html", 0o755),
			reg("usr/share/nginx/html/index.html", 0o644, []byte(nginxIndex))},
			v1.Config{Env: env, Cmd: []string{AppPath, "static"}, ExposedPorts: port("80"), StopSignal: "SIGQUIT"}},
	}
	var out []Image
	for _, sp := range specs {
		layers := []v1.Layer{base}
		if sp.ref != "busybox" && sp.ref != "busybox:1.28" {
			files := append([]file{dir("usr", 0o755), dir("usr/local", 0o755), dir("usr/local/bin", 0o755),
				reg(strings.TrimPrefix(AppPath, "/"), 0o755, app)}, sp.files...)
			l, err := layerOf(files)
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", goruntime.GOARCH
		cf.Created = v1.Time{Time: created}
		cf.Config = sp.cfg
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		out = append(out, Image{Ref: sp.ref, Present: sp.present, Image: img})
	}
	return out, nil
}

const nginxIndex = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working.</p>
</body>
</html>
`

type file struct {
	hdr  tar.Header
	data []byte
}

func dir(name string, mode int64) file {
	return file{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: created}}
}

func reg(name string, mode int64, data []byte) file {
	return file{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: created}, data: data}
}

func layerOf(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// Registry is an in-process registry on 127.0.0.1 holding the images.
type Registry struct {
	// Host is "127.0.0.1:<port>".
	Host string
	srv  *http.Server
}

// mirrored are the registries Config mirrors, each under a repository
// prefix of its own in the registry (docker.io's at the top).
var mirrored = []struct{ registry, prefix string }{
	{"docker.io", ""},
	{"gcr.io", "gcr.io/"},
	{"registry.k8s.io", "registry.k8s.io/"},
}

// StartRegistry serves the images on a free loopback port, each under
// the repository its registry's mirror maps it to.
func StartRegistry(images []Image) (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: l.Addr().String(),
		srv: &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}}
	go r.srv.Serve(l)
	for _, img := range images {
		repo, err := r.MirrorRef(img.Ref)
		if err != nil {
			r.Close()
			return nil, err
		}
		ref, err := name.ParseReference(repo)
		if err != nil {
			r.Close()
			return nil, err
		}
		if err := remote.Write(ref, img.Image); err != nil {
			r.Close()
			return nil, fmt.Errorf("push %s: %w", repo, err)
		}
	}
	return r, nil
}

// MirrorRef is where the mirror keeps ref ("busybox" →
// "127.0.0.1:N/library/busybox:latest").
func (r *Registry) MirrorRef(ref string) (string, error) {
	t, err := name.NewTag(ref, name.WithDefaultRegistry("docker.io"))
	if err != nil {
		return "", err
	}
	reg := t.RegistryStr()
	if reg == "index.docker.io" {
		reg = "docker.io"
	}
	for _, m := range mirrored {
		if m.registry == reg {
			return r.Host + "/" + m.prefix + t.RepositoryStr() + ":" + t.TagStr(), nil
		}
	}
	return "", fmt.Errorf("%s: registry %s is not mirrored", ref, reg)
}

// Config is a registries.yaml (k3s format) mirroring docker.io, gcr.io
// and registry.k8s.io to the registry over plain HTTP.
func (r *Registry) Config() string {
	var b strings.Builder
	b.WriteString("mirrors:\n")
	for _, m := range mirrored {
		fmt.Fprintf(&b, "  %s:\n    endpoint:\n      - \"http://%s\"\n", m.registry, r.Host)
		if m.prefix != "" {
			fmt.Fprintf(&b, "    rewrite:\n      \"^(.*)$\": \"%s$1\"\n", m.prefix)
		}
	}
	return b.String()
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Import puts the Present images into the image store of dataDir with
// `k1s image import` (k1sBinary), before the server starts.
func Import(k1sBinary, dataDir, workDir string, images []Image) error {
	for i, img := range images {
		if !img.Present {
			continue
		}
		t, err := name.NewTag(img.Ref)
		if err != nil {
			return err
		}
		path := filepath.Join(workDir, fmt.Sprintf("image-%d.tar", i))
		if err := tarball.WriteToFile(path, t, img.Image); err != nil {
			return err
		}
		out, err := exec.Command(k1sBinary, "image", "import", "--data-dir", dataDir, "--name", img.Ref, path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("k1s image import %s: %v\n%s", img.Ref, err, out)
		}
		os.Remove(path)
	}
	return nil
}
