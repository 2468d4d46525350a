package oci

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/image/imagetest"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
)

// shimEnv makes the test binary act as the shim (`<test binary> shim ...`)
// in builds without cgo (with cgo the C shim runs before TestMain).
const shimEnv = "K1S_OCI_TEST_SHIM"

// testCgroupParent holds the tests' container cgroups.
const testCgroupParent = "k1s-test"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(process.ShimMain(os.Args[2:]))
	}
	code := m.Run()
	fixture.cleanup()
	// runc leaves the (empty) parent of the tests' cgroups.
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + testCgroupParent); len(dirs) > 0 {
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
	os.Exit(code)
}

// fixture is the image store and registry all tests share: a busybox
// built from the host's busybox-static, imported into the store and
// pushed to an in-process registry.
var fixture struct {
	once     sync.Once
	skip     string
	dir      string
	store    *image.Store
	registry *httptest.Server
	image    string // the busybox image's reference in the registry
	cleanup  func()
}

func init() { fixture.cleanup = func() {} }

// setup skips t when the oci runtime cannot run here.
func setup(t *testing.T) {
	t.Helper()
	fixture.once.Do(func() {
		if _, err := Available(); err != nil {
			fixture.skip = err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "k1s-oci-test-")
		if err != nil {
			fixture.skip = err.Error()
			return
		}
		fixture.dir = dir
		fixture.cleanup = func() { os.RemoveAll(dir) }
		rootfs := filepath.Join(dir, "busybox.tar")
		if err := imagetest.WriteBusyboxRootfs(rootfs); err != nil {
			fixture.skip = err.Error()
			return
		}
		s, err := image.Open(filepath.Join(dir, "images"))
		if err != nil {
			fixture.skip = err.Error()
			return
		}
		if _, err := s.Import(context.Background(), rootfs, image.ImportOptions{Name: "busybox"}); err != nil {
			fixture.skip = "import busybox: " + err.Error()
			return
		}
		fixture.store = s
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		prev := fixture.cleanup
		fixture.cleanup = func() { srv.Close(); prev() }
		fixture.registry = srv
		fixture.image = strings.TrimPrefix(srv.URL, "http://") + "/library/busybox:latest"
		layer, err := tarball.LayerFromFile(rootfs)
		if err != nil {
			fixture.skip = err.Error()
			return
		}
		img, err := imageWithLayer(layer)
		if err != nil {
			fixture.skip = err.Error()
			return
		}
		ref, _ := name.ParseReference(fixture.image)
		if err := remote.Write(ref, img); err != nil {
			fixture.skip = "push busybox: " + err.Error()
			return
		}
		if _, err := s.Pull(context.Background(), fixture.image, image.PullOptions{}); err != nil {
			fixture.skip = "pull busybox: " + err.Error()
		}
	})
	if fixture.skip != "" {
		t.Skip("oci runtime unavailable: " + fixture.skip)
	}
}

// newTestRuntime is an oci runtime in a temporary directory whose shims
// are this test binary.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	setup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{
		RootDir:      t.TempDir(),
		Images:       fixture.store,
		ShimBinary:   exe,
		ShimEnv:      []string{shimEnv + "=1"},
		HostIP:       "127.0.0.1",
		CgroupParent: "/" + testCgroupParent,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
