package seedimages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/image/imagetest"
)

// TestImagesThroughTheMirror builds the images, serves them, and pulls
// each by the name the manifests use through the generated registries.yaml.
func TestImagesThroughTheMirror(t *testing.T) {
	if _, err := os.Stat(imagetest.BusyboxBinary); err != nil {
		t.Skip(imagetest.ErrNoBusybox)
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "k1s-app")
	if err := BuildApp("../../..", app); err != nil {
		t.Fatal(err)
	}
	imgs, err := Build(app, dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := StartRegistry(imgs)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	cfg, err := image.ParseRegistryConfig([]byte(reg.Config()))
	if err != nil {
		t.Fatalf("%v\n%s", err, reg.Config())
	}
	s, err := image.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetRegistryConfig(cfg)
	ids := map[string]string{}
	for _, img := range imgs {
		got, err := s.Pull(context.Background(), img.Ref, image.PullOptions{})
		if err != nil {
			t.Fatalf("pull %s: %v", img.Ref, err)
		}
		ids[img.Ref] = got.ID
		layers := got.Layers
		top := s.LayerDir(layers[len(layers)-1])
		base := s.LayerDir(layers[0])
		if _, err := os.Lstat(filepath.Join(base, "bin/nslookup")); err != nil {
			t.Errorf("%s: no busybox applets: %v", img.Ref, err)
		}
		switch {
		case strings.Contains(img.Ref, "terrycho"):
			if _, err := os.Stat(filepath.Join(top, "tmp/healthy")); err != nil {
				t.Errorf("%s: no /tmp/healthy", img.Ref)
			}
			fallthrough
		case img.Ref == "kubetm/app" || img.Ref == "nginx":
			if _, err := os.Stat(filepath.Join(top, AppPath)); err != nil {
				t.Errorf("%s: no %s", img.Ref, AppPath)
			}
		}
	}
	if ids["busybox"] == ids["busybox:1.28"] {
		t.Errorf("busybox and busybox:1.28 are the same image")
	}
	// The stand-in's program runs (static, no loader needed).
	if out, err := exec.Command(app, "--help").CombinedOutput(); err != nil && !strings.Contains(string(out), "-port") {
		t.Errorf("k1s-app --help: %v\n%s", err, out)
	}
}
