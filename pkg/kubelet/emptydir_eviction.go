package kubelet

import (
	"fmt"
	"io/fs"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"k1s.dev/k1s/pkg/kubelet/status"
)

// Evicted is the pod status reason of a pod the kubelet evicted.
const reasonEvicted = "Evicted"

// checkEmptyDirLimits evicts the pods whose disk-backed emptyDir holds more
// than its sizeLimit, as the kubelet's eviction manager does (its
// emptyDirLimitEviction; memory-backed ones are bounded by their tmpfs).
// Run with housekeeping (the eviction manager's 10 s).
func (k *Kubelet) checkEmptyDirLimits() {
	for uid := range k.workers.known() {
		w, ok := k.workers.get(uid)
		if !ok {
			continue
		}
		pod, gone, _ := w.snapshot()
		if gone || pod == nil || pod.DeletionTimestamp != nil {
			continue
		}
		if _, done := k.evictions.Load(uid); done {
			continue
		}
		for i := range pod.Spec.Volumes {
			v := &pod.Spec.Volumes[i]
			e := v.EmptyDir
			if e == nil || e.SizeLimit == nil || e.SizeLimit.Sign() <= 0 || e.Medium == v1.StorageMediumMemory {
				continue
			}
			if used := diskUsage(k.volumes.Dir(uid, v)); used > e.SizeLimit.Value() {
				msg := fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", v.Name, e.SizeLimit.String())
				k.evict(pod, msg)
				break
			}
		}
	}
}

// evict fails the pod with reason Evicted (its containers are stopped by
// the pod worker as for any terminal phase).
func (k *Kubelet) evict(pod *v1.Pod, msg string) {
	if _, done := k.evictions.LoadOrStore(pod.UID, msg); done {
		return
	}
	k.recorder.Event(podRef(pod), v1.EventTypeWarning, reasonEvicted, msg)
	k.workers.wake(pod.UID)
}

// eviction is the pending eviction of a pod, if any.
func (k *Kubelet) eviction(uid types.UID) *status.Eviction {
	if msg, ok := k.evictions.Load(uid); ok {
		return &status.Eviction{Reason: reasonEvicted, Message: msg.(string)}
	}
	return nil
}

// diskUsage is the bytes of the files under dir (du's apparent size).
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
