// Package cachetrim holds the informer transforms k1s components share to
// keep their caches small.
package cachetrim

import "k8s.io/apimachinery/pkg/api/meta"

// StripManagedFields is an informer transform (informers.WithTransform):
// objects are cached without their managedFields, which components that
// only read specs and statuses (and patch what they change) never use and
// which are often the larger part of a small object.
func StripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
