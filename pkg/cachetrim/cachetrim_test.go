package cachetrim

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestStripManagedFields(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := StripManagedFields(p)
	if err != nil || out.(*v1.Pod).ManagedFields != nil || out.(*v1.Pod).Name != "p" {
		t.Fatalf("got %+v, %v", out, err)
	}
	// Not an object (a tombstone): passed through untouched.
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/p"}
	if out, err := StripManagedFields(tomb); err != nil || out != tomb {
		t.Fatalf("tombstone: %+v, %v", out, err)
	}
}
