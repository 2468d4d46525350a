package process

import (
	"context"
	"fmt"

	"github.com/distribution/reference"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// normalizeImage returns the fully qualified reference of image:
// "busybox" → "docker.io/library/busybox:latest"; digests are kept.
func normalizeImage(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("%w: couldn't parse image name %q: %v", runtime.ErrInvalidConfig, image, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// ImageStatus treats every image as present: the host runtime runs host
// programs, so the image is only a name. Ref and ID are the normalised
// reference.
func (r *Runtime) ImageStatus(ctx context.Context, image string) (*runtime.ImageStatus, error) {
	ref, err := normalizeImage(image)
	if err != nil {
		return nil, err
	}
	return &runtime.ImageStatus{Ref: ref, ID: ref}, nil
}

// PullImage has nothing to fetch; it returns ImageStatus.
func (r *Runtime) PullImage(ctx context.Context, image string, auth []runtime.RegistryAuth) (*runtime.ImageStatus, error) {
	return r.ImageStatus(ctx, image)
}
