package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k1s.dev/k1s/pkg/image/imagetest"
)

// TestImageCLI: `k1s image import|ls|rm` on a data dir, with a busybox
// rootfs built from the host's busybox-static.
func TestImageCLI(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), "busybox.tar")
	if err := imagetest.WriteBusyboxRootfs(tarball); err != nil {
		t.Skip(err)
	}
	data := t.TempDir()
	k1s := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"image"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("k1s image %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := k1s("import", "--data-dir", data, "--name", "busybox:1.36", tarball); !strings.Contains(out, "imported sha256:") {
		t.Errorf("import: %q", out)
	}
	out := k1s("ls", "--data-dir", data)
	if !strings.Contains(out, "docker.io/library/busybox") || !strings.Contains(out, "1.36") {
		t.Errorf("ls: %q", out)
	}
	k1s("rm", "--data-dir", data, "busybox:1.36")
	if out := k1s("ls", "--data-dir", data, "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("ls after rm: %q", out)
	}
}
