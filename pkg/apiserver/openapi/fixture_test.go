package openapi

import "k1s.dev/k1s/pkg/apiserver/discovery"

// kubeResources is a slice of what kube-apiserver 1.37 serves, written as
// the integrator's registry would describe it.
func kubeResources() []discovery.Resource {
	crud := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	status := []string{"get", "patch", "update"}
	rs := []discovery.Resource{
		{Version: "v1", Resource: "pods", Kind: "Pod", SingularName: "pod", Namespaced: true, Verbs: crud, ShortNames: []string{"po"}, Categories: []string{"all"}},
		{Version: "v1", Resource: "pods/status", Kind: "Pod", Namespaced: true, Verbs: status},
		{Version: "v1", Resource: "pods/binding", Kind: "Binding", Namespaced: true, Verbs: []string{"create"}},
		{Version: "v1", Resource: "pods/eviction", Kind: "Eviction", KindGroup: "policy", KindVersion: "v1", Namespaced: true, Verbs: []string{"create"}},
		{Version: "v1", Resource: "pods/log", Kind: "Pod", Namespaced: true, Verbs: []string{"get"}},
		{Version: "v1", Resource: "pods/exec", Kind: "PodExecOptions", Namespaced: true, Verbs: []string{"create", "get"}},
		{Version: "v1", Resource: "bindings", Kind: "Binding", SingularName: "binding", Namespaced: true, Verbs: []string{"create"}},
		{Version: "v1", Resource: "namespaces", Kind: "Namespace", SingularName: "namespace", Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"}, ShortNames: []string{"ns"}},
		{Version: "v1", Resource: "nodes", Kind: "Node", SingularName: "node", Verbs: crud, ShortNames: []string{"no"}},
		{Version: "v1", Resource: "events", Kind: "Event", SingularName: "event", Namespaced: true, Verbs: crud, ShortNames: []string{"ev"}},
		{Version: "v1", Resource: "services", Kind: "Service", SingularName: "service", Namespaced: true, Verbs: crud, ShortNames: []string{"svc"}, Categories: []string{"all"}},
		{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", SingularName: "deployment", Namespaced: true, Verbs: crud, ShortNames: []string{"deploy"}, Categories: []string{"all"}},
		{Group: "apps", Version: "v1", Resource: "deployments/scale", Kind: "Scale", KindGroup: "autoscaling", KindVersion: "v1", Namespaced: true, Verbs: status},
		{Group: "apps", Version: "v1", Resource: "deployments/status", Kind: "Deployment", Namespaced: true, Verbs: status},
		{Group: "apps", Version: "v1", Resource: "replicasets", Kind: "ReplicaSet", SingularName: "replicaset", Namespaced: true, Verbs: crud, ShortNames: []string{"rs"}, Categories: []string{"all"}},
		{Group: "batch", Version: "v1", Resource: "jobs", Kind: "Job", SingularName: "job", Namespaced: true, Verbs: crud, Categories: []string{"all"}},
		{Group: "events.k8s.io", Version: "v1", Resource: "events", Kind: "Event", SingularName: "event", Namespaced: true, Verbs: crud, ShortNames: []string{"ev"}},
		{Group: "autoscaling", Version: "v1", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", SingularName: "horizontalpodautoscaler", Namespaced: true, Verbs: crud, ShortNames: []string{"hpa"}, Categories: []string{"all"}},
		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", SingularName: "horizontalpodautoscaler", Namespaced: true, Verbs: crud, ShortNames: []string{"hpa"}, Categories: []string{"all"}},
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices", Kind: "EndpointSlice", SingularName: "endpointslice", Namespaced: true, Verbs: crud},
		{Group: "coordination.k8s.io", Version: "v1", Resource: "leases", Kind: "Lease", SingularName: "lease", Namespaced: true, Verbs: crud},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets", Kind: "PodDisruptionBudget", SingularName: "poddisruptionbudget", Namespaced: true, Verbs: crud, ShortNames: []string{"pdb"}},
		{Group: "example.com", Version: "v1", Resource: "widgets", Kind: "Widget", SingularName: "widget", Namespaced: true, Verbs: crud},
		{Group: "example.com", Version: "v1beta1", Resource: "widgets", Kind: "Widget", SingularName: "widget", Namespaced: true, Verbs: crud},
	}
	return append(rs, discovery.MetricsResources()...)
}
