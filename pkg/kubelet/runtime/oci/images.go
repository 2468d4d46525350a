package oci

import (
	"context"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

var _ runtime.ImageService = (*Runtime)(nil)

// ListImages implements runtime.ImageService: the node's image store.
func (r *Runtime) ListImages(ctx context.Context) ([]runtime.ImageInfo, error) {
	imgs, err := r.images.List()
	if err != nil {
		return nil, err
	}
	out := make([]runtime.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		inUse, err := r.images.InUse(img.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, runtime.ImageInfo{ID: img.ID, RepoTags: append([]string(nil), img.RepoTags...), SizeBytes: img.Size, InUse: inUse})
	}
	return out, nil
}

// RemoveImage implements runtime.ImageService (image.ErrInUse for an
// image a container holds).
func (r *Runtime) RemoveImage(ctx context.Context, id string) error {
	return r.images.Remove(id)
}

// ImageFsStats implements runtime.ImageService: the filesystem of the
// image store.
func (r *Runtime) ImageFsStats(ctx context.Context) (capacity, available uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(r.images.Root(), &st); err != nil {
		return 0, 0, err
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}
