package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/image/imagetest"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"quay.io/x/y", "quay.io/x/y:latest"},
		{"localhost:5000/a:b", "localhost:5000/a:b"},
		{"busybox@sha256:" + strings.Repeat("a", 64), "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64)},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "library/UPPER", "a b", "busybox:a:b"} {
		if _, err := Normalize(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Normalize(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

// tarLayer builds a layer from entries: "path" (file "data:path"), "dir/"
// (directory), "link->target" (symlink).
func tarLayer(t *testing.T, entries ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e, "/"):
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e, Mode: 0o755})
		case strings.Contains(e, "->"):
			p := strings.SplitN(e, "->", 2)
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p[0], Linkname: p[1], Mode: 0o777})
		default:
			data := "data:" + e
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e, Mode: 0o644, Size: int64(len(data))})
			_, _ = tw.Write([]byte(data))
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage is two layers, the second deleting a file and making a
// directory opaque, with a config.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, "etc/", "etc/a", "etc/b", "opq/", "opq/old", "bin/", "bin/sh->busybox"),
		tarLayer(t, "etc/.wh.a", "opq/", "opq/.wh..wh..opq", "opq/new"))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "echo hi"}, Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/work", User: "65534"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func openStore(t *testing.T) *Store {
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkTestImage(t *testing.T, s *Store, img *Image, want v1.Image) {
	t.Helper()
	cfgName, _ := want.ConfigName()
	if img.ID != cfgName.String() {
		t.Errorf("ID = %s, want config digest %s", img.ID, cfgName)
	}
	if img.Config.WorkingDir != "/work" || strings.Join(img.Config.Entrypoint, " ") != "/bin/sh" || img.Config.User != "65534" {
		t.Errorf("config = %+v", img.Config)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("layers = %v", img.Layers)
	}
	base, top := s.LayerDir(img.Layers[0]), s.LayerDir(img.Layers[1])
	if data, err := os.ReadFile(filepath.Join(base, "etc/b")); err != nil || string(data) != "data:etc/b" {
		t.Errorf("etc/b = %q, %v", data, err)
	}
	if l, err := os.Readlink(filepath.Join(base, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
	if os.Geteuid() == 0 {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(top, "etc/a"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("whiteout etc/a: %+v, %v", st, err)
		}
		buf := make([]byte, 8)
		if n, err := unix.Getxattr(filepath.Join(top, "opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
			t.Errorf("opaque opq: %q, %v", buf[:n], err)
		}
	}
}

func TestImportDockerSave(t *testing.T) {
	s := openStore(t)
	img := testImage(t)
	path := filepath.Join(t.TempDir(), "save.tar")
	tag, _ := name.NewTag("example.com/team/app:v1")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Import(context.Background(), path, ImportOptions{Name: "app:local"})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Import = %v, %v", imgs, err)
	}
	checkTestImage(t, s, imgs[0], img)
	for _, ref := range []string{"example.com/team/app:v1", "app:local", "docker.io/library/app:local", imgs[0].ID, hexOf(imgs[0].ID)[:12]} {
		got, err := s.Get(ref)
		if err != nil || got.ID != imgs[0].ID {
			t.Errorf("Get(%q) = %v, %v", ref, got, err)
		}
	}
	// Importing again reuses the layers and keeps one record.
	if _, err := s.Import(context.Background(), path, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(); len(list) != 1 || len(list[0].RepoTags) != 2 {
		t.Errorf("after a second import: %+v", list)
	}
}

func TestImportOCILayout(t *testing.T) {
	s := openStore(t)
	img := testImage(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ociRefName: "registry.local/app:2"})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, dir, path)
	imgs, err := s.Import(context.Background(), path, ImportOptions{})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Import = %v, %v", imgs, err)
	}
	checkTestImage(t, s, imgs[0], img)
	if got, err := s.Get("registry.local/app:2"); err != nil || got.ID != imgs[0].ID {
		t.Errorf("Get = %v, %v", got, err)
	}
}

func tarDir(t *testing.T, dir, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, _ := tar.FileInfoHeader(fi, "")
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			_, err = tw.Write(data)
		}
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportRootfs(t *testing.T) {
	s := openStore(t)
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := imagetest.WriteBusyboxRootfs(path); err != nil {
		t.Skip(err)
	}
	imgs, err := s.Import(context.Background(), path, ImportOptions{Name: "busybox"})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Import = %v, %v", imgs, err)
	}
	img := imgs[0]
	if !strings.HasPrefix(img.ID, "sha256:") || len(img.Layers) != 1 || strings.Join(img.RepoTags, ",") != "docker.io/library/busybox:latest" || img.Size < 1<<20 {
		t.Errorf("image = %+v", img)
	}
	if fi, err := os.Stat(filepath.Join(s.LayerDir(img.Layers[0]), "bin/busybox")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("bin/busybox: %v, %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(s.LayerDir(img.Layers[0]), "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp: %v, %v", fi, err)
	}
}

func TestPull(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img := testImage(t)
	ref, _ := name.ParseReference(host + "/team/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	got, err := s.Pull(context.Background(), host+"/team/app:v1", PullOptions{})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	checkTestImage(t, s, got, img)
	digest, _ := img.Digest()
	if strings.Join(got.RepoTags, ",") != host+"/team/app:v1" || strings.Join(got.RepoDigests, ",") != host+"/team/app@"+digest.String() {
		t.Errorf("tags %v digests %v", got.RepoTags, got.RepoDigests)
	}
	if byDigest, err := s.Get(host + "/team/app@" + digest.String()); err != nil || byDigest.ID != got.ID {
		t.Errorf("Get by digest = %v, %v", byDigest, err)
	}
	if _, err := s.Pull(context.Background(), host+"/team/missing:v1", PullOptions{}); err == nil {
		t.Errorf("pulling a missing image succeeded")
	}
}

func TestRemove(t *testing.T) {
	s := openStore(t)
	img := testImage(t)
	path := filepath.Join(t.TempDir(), "save.tar")
	tag, _ := name.NewTag("app:v1")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Import(context.Background(), path, ImportOptions{Name: "app:v2"})
	if err != nil {
		t.Fatal(err)
	}
	id := imgs[0].ID
	if err := s.Remove("app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("app:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(untagged) = %v", err)
	}
	if err := s.Lease("c1", id); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("app:v2"); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove(leased) = %v, want ErrInUse", err)
	}
	_ = s.Release("c1")
	if err := s.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(removed) = %v", err)
	}
	if _, err := os.Stat(s.LayerDir(imgs[0].Layers[0])); !os.IsNotExist(err) {
		t.Errorf("layer dir left after remove: %v", err)
	}
	if err := s.Remove("nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(unknown) = %v", err)
	}
}

func TestCLI(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := imagetest.WriteBusyboxRootfs(path); err != nil {
		t.Skip(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"import", "--data-dir", data, "--name", "busybox", path}, &out, &errb); code != 0 {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"ls", "--data-dir", data}, &out, &errb); code != 0 || !strings.Contains(out.String(), "docker.io/library/busybox") || !strings.Contains(out.String(), "latest") {
		t.Errorf("ls: %d %q %s", code, out.String(), errb.String())
	}
	if code := run([]string{"rm", "--data-dir", data, "busybox"}, &out, &errb); code != 0 {
		t.Errorf("rm: %d %s", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"ls", "--data-dir", data, "-q"}, &out, &errb); code != 0 || out.Len() != 0 {
		t.Errorf("ls after rm: %q", out.String())
	}
	if code := run([]string{"bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: %d", code)
	}
}
