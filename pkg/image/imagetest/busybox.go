// Package imagetest builds small images for tests that cannot reach a
// registry: a busybox root filesystem from the host's static busybox
// (Debian's busybox-static, /bin/busybox).
package imagetest

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// BusyboxBinary is where Debian's busybox-static installs busybox.
const BusyboxBinary = "/bin/busybox"

// ErrNoBusybox: no static busybox on this host.
var ErrNoBusybox = errors.New("no static busybox at " + BusyboxBinary + " (apt-get install busybox-static)")

// WriteBusyboxRootfs writes a plain rootfs tarball (as `docker export`
// makes) at path: /bin/busybox with a symlink per applet in /bin, /etc
// passwd, group, hosts and nsswitch, and the usual empty directories.
func WriteBusyboxRootfs(path string) error {
	bb, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return ErrNoBusybox
	}
	out, err := exec.Command(BusyboxBinary, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w (is it the static build?)", BusyboxBinary, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	now := time.Unix(1700000000, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = func() error {
		for _, d := range []struct {
			name string
			mode int64
		}{{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"proc", 0o555}, {"root", 0o700},
			{"sys", 0o555}, {"tmp", 0o1777}, {"usr", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755}, {"sbin", 0o755},
			{"var", 0o755}, {"var/www", 0o755}} {
			if err := dir(d.name, d.mode); err != nil {
				return err
			}
		}
		if err := file("bin/busybox", 0o755, bb); err != nil {
			return err
		}
		for _, applet := range strings.Fields(string(out)) {
			if applet == "busybox" || strings.Contains(applet, "/") {
				continue
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
				return err
			}
		}
		for name, data := range map[string]string{
			"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
			"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
			"etc/nsswitch.conf": "hosts: files dns\n",
			"etc/hosts":         "127.0.0.1\tlocalhost\n",
			"etc/hostname":      "busybox\n",
			"etc/resolv.conf":   "",
		} {
			if err := file(name, 0o644, []byte(data)); err != nil {
				return err
			}
		}
		return tw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
