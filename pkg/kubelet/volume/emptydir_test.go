package volume

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestEmptyDirMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "vol")
	if err := setupEmptyDir(dir, &v1.EmptyDirVolumeSource{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 {
		t.Errorf("mode %v, want drwxrwxrwx as upstream", fi.Mode())
	}
}

func TestEmptyDirMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "mem")
	size := resource.MustParse("1Mi")
	if err := setupEmptyDir(dir, &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &size}); err != nil {
		t.Fatal(err)
	}
	defer unmountUnder(root)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != 0x01021994 { // TMPFS_MAGIC
		t.Errorf("filesystem type %#x, want tmpfs", st.Type)
	}
	if total := st.Blocks * uint64(st.Bsize); total != 1<<20 {
		t.Errorf("size %d, want sizeLimit 1Mi", total)
	}
	// set up again (a restarted agent): not mounted twice
	if err := setupEmptyDir(dir, &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &size}); err != nil {
		t.Fatal(err)
	}
	unmountUnder(root)
	if isMountPoint(dir) {
		t.Error("still mounted after unmountUnder")
	}
}
