package storage

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	apistorage "k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	"k8s.io/client-go/tools/cache"
)

// Prefix of every key, as kube-apiserver's default.
const Prefix = "/registry"

// VersionResolver says which external version a resource is stored as and
// which internal version the registry works on.
type VersionResolver func(gr schema.GroupResource) (storage, memory schema.GroupVersion)

// RESTOptionsGetter hands every resource registry a storage over the one
// shared etcd client (upstream's factory would open a client per resource).
type RESTOptionsGetter struct {
	Etcd       *Etcd
	Serializer runtime.StorageSerializer
	Versions   VersionResolver
	compactor  etcd3.Compactor
}

// NewRESTOptionsGetter starts the compactor (5 minutes of history kept, as
// kube-apiserver) and returns the getter.
func NewRESTOptionsGetter(e *Etcd, s runtime.StorageSerializer, v VersionResolver) *RESTOptionsGetter {
	return &RESTOptionsGetter{
		Etcd:       e,
		Serializer: s,
		Versions:   v,
		compactor:  etcd3.StartCompactorPerEndpoint(e.Client.Client, 5*time.Minute),
	}
}

var _ generic.RESTOptionsGetter = (*RESTOptionsGetter)(nil)

// GetRESTOptions implements generic.RESTOptionsGetter.
func (g *RESTOptionsGetter) GetRESTOptions(gr schema.GroupResource, _ runtime.Object) (generic.RESTOptions, error) {
	storageGV, memoryGV := g.Versions(gr)
	base := storagebackend.NewDefaultConfig(Prefix, nil)
	codec, versioner, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType:  runtime.ContentTypeProtobuf,
		StorageSerializer: g.Serializer,
		StorageVersion:    storageGV,
		MemoryVersion:     memoryGV,
		Config:            *base,
	})
	if err != nil {
		return generic.RESTOptions{}, fmt.Errorf("storage codec for %s: %w", gr, err)
	}
	base.Codec = codec
	base.EncodeVersioner = versioner
	prefix := "/" + gr.Resource
	if gr.Group != "" && !legacyPrefix[gr] {
		prefix = "/" + gr.Group + "/" + gr.Resource
	}
	if p, ok := resourcePrefixes[gr]; ok {
		prefix = p
	}
	return generic.RESTOptions{
		StorageConfig:           base.ForResource(gr),
		Decorator:               g.decorate,
		EnableGarbageCollection: true,
		DeleteCollectionWorkers: 1,
		ResourcePrefix:          prefix,
	}, nil
}

// SharedClient wraps an upstream RESTOptionsGetter so that every resource's
// store uses one etcd client (upstream opens one per resource: ~130 gRPC
// channels for kube-apiserver's resources).
func SharedClient(e *Etcd, inner generic.RESTOptionsGetter) generic.RESTOptionsGetter {
	g := &RESTOptionsGetter{Etcd: e, compactor: etcd3.StartCompactorPerEndpoint(e.Client.Client, 5*time.Minute)}
	return sharedGetter{inner: inner, g: g}
}

type sharedGetter struct {
	inner generic.RESTOptionsGetter
	g     *RESTOptionsGetter
}

func (s sharedGetter) GetRESTOptions(gr schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	o, err := s.inner.GetRESTOptions(gr, example)
	if err != nil {
		return o, err
	}
	o.Decorator = s.g.decorate
	return o, nil
}

// decorate builds an etcd3 store on the shared client, without a watch
// cache: every watch is an etcd watch (memory stays small; one node's
// informers are few).
func (g *RESTOptionsGetter) decorate(config *storagebackend.ConfigForResource, resourcePrefix string,
	_ func(obj runtime.Object) (string, error), newFunc, newListFunc func() runtime.Object,
	_ apistorage.AttrFunc, _ apistorage.IndexerFuncs, _ *cache.Indexers) (apistorage.Interface, factory.DestroyFunc, error) {
	versioner := apistorage.APIObjectVersioner{}
	decoder := etcd3.NewDefaultDecoder(config.Codec, versioner)
	transformer := config.Transformer
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	s, err := etcd3.New(g.Etcd.Client, g.compactor, config.Codec, newFunc, newListFunc, config.Prefix,
		resourcePrefix, config.GroupResource, transformer, config.LeaseManagerConfig,
		decoder, versioner)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {}, nil
}

// Key layout of kube-apiserver, so an etcd written by k1s reads like one
// written by a real cluster.
var legacyPrefix = map[schema.GroupResource]bool{
	{Group: "apps", Resource: "deployments"}:                true,
	{Group: "apps", Resource: "replicasets"}:                true,
	{Group: "apps", Resource: "daemonsets"}:                 true,
	{Group: "apps", Resource: "statefulsets"}:               true,
	{Group: "apps", Resource: "controllerrevisions"}:        true,
	{Group: "batch", Resource: "jobs"}:                      true,
	{Group: "batch", Resource: "cronjobs"}:                  true,
	{Group: "coordination.k8s.io", Resource: "leases"}:      true,
	{Group: "node.k8s.io", Resource: "runtimeclasses"}:      true,
	{Group: "policy", Resource: "poddisruptionbudgets"}:     true,
	{Group: "discovery.k8s.io", Resource: "endpointslices"}: true,
}

var resourcePrefixes = map[schema.GroupResource]string{
	{Resource: "nodes"}:                          "/minions",
	{Resource: "services"}:                       "/services/specs",
	{Resource: "endpoints"}:                      "/services/endpoints",
	{Resource: "replicationcontrollers"}:         "/controllers",
	{Group: "events.k8s.io", Resource: "events"}: "/events",
}
