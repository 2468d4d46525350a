package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Format of an importable tarball.
type Format string

const (
	FormatDocker Format = "docker-save"
	FormatOCI    Format = "oci-layout"
	FormatRootfs Format = "rootfs"
)

// DetectFormat looks at a (possibly gzipped) tarball's entries: a
// manifest.json makes it a docker save archive (newer docker writes an
// OCI layout too), an oci-layout file an OCI image layout, anything else
// is a plain root filesystem.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := maybeGunzip(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(r)
	oci := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: not a tar archive: %w", path, err)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "manifest.json":
			return FormatDocker, nil
		case "oci-layout":
			oci = true
		}
	}
	if oci {
		return FormatOCI, nil
	}
	return FormatRootfs, nil
}

func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

// ImportOptions for Import.
type ImportOptions struct {
	// Name tags the imported image (all of them for a multi-image
	// archive); required to name a rootfs tarball, optional otherwise
	// (the archive's own tags are used).
	Name string
	// Config of a rootfs image (docker import --change); zero: none.
	Config v1.Config
}

// Import adds the images of a tarball (docker save, OCI image layout or
// plain rootfs, optionally gzipped) to the store.
func (s *Store) Import(ctx context.Context, path string, opts ImportOptions) ([]*Image, error) {
	var extraTag string
	if opts.Name != "" {
		n, err := Normalize(opts.Name)
		if err != nil {
			return nil, err
		}
		extraTag = n
	}
	// Work on an uncompressed file: the readers below open it many times.
	plain, cleanup, err := s.uncompressed(path)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	format, err := DetectFormat(plain)
	if err != nil {
		return nil, err
	}
	switch format {
	case FormatDocker:
		return s.importDocker(ctx, plain, extraTag)
	case FormatOCI:
		return s.importOCI(ctx, plain, extraTag)
	}
	return s.importRootfs(plain, extraTag, opts.Config)
}

func (s *Store) uncompressed(path string) (string, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return path, func() {}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "import-*.tar")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, zr)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}

func (s *Store) importDocker(ctx context.Context, path, extraTag string) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []*Image
	for _, desc := range m {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var tags []string
		var tag *name.Tag
		for _, t := range desc.RepoTags {
			n, err := Normalize(t)
			if err != nil {
				continue
			}
			tags = append(tags, n)
			if tag == nil {
				if nt, err := name.NewTag(t); err == nil {
					tag = &nt
				}
			}
		}
		if tag == nil && len(m) > 1 {
			continue // an untagged image of a multi-image archive cannot be selected
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		if extraTag != "" {
			tags = append(tags, extraTag)
		}
		rec, err := s.storeImage(img, tags, nil)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// ociRefName is the annotation naming an image in an OCI layout index;
// containerd's full name annotation wins when present.
const (
	ociRefName       = "org.opencontainers.image.ref.name"
	containerdNameAn = "io.containerd.image.name"
)

func (s *Store) importOCI(ctx context.Context, path, extraTag string) ([]*Image, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	err = extractPlain(f, dir)
	f.Close()
	if err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s.importIndex(ctx, idx, extraTag, 0)
}

func (s *Store) importIndex(ctx context.Context, idx v1.ImageIndex, extraTag string, depth int) ([]*Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, desc := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var tags []string
		if n := desc.Annotations[containerdNameAn]; n != "" {
			if t, err := Normalize(n); err == nil {
				tags = append(tags, t)
			}
		} else if n := desc.Annotations[ociRefName]; n != "" && strings.ContainsAny(n, "/:") {
			if t, err := Normalize(n); err == nil {
				tags = append(tags, t)
			}
		}
		if extraTag != "" {
			tags = append(tags, extraTag)
		}
		switch {
		case desc.MediaType.IsIndex() && depth < 2:
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return out, err
			}
			// A nested multi-platform index: the node's platform only.
			img, err := pickPlatform(child)
			if err != nil {
				return out, err
			}
			rec, err := s.storeImage(img, tags, nil)
			if err != nil {
				return out, err
			}
			out = append(out, rec)
		case desc.MediaType.IsImage():
			if desc.Platform != nil && !matchesPlatform(desc.Platform) {
				continue
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return out, err
			}
			rec, err := s.storeImage(img, tags, nil)
			if err != nil {
				return out, err
			}
			out = append(out, rec)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the OCI layout has no image for %s/%s", goruntime.GOOS, goruntime.GOARCH)
	}
	return out, nil
}

// NodePlatform is the platform images are resolved to.
func NodePlatform() v1.Platform {
	return v1.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH}
}

func matchesPlatform(p *v1.Platform) bool {
	return p.OS == goruntime.GOOS && p.Architecture == goruntime.GOARCH
}

func pickPlatform(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() && (d.Platform == nil || matchesPlatform(d.Platform)) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for %s/%s in the index", goruntime.GOOS, goruntime.GOARCH)
}

// extractPlain extracts regular files and directories of a tar (an OCI
// layout: blobs and json files) into dir.
func extractPlain(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

func (s *Store) importRootfs(path, tag string, cfg v1.Config) ([]*Image, error) {
	layer, err := tarball.LayerFromFile(path)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goruntime.GOOS, goruntime.GOARCH
	cf.Created = v1.Time{Time: time.Now().UTC().Truncate(time.Second)}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	rec, err := s.storeImage(img, tags, nil)
	if err != nil {
		return nil, err
	}
	return []*Image{rec}, nil
}
