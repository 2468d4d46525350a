package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/backoff"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/status"
	v1 "k8s.io/api/core/v1"
	kubeletmetrics "k8s.io/kubernetes/pkg/kubelet/metrics"
	"k8s.io/kubernetes/pkg/util/parsers"
)

// pullErrors keeps the last pull error per back-off key, for the
// ImagePullBackOff waiting message.
type pullErrors struct {
	mu sync.Mutex
	m  map[string]string
}

func (p *pullErrors) set(k, v string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]string{}
	}
	p.m[k] = v
}

func (p *pullErrors) get(k string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[k]
	return v, ok
}

func (p *pullErrors) del(k string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, k)
}

// applyDefaultImageTag adds ":latest" to an image without tag or digest
// (upstream's, with its error texts).
func applyDefaultImageTag(image string) (string, error) {
	_, tag, digest, err := parsers.ParseImageName(image)
	if err != nil {
		return "", err
	}
	if digest == "" && tag != "" && !strings.HasSuffix(image, ":"+tag) {
		image = image + ":" + tag
	}
	return image, nil
}

func defaultPullPolicy(c *v1.Container) v1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	_, tag, digest, err := parsers.ParseImageName(c.Image)
	if err == nil && digest == "" && (tag == "latest" || !strings.Contains(lastSegment(c.Image), ":")) {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}

func lastSegment(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// ensureImage makes the container's image present per its pull policy, with
// upstream's events; on failure it returns the waiting reason and message.
// The image returned is the runtime's normalised reference of it.
func (k *Kubelet) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, rt runtime.Runtime) (image, reason, msg string) {
	ref := containerRef(pod, c)
	requested := c.Image
	image, err := applyDefaultImageTag(requested)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", requested, err)
		k.recorder.Event(ref, v1.EventTypeWarning, "InspectFailed", msg)
		return "", status.InvalidImageName, msg
	}
	policy := defaultPullPolicy(c)
	if policy != v1.PullAlways {
		st, err := rt.ImageStatus(ctx, image)
		switch {
		case err == nil:
			k.recorder.Event(ref, v1.EventTypeNormal, "Pulled",
				fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", requested))
			return imageName(st, requested), "", ""
		case !errors.Is(err, runtime.ErrNotFound):
			msg := fmt.Sprintf("Failed to inspect image %q: %v", "", err)
			k.recorder.Event(ref, v1.EventTypeWarning, "InspectFailed", msg)
			return "", "ImageInspectError", msg
		}
		if policy == v1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", requested)
			k.recorder.Event(ref, v1.EventTypeWarning, "ErrImageNeverPull", msg)
			return "", status.ErrImageNeverPull, msg
		}
	}

	key := backoff.ImageKey(pod, requested)
	if k.imageBackoff.InBackOffSinceUpdate(key, k.clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", requested)
		k.recorder.Event(ref, v1.EventTypeNormal, "BackOff", msg)
		if prev, ok := k.pullErrs.get(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		return "", status.ImagePullBackOff, msg
	}
	k.pullErrs.del(key)
	k.recorder.Event(ref, v1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", requested))
	start := k.clock.Now()
	st, err := rt.PullImage(ctx, image, k.pullAuth(ctx, pod))
	if err != nil {
		k.recorder.Event(ref, v1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", requested, err))
		k.imageBackoff.Next(key, k.clock.Now())
		k.pullErrs.set(key, fmt.Sprintf("%s: %s", status.ErrImagePull, err.Error()))
		return "", status.ErrImagePull, err.Error()
	}
	d := k.clock.Since(start).Truncate(time.Millisecond)
	kubeletmetrics.ImagePullDuration.WithLabelValues(kubeletmetrics.GetImageSizeBucket(uint64(st.SizeBytes))).Observe(d.Seconds())
	k.recorder.Event(ref, v1.EventTypeNormal, "Pulled",
		fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.", requested, d, d, st.SizeBytes))
	k.imageBackoff.GC()
	return imageName(st, requested), "", ""
}

func imageName(st *runtime.ImageStatus, requested string) string {
	if st != nil && st.Ref != "" {
		return st.Ref
	}
	return requested
}
