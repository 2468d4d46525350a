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

func TestSetOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := setOwnership(dir, 2000, true); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: os.ModeDir | os.ModeSetgid | 0o750, filepath.Join(dir, "f"): 0o440} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Gid != 2000 {
			t.Errorf("%s: gid %d, want 2000", p, st.Gid)
		}
		if fi.Mode()&(os.ModeSetgid|0o070) != want&(os.ModeSetgid|0o070) {
			t.Errorf("%s: mode %v, want group bits of %v", p, fi.Mode(), want)
		}
	}
}
