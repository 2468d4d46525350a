package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// Image garbage collection as the kubelet's realImageGCManager does it,
// with its defaults: every 5 minutes, when the image filesystem is 85 %
// used, unused images (least recently used first, none detected less than
// 2 minutes ago) are removed until it is 80 % used.
const (
	imageGCPeriod        = 5 * time.Minute
	imageGCHighThreshold = 85
	imageGCLowThreshold  = 80
	imageGCMinAge        = 2 * time.Minute
)

type imageRecord struct {
	firstDetected time.Time
	lastUsed      time.Time
	size          int64
}

// imageGC keeps what it has seen of each runtime's images.
type imageGC struct {
	mu     sync.Mutex
	images map[string]map[string]*imageRecord // runtime name → image id →
}

func (k *Kubelet) imageGCLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(imageGCPeriod):
		}
		for _, rt := range k.runtimes.all() {
			if is, ok := rt.(runtime.ImageService); ok {
				if err := k.garbageCollectImages(ctx, rt.Name(), is); err != nil {
					log.Printf("kubelet: image garbage collection: %v", err)
				}
			}
		}
	}
}

// garbageCollectImages is one pass over one runtime's images.
func (k *Kubelet) garbageCollectImages(ctx context.Context, name string, is runtime.ImageService) error {
	now := k.clock.Now()
	imgs, err := is.ListImages(ctx)
	if err != nil {
		return err
	}
	records := k.imageGC.detect(name, imgs, now)
	capacity, available, err := is.ImageFsStats(ctx)
	if err != nil || capacity == 0 {
		return err
	}
	usage := 100 - int(available*100/capacity)
	if usage < imageGCHighThreshold {
		return nil
	}
	toFree := int64(capacity)*(100-imageGCLowThreshold)/100 - int64(available)
	freed := k.freeImageSpace(ctx, is, imgs, records, toFree, now)
	if freed < toFree {
		msg := fmt.Sprintf("Failed to garbage collect required amount of images. Attempted to free %d bytes, but only found %d bytes eligible to free.", toFree, freed)
		k.recorder.Event(k.nodeRef(), v1.EventTypeWarning, "FreeDiskSpaceFailed", msg)
		return errors.New(msg)
	}
	return nil
}

// detect records first sight and last use of every image.
func (g *imageGC) detect(name string, imgs []runtime.ImageInfo, now time.Time) map[string]*imageRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.images == nil {
		g.images = map[string]map[string]*imageRecord{}
	}
	recs := g.images[name]
	if recs == nil {
		recs = map[string]*imageRecord{}
		g.images[name] = recs
	}
	present := map[string]bool{}
	for _, img := range imgs {
		present[img.ID] = true
		r := recs[img.ID]
		if r == nil {
			r = &imageRecord{firstDetected: now}
			recs[img.ID] = r
		}
		r.size = img.SizeBytes
		if img.InUse {
			r.lastUsed = now
		}
	}
	for id := range recs {
		if !present[id] {
			delete(recs, id)
		}
	}
	out := make(map[string]*imageRecord, len(recs))
	for id, r := range recs {
		c := *r
		out[id] = &c
	}
	return out
}

// freeImageSpace removes unused images, least recently used first, until
// toFree bytes are freed; it returns what it freed.
func (k *Kubelet) freeImageSpace(ctx context.Context, is runtime.ImageService, imgs []runtime.ImageInfo, records map[string]*imageRecord, toFree int64, now time.Time) int64 {
	var candidates []runtime.ImageInfo
	for _, img := range imgs {
		if !img.InUse {
			candidates = append(candidates, img)
		}
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		a, b := records[candidates[i].ID], records[candidates[j].ID]
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Before(b.lastUsed)
		}
		return a.firstDetected.Before(b.firstDetected)
	})
	var freed int64
	for _, img := range candidates {
		if freed >= toFree {
			break
		}
		if now.Sub(records[img.ID].firstDetected) < imageGCMinAge {
			continue
		}
		if err := is.RemoveImage(ctx, img.ID); err != nil {
			log.Printf("kubelet: removing image %s: %v", img.ID, err)
			continue
		}
		log.Printf("kubelet: image garbage collection removed %s (%v, %d bytes)", img.ID, img.RepoTags, img.SizeBytes)
		freed += img.SizeBytes
	}
	return freed
}
