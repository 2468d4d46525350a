package metrics

import (
	"net/http"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// newSerializer knows the metrics types, the meta types (Status, Table,
// discovery documents) and aggregated discovery, in JSON, YAML and
// protobuf.
func newSerializer() runtime.NegotiatedSerializer {
	return serializer.NewCodecFactory(newScheme()).WithoutConversion()
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	metav1.AddMetaToScheme(scheme)
	if err := metricsv1beta1.AddToScheme(scheme); err != nil {
		panic(err) // a programming error: the types are static
	}
	if err := apidiscoveryv2.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return scheme
}

// restrictions allow the transformations this server can do: a Table of
// metrics (kubectl get) in JSON or YAML, and aggregated discovery.
type restrictions struct{}

var _ negotiation.EndpointRestrictions = restrictions{}

func (restrictions) AllowsMediaTypeTransform(mimeType, mimeSubType string, target *schema.GroupVersionKind) bool {
	if target == nil {
		return true
	}
	switch *target {
	case metav1.SchemeGroupVersion.WithKind("Table"):
		return mimeSubType == "json" || mimeSubType == "yaml"
	case apidiscoveryv2.SchemeGroupVersion.WithKind("APIGroupDiscoveryList"):
		return true
	}
	return false
}
func (restrictions) AllowsServerVersion(string) bool { return false }
func (restrictions) AllowsStreamSchema(string) bool  { return false }

// The discovery documents of metrics.k8s.io, as metrics-server serves them.
var (
	groupVersion = metav1.GroupVersionForDiscovery{
		GroupVersion: metricsv1beta1.SchemeGroupVersion.String(),
		Version:      metricsv1beta1.SchemeGroupVersion.Version,
	}
	apiGroup = metav1.APIGroup{
		Name:             metricsv1beta1.GroupName,
		Versions:         []metav1.GroupVersionForDiscovery{groupVersion},
		PreferredVersion: groupVersion,
	}
	verbs = metav1.Verbs{"get", "list"}
)

func apiResources() []metav1.APIResource {
	return []metav1.APIResource{
		{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
		{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
	}
}

func aggregatedDiscovery() *apidiscoveryv2.APIGroupDiscoveryList {
	var resources []apidiscoveryv2.APIResourceDiscovery
	for _, r := range apiResources() {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		resources = append(resources, apidiscoveryv2.APIResourceDiscovery{
			Resource:     r.Name,
			ResponseKind: &metav1.GroupVersionKind{Group: metricsv1beta1.GroupName, Version: "v1beta1", Kind: r.Kind},
			Scope:        scope,
			Verbs:        r.Verbs,
		})
	}
	return &apidiscoveryv2.APIGroupDiscoveryList{Items: []apidiscoveryv2.APIGroupDiscovery{{
		ObjectMeta: metav1.ObjectMeta{Name: metricsv1beta1.GroupName},
		Versions: []apidiscoveryv2.APIVersionDiscovery{{
			Version:   "v1beta1",
			Resources: resources,
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		}},
	}}}
}

// groupList serves /apis: the aggregated discovery document when the
// client asks for one (the aggregator does), else the APIGroupList.
func (a *API) groupList(w http.ResponseWriter, r *http.Request) {
	opts, _, err := negotiation.NegotiateOutputMediaType(r, a.serializer, restrictions{})
	if err == nil && opts.Convert != nil && opts.Convert.Kind == "APIGroupDiscoveryList" {
		responsewriters.WriteObjectNegotiated(a.serializer, restrictions{}, apidiscoveryv2.SchemeGroupVersion, w, r, http.StatusOK, aggregatedDiscovery(), true)
		return
	}
	list := &metav1.APIGroupList{Groups: []metav1.APIGroup{apiGroup}}
	a.writeDiscovery(w, r, list)
}

func (a *API) group(w http.ResponseWriter, r *http.Request) {
	g := apiGroup
	a.writeDiscovery(w, r, &g)
}

func (a *API) resourceList(w http.ResponseWriter, r *http.Request) {
	a.writeDiscovery(w, r, &metav1.APIResourceList{
		GroupVersion: metricsv1beta1.SchemeGroupVersion.String(),
		APIResources: apiResources(),
	})
}

func (a *API) writeDiscovery(w http.ResponseWriter, r *http.Request, obj runtime.Object) {
	responsewriters.WriteObjectNegotiated(a.serializer, negotiation.DefaultEndpointRestrictions, schema.GroupVersion{Version: "v1"}, w, r, http.StatusOK, obj, false)
}
