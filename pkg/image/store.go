// Package image is the node's content-addressed image store: images
// imported from tarballs (docker save, OCI image layouts, plain rootfs
// tarballs like `docker import`) or pulled from registries, with their
// layers unpacked once into per-layer directories that runtimes stack
// with overlayfs.
//
// # Layout under the store's root
//
//	images/<config hex>.json   one record per image: id, tags, repo digests,
//	                           layer diff ids, size, the image config
//	layers/<diff id hex>/      an unpacked layer (overlayfs whiteouts:
//	                           0:0 character devices and
//	                           trusted.overlay.opaque=y directories)
//	leases/<holder>            the image id a container uses (Remove refuses
//	                           an image with leases, as docker refuses to
//	                           remove an image a container uses)
//	tmp/                       unpacking in progress
//	lock                       flock: one writer at a time, across processes
//	                           (`k1s image import` while an agent runs)
//
// Queries read the records from disk each time, so an image imported by
// another process is visible at once. Layers are not deleted when an image
// is removed while another image shares them; Remove deletes the layers no
// remaining image references.
//
// Names are normalised as docker does ("busybox" →
// "docker.io/library/busybox:latest"); an image's ID is its config digest
// ("sha256:...").
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// ErrNotFound: no image by that name or id.
var ErrNotFound = errors.New("image not found")

// ErrInvalidName: the reference cannot be parsed.
var ErrInvalidName = errors.New("invalid image name")

// ErrInUse: Remove of an image a container uses.
var ErrInUse = errors.New("image is in use")

// Image is one image of the store.
type Image struct {
	// ID is the config digest, "sha256:<hex>".
	ID string `json:"id"`
	// RepoTags are normalised references with a tag
	// ("docker.io/library/busybox:latest").
	RepoTags []string `json:"repoTags,omitempty"`
	// RepoDigests are "<repository>@<manifest digest>".
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Layers are the uncompressed layer digests (diff ids), base first.
	Layers []string `json:"layers"`
	// Size is the sum of the layers' uncompressed sizes.
	Size int64 `json:"size"`
	// ContentSize is manifest + config + layers as the registry stores
	// them (compressed): containerd's image size.
	ContentSize int64     `json:"contentSize,omitempty"`
	Config      v1.Config `json:"config"`
}

// Store is an image store rooted at a directory. Safe for concurrent use
// by several goroutines and processes.
type Store struct {
	root       string
	registries atomic.Pointer[RegistryConfig]
}

// Open creates (if needed) and opens the store at root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"images", "layers", "leases", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// The layers directory must be traversable for containers' users.
	_ = os.Chmod(filepath.Join(abs, "layers"), 0o711)
	_ = os.Chmod(abs, 0o711)
	return &Store{root: abs}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// LayerDir is the directory of an unpacked layer (diff id "sha256:...").
func (s *Store) LayerDir(diffID string) string {
	return filepath.Join(s.root, "layers", hexOf(diffID))
}

func hexOf(digest string) string {
	if i := strings.IndexByte(digest, ':'); i >= 0 {
		return digest[i+1:]
	}
	return digest
}

// lock takes the store's cross-process write lock.
func (s *Store) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// Normalize returns the docker-normalised reference: "busybox" →
// "docker.io/library/busybox:latest"; digest references are kept.
func Normalize(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("%w: couldn't parse image name %q: %v", ErrInvalidName, ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// List returns every image, sorted by first tag then id.
func (s *Store) List() ([]*Image, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "images"))
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var img Image
		data, err := os.ReadFile(filepath.Join(s.root, "images", e.Name()))
		if err != nil || json.Unmarshal(data, &img) != nil {
			continue // removed meanwhile, or half-written by a crash
		}
		out = append(out, &img)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := firstOr(out[i].RepoTags), firstOr(out[j].RepoTags)
		if a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return "~" // untagged last
	}
	return s[0]
}

// Get finds an image by reference (normalised), repo digest, id
// ("sha256:<hex>") or a unique id prefix of at least 4 hex digits.
func (s *Store) Get(ref string) (*Image, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	return find(imgs, ref)
}

func find(imgs []*Image, ref string) (*Image, error) {
	id := strings.TrimPrefix(ref, "sha256:")
	if isHex(id) && len(id) >= 4 {
		var match *Image
		for _, img := range imgs {
			if strings.HasPrefix(hexOf(img.ID), id) {
				if match != nil {
					return nil, fmt.Errorf("image %q: ambiguous id prefix", ref)
				}
				match = img
			}
		}
		if match != nil {
			return match, nil
		}
		if len(id) == 64 {
			return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
		}
	}
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		for _, t := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
			if t == norm {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) recordPath(id string) string {
	return filepath.Join(s.root, "images", hexOf(id)+".json")
}

func (s *Store) writeRecord(img *Image) error {
	data, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "record-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), s.recordPath(img.ID))
}

// add records img (whose layers are unpacked) under the lock: tags and
// digests move from other images to it, as docker moves a tag.
func (s *Store) add(img *Image) (*Image, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, n := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
		names[n] = true
	}
	merged := img
	for _, other := range imgs {
		if other.ID == img.ID {
			merged.RepoTags = union(other.RepoTags, img.RepoTags)
			merged.RepoDigests = union(other.RepoDigests, img.RepoDigests)
			continue
		}
		tags, digests := without(other.RepoTags, names), without(other.RepoDigests, names)
		if len(tags) != len(other.RepoTags) || len(digests) != len(other.RepoDigests) {
			other.RepoTags, other.RepoDigests = tags, digests
			if err := s.writeRecord(other); err != nil {
				return nil, err
			}
		}
	}
	if err := s.writeRecord(merged); err != nil {
		return nil, err
	}
	return merged, nil
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func without(list []string, drop map[string]bool) []string {
	var out []string
	for _, s := range list {
		if !drop[s] {
			out = append(out, s)
		}
	}
	return out
}

// Remove untags ref; when ref is an id (or the image's last name) the
// image is deleted, with the layers no other image uses. An image a lease
// holds is ErrInUse.
func (s *Store) Remove(ref string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	imgs, err := s.List()
	if err != nil {
		return err
	}
	img, err := find(imgs, ref)
	if err != nil {
		return err
	}
	if norm, err := Normalize(ref); err == nil && !strings.HasPrefix(img.ID, ref) && !strings.HasPrefix(hexOf(img.ID), ref) {
		img.RepoTags = without(img.RepoTags, map[string]bool{norm: true})
		img.RepoDigests = without(img.RepoDigests, map[string]bool{norm: true})
		if len(img.RepoTags)+len(img.RepoDigests) > 0 {
			return s.writeRecord(img)
		}
	}
	holders, err := s.leaseHolders(img.ID)
	if err != nil {
		return err
	}
	if len(holders) > 0 {
		return fmt.Errorf("image %s is used by container %s: %w", img.ID, holders[0], ErrInUse)
	}
	if err := os.Remove(s.recordPath(img.ID)); err != nil && !os.IsNotExist(err) {
		return err
	}
	used := map[string]bool{}
	for _, other := range imgs {
		if other.ID != img.ID {
			for _, l := range other.Layers {
				used[l] = true
			}
		}
	}
	for _, l := range img.Layers {
		if !used[l] {
			if err := removeAll(s.LayerDir(l), filepath.Join(s.root, "tmp")); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeAll renames dir into tmp (atomically out of sight), then deletes it.
func removeAll(dir, tmp string) error {
	dst := filepath.Join(tmp, "rm-"+filepath.Base(dir))
	if err := os.Rename(dir, dst); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.RemoveAll(dst)
}

// Lease records that holder (a container id) uses image id; Remove
// refuses the image until Release.
func (s *Store) Lease(holder, id string) error {
	return os.WriteFile(filepath.Join(s.root, "leases", holder), []byte(id), 0o600)
}

// Release drops holder's lease (no error if it has none).
func (s *Store) Release(holder string) error {
	err := os.Remove(filepath.Join(s.root, "leases", holder))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func (s *Store) leaseHolders(id string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "leases"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(s.root, "leases", e.Name()))
		if err == nil && string(data) == id {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// InUse reports whether a container holds a lease on image id.
func (s *Store) InUse(id string) (bool, error) {
	holders, err := s.leaseHolders(id)
	if os.IsNotExist(err) {
		return false, nil
	}
	return len(holders) > 0, err
}
