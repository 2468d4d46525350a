package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// storeImage unpacks img's layers (those not unpacked yet) and records it
// with the given names.
func (s *Store) storeImage(img v1.Image, tags, digests []string) (*Image, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("image config digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	rec := &Image{ID: cfgName.String(), RepoTags: tags, RepoDigests: digests, Config: cf.Config, Layers: []string{}}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("layer diff id: %w", err)
		}
		size, err := s.unpackLayer(diffID.String(), l)
		if err != nil {
			return nil, err
		}
		rec.Layers = append(rec.Layers, diffID.String())
		rec.Size += size
	}
	rec.ContentSize = contentSize(img)
	return s.add(rec)
}

// contentSize is the image's size as containerd reports it (the kubelet's
// "Image size: N bytes"): manifest, config and layers as stored in the
// registry (compressed). 0 when the manifest cannot be read.
func contentSize(img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		return 0
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// unpackLayer extracts l into its layer directory unless it is there
// already; it returns the layer's unpacked size.
func (s *Store) unpackLayer(diffID string, l v1.Layer) (int64, error) {
	dst := s.LayerDir(diffID)
	if _, err := os.Stat(dst); err == nil {
		return dirSize(dst), nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	size, err := Unpack(rc, tmp)
	if err != nil {
		return 0, fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	// Drain (the digest of the uncompressed stream is verified at EOF).
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := rc.Close(); err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return size, nil // unpacked concurrently
		}
		return 0, err
	}
	return size, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Unpack extracts a layer tar stream into dir in overlayfs form: a
// whiteout ".wh.name" becomes a 0:0 character device "name", an opaque
// marker sets trusted.overlay.opaque=y on its directory. Ownership, modes,
// times and xattrs are kept (as root). Entries never escape dir. It returns
// the bytes of regular files written.
func Unpack(r io.Reader, dir string) (int64, error) {
	tr := tar.NewReader(r)
	var size int64
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirTimes []dirTime
	root := os.Geteuid() == 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return size, err
		}
		name := filepath.Clean("/" + hdr.Name)
		if name == "/" {
			if hdr.Typeflag == tar.TypeDir {
				_ = os.Chmod(dir, os.FileMode(hdr.Mode&0o7777)|0o700)
			}
			continue
		}
		parent, base := filepath.Split(name)
		if err := safeParent(dir, parent); err != nil {
			return size, err
		}
		pdir := filepath.Join(dir, parent)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return size, err
		}
		if base == whiteoutOpaque {
			if err := unix.Setxattr(pdir, "trusted.overlay.opaque", []byte("y"), 0); err != nil && root {
				return size, fmt.Errorf("opaque %s: %w", parent, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := filepath.Join(pdir, strings.TrimPrefix(base, whiteoutPrefix))
			_ = os.RemoveAll(target)
			if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil && root {
				return size, fmt.Errorf("whiteout %s: %w", name, err)
			}
			continue
		}
		path := filepath.Join(dir, name)
		if hdr.Typeflag != tar.TypeDir {
			if fi, err := os.Lstat(path); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
				_ = os.RemoveAll(path)
			}
		}
		mode := os.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
				_ = os.RemoveAll(path)
				if err := os.Mkdir(path, 0o755); err != nil {
					return size, err
				}
			}
			dirTimes = append(dirTimes, dirTime{path, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return size, err
			}
			n, err := io.Copy(f, tr)
			size += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return size, err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, path); err != nil {
				return size, err
			}
		case tar.TypeLink:
			target := filepath.Clean("/" + hdr.Linkname)
			tp, _ := filepath.Split(target)
			if err := safeParent(dir, tp); err != nil {
				return size, err
			}
			if err := os.Link(filepath.Join(dir, target), path); err != nil {
				return size, err
			}
			continue // shares the target's metadata
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			m := uint32(unix.S_IFIFO)
			if hdr.Typeflag == tar.TypeChar {
				m = unix.S_IFCHR
			} else if hdr.Typeflag == tar.TypeBlock {
				m = unix.S_IFBLK
			}
			if err := unix.Mknod(path, m|uint32(mode), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				if root {
					return size, err
				}
				continue // devices cannot be made without root
			}
		default:
			continue // pax headers and the like
		}
		if err := applyMetadata(path, hdr, root); err != nil {
			return size, err
		}
	}
	// Directory times last: creating entries changed them.
	for i := len(dirTimes) - 1; i >= 0; i-- {
		d := dirTimes[i]
		_ = os.Chtimes(d.path, d.t, d.t)
	}
	return size, nil
}

func applyMetadata(path string, hdr *tar.Header, root bool) error {
	if root {
		if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			_ = unix.Lsetxattr(path, name, []byte(v), 0)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// chmod after chown: chown clears setuid bits.
		if err := os.Chmod(path, tarMode(hdr)); err != nil {
			return err
		}
	}
	t := hdr.ModTime
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if hdr.AccessTime.IsZero() {
		ts[0] = ts[1]
	}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

func tarMode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

var errEscape = errors.New("path escapes the layer through a symlink")

// safeParent checks that no component of parent (relative to dir) is a
// symlink, so that extracting below it stays inside dir.
func safeParent(dir, parent string) error {
	p := dir
	for _, c := range strings.Split(strings.Trim(parent, "/"), "/") {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s: %w", parent, errEscape)
		}
	}
	return nil
}
