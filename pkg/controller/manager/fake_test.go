package manager

import (
	"context"
	"fmt"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/scale"
	fakescale "k8s.io/client-go/scale/fake"
	clienttesting "k8s.io/client-go/testing"
)

// fakeCluster is a fake clientset that behaves a little more like an API
// server: generateName, uid and creationTimestamp are filled in on create,
// discovery lists the resources the controllers use, and a metadata client
// reads the same objects (so the garbage collector sees what the typed
// informers see).
type fakeCluster struct {
	cs    *fake.Clientset
	disco *preferredDiscovery
	md    *trackerMetadata
}

var nameSeq atomic.Int64

func newFakeCluster(objs ...runtime.Object) *fakeCluster {
	for _, o := range objs {
		if m, err := meta.Accessor(o); err == nil && m.GetUID() == "" {
			m.SetUID(uuid.NewUUID())
		}
	}
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ca, ok := a.(clienttesting.CreateAction)
		if !ok || a.GetSubresource() != "" {
			return false, nil, nil
		}
		m, err := meta.Accessor(ca.GetObject())
		if err != nil {
			return false, nil, nil
		}
		if m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), nameSeq.Add(1)))
		}
		if m.GetUID() == "" {
			m.SetUID(uuid.NewUUID())
		}
		if ts := m.GetCreationTimestamp(); ts.IsZero() {
			m.SetCreationTimestamp(metav1.Now())
		}
		return false, nil, nil
	})
	disco := &preferredDiscovery{FakeDiscovery: cs.Discovery().(*fakediscovery.FakeDiscovery)}
	disco.Resources = apiResources()
	return &fakeCluster{cs: cs, disco: disco, md: &trackerMetadata{fake: &cs.Fake, kinds: kindsByResource()}}
}

func (f *fakeCluster) Client(string) (kubernetes.Interface, error)            { return f.cs, nil }
func (f *fakeCluster) Metadata(string) (metadata.Interface, error)            { return f.md, nil }
func (f *fakeCluster) Discovery(string) (discovery.DiscoveryInterface, error) { return f.disco, nil }
func (f *fakeCluster) Scales(string, meta.RESTMapper, scale.ScaleKindResolver) (scale.ScalesGetter, error) {
	return &fakescale.FakeScaleClient{}, nil
}

var _ ClientBuilder = (*fakeCluster)(nil)

// preferredDiscovery answers ServerPreferredResources from Resources (the
// fake returns nothing there, and the garbage collector reads it).
type preferredDiscovery struct {
	*fakediscovery.FakeDiscovery
}

func (d *preferredDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	return d.Resources, nil
}

func (d *preferredDiscovery) ServerPreferredResourcesWithContext(context.Context) ([]*metav1.APIResourceList, error) {
	return d.Resources, nil
}

func (d *preferredDiscovery) ServerPreferredNamespacedResources() ([]*metav1.APIResourceList, error) {
	return d.Resources, nil
}

func apiResources() []*metav1.APIResourceList {
	verbs := metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	r := func(name, kind string, namespaced bool) metav1.APIResource {
		return metav1.APIResource{Name: name, Kind: kind, Namespaced: namespaced, Verbs: verbs}
	}
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			r("pods", "Pod", true), r("replicationcontrollers", "ReplicationController", true),
			r("configmaps", "ConfigMap", true), r("serviceaccounts", "ServiceAccount", true),
			r("namespaces", "Namespace", false), r("nodes", "Node", false),
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			r("replicasets", "ReplicaSet", true), r("deployments", "Deployment", true),
		}},
	}
}

func kindsByResource() map[schema.GroupVersionResource]schema.GroupVersionKind {
	m := map[schema.GroupVersionResource]schema.GroupVersionKind{}
	for gvk := range scheme.Scheme.AllKnownTypes() {
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		m[plural] = gvk
	}
	return m
}

// trackerMetadata is a metadata.Interface over the fake clientset's tracker.
type trackerMetadata struct {
	fake  *clienttesting.Fake
	kinds map[schema.GroupVersionResource]schema.GroupVersionKind
}

func (t *trackerMetadata) Resource(gvr schema.GroupVersionResource) metadata.Getter {
	return &trackerResource{t: t, gvr: gvr}
}

type trackerResource struct {
	t   *trackerMetadata
	gvr schema.GroupVersionResource
	ns  string
}

func (r *trackerResource) Namespace(ns string) metadata.ResourceInterface {
	return &trackerResource{t: r.t, gvr: r.gvr, ns: ns}
}

func toPartial(obj runtime.Object, gvk schema.GroupVersionKind) (*metav1.PartialObjectMetadata, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	p := &metav1.PartialObjectMetadata{}
	p.SetGroupVersionKind(gvk)
	p.ObjectMeta = *metaOf(m)
	return p, nil
}

func metaOf(m metav1.Object) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{
		Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		Generation: m.GetGeneration(), CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
		Labels: m.GetLabels(), Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(),
		GenerateName: m.GetGenerateName(),
	}
}

func (r *trackerResource) Get(_ context.Context, name string, _ metav1.GetOptions, _ ...string) (*metav1.PartialObjectMetadata, error) {
	obj, err := r.t.fake.Invokes(clienttesting.NewGetAction(r.gvr, r.ns, name), nil)
	if err != nil {
		return nil, err
	}
	return toPartial(obj, r.t.kinds[r.gvr])
}

func (r *trackerResource) List(_ context.Context, opts metav1.ListOptions) (*metav1.PartialObjectMetadataList, error) {
	gvk := r.t.kinds[r.gvr]
	obj, err := r.t.fake.Invokes(clienttesting.NewListActionWithOptions(r.gvr, gvk, r.ns, opts), nil)
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return nil, err
	}
	out := &metav1.PartialObjectMetadataList{}
	if lm, err := meta.ListAccessor(obj); err == nil {
		out.ResourceVersion = lm.GetResourceVersion()
	}
	for _, it := range items {
		p, err := toPartial(it, gvk)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *p)
	}
	return out, nil
}

func (r *trackerResource) Watch(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := r.t.fake.InvokesWatch(clienttesting.NewWatchActionWithOptions(r.gvr, r.ns, opts))
	if err != nil {
		return nil, err
	}
	gvk := r.t.kinds[r.gvr]
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if p, err := toPartial(e.Object, gvk); err == nil {
			e.Object = p
		}
		return e, true
	}), nil
}

func (r *trackerResource) Delete(_ context.Context, name string, opts metav1.DeleteOptions, _ ...string) error {
	_, err := r.t.fake.Invokes(clienttesting.NewDeleteActionWithOptions(r.gvr, r.ns, name, opts), nil)
	return err
}

func (r *trackerResource) DeleteCollection(_ context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	_, err := r.t.fake.Invokes(clienttesting.NewDeleteCollectionActionWithOptions(r.gvr, r.ns, opts, listOpts), nil)
	return err
}

func (r *trackerResource) Patch(_ context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*metav1.PartialObjectMetadata, error) {
	obj, err := r.t.fake.Invokes(clienttesting.NewPatchSubresourceActionWithOptions(r.gvr, r.ns, name, pt, data, opts, sub...), nil)
	if err != nil {
		return nil, err
	}
	return toPartial(obj, r.t.kinds[r.gvr])
}
