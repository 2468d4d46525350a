// Package discovery serves the API discovery documents kubectl and
// client-go read before anything else, as kube-apiserver 1.37 does:
//
//	GET /api                legacy APIVersions, or the aggregated document
//	                        of the core group when Accept asks for it
//	GET /api/v1             APIResourceList of the core group
//	GET /apis               APIGroupList, or the aggregated document of all
//	                        named groups (apidiscovery.k8s.io v2, v2beta1)
//	GET /apis/<g>           APIGroup
//	GET /apis/<g>/<v>       APIResourceList
//
// The served resources are given as a flat list of Resource; groups,
// preferred versions and their order (kube-apiserver's APIService
// priorities: core, apps, events.k8s.io, authentication.k8s.io, ...) are
// derived from it.
package discovery

import (
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery"
)

// Resource is one resource or subresource the API server serves.
type Resource struct {
	// Group and Version the resource is served at ("" group for core).
	Group, Version string
	// Resource is the plural name ("pods"); a subresource is written
	// "<resource>/<subresource>" ("pods/status", "deployments/scale").
	Resource string
	// Kind of the objects read and written at this path: for subresources
	// the kind of the subresource object (Pod for pods/status, Binding,
	// Scale, Eviction, PodExecOptions for pods/exec, ...).
	Kind string
	// KindGroup and KindVersion are set when Kind lives in another
	// group/version than the resource (deployments/scale: autoscaling, v1;
	// pods/eviction: policy, v1). Leave both empty otherwise.
	KindGroup, KindVersion string
	// SingularName of a top-level resource ("pod"); empty for subresources.
	SingularName string
	// Namespaced says whether the resource lives in namespaces. A
	// subresource has its parent's scope.
	Namespaced bool
	// Verbs are the discovery verbs: create delete deletecollection get list
	// patch update watch (order does not matter).
	Verbs []string
	// ShortNames ("po") and Categories ("all") as kubectl uses them.
	ShortNames, Categories []string
	// StorageVersionHash for a top-level resource; when empty it is
	// computed from the storage version as kube-apiserver does (the
	// resource's own group/version/kind, except where upstream stores in
	// another version). Set NoStorageVersionHash for aggregated APIs
	// (metrics.k8s.io), whose servers publish none.
	StorageVersionHash   string
	NoStorageVersionHash bool
}

// IsSubresource says whether r is a subresource ("pods/status").
func (r Resource) IsSubresource() bool { return strings.Contains(r.Resource, "/") }

// Parent is the top-level resource name ("pods" for "pods/status").
func (r Resource) Parent() string {
	name, _, _ := strings.Cut(r.Resource, "/")
	return name
}

// Subresource is the part after the slash ("status"), or "".
func (r Resource) Subresource() string {
	_, sub, _ := strings.Cut(r.Resource, "/")
	return sub
}

// GroupVersion is "v1" for core, "<group>/<version>" otherwise.
func (r Resource) GroupVersion() string { return groupVersion(r.Group, r.Version) }

func groupVersion(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}

// Group is an API group with its served versions, preferred first.
type Group struct {
	Name             string
	Versions         []string
	PreferredVersion string
}

// priority is an APIService priority: GroupPriorityMinimum orders groups
// (higher first), VersionPriority orders versions inside a group.
type priority struct{ group, version int }

// apiServicePriorities are kube-apiserver 1.37's (cmd/kube-apiserver
// aggregator.go merged with controlplane DefaultGenericAPIServicePriorities),
// plus the aggregator's own group (always first) and metrics-server's
// APIService (groupPriorityMinimum 100, versionPriority 100).
var apiServicePriorities = map[string]priority{
	"/v1":                                   {18000, 1},
	"apiregistration.k8s.io/v1":             {20001, 0},
	"apps/v1":                               {17800, 15},
	"events.k8s.io/v1":                      {17750, 15},
	"events.k8s.io/v1beta1":                 {17750, 5},
	"authentication.k8s.io/v1":              {17700, 15},
	"authentication.k8s.io/v1beta1":         {17700, 9},
	"authentication.k8s.io/v1alpha1":        {17700, 1},
	"authorization.k8s.io/v1":               {17600, 15},
	"autoscaling/v1":                        {17500, 15},
	"autoscaling/v2":                        {17500, 30},
	"autoscaling/v2beta1":                   {17500, 9},
	"autoscaling/v2beta2":                   {17500, 1},
	"batch/v1":                              {17400, 15},
	"batch/v1beta1":                         {17400, 9},
	"batch/v2alpha1":                        {17400, 9},
	"certificates.k8s.io/v1":                {17300, 15},
	"certificates.k8s.io/v1beta1":           {17300, 9},
	"certificates.k8s.io/v1alpha1":          {17300, 1},
	"networking.k8s.io/v1":                  {17200, 15},
	"networking.k8s.io/v1beta1":             {17200, 9},
	"policy/v1":                             {17100, 15},
	"policy/v1beta1":                        {17100, 9},
	"rbac.authorization.k8s.io/v1":          {17000, 15},
	"storage.k8s.io/v1":                     {16800, 15},
	"storage.k8s.io/v1beta1":                {16800, 9},
	"storage.k8s.io/v1alpha1":               {16800, 1},
	"apiextensions.k8s.io/v1":               {16700, 15},
	"admissionregistration.k8s.io/v1":       {16700, 15},
	"admissionregistration.k8s.io/v1beta1":  {16700, 12},
	"admissionregistration.k8s.io/v1alpha1": {16700, 9},
	"scheduling.k8s.io/v1":                  {16600, 15},
	"scheduling.k8s.io/v1beta1":             {16600, 9},
	"scheduling.k8s.io/v1alpha3":            {16600, 3},
	"coordination.k8s.io/v1":                {16500, 15},
	"coordination.k8s.io/v1beta1":           {16500, 13},
	"coordination.k8s.io/v1alpha2":          {16500, 12},
	"node.k8s.io/v1":                        {16300, 15},
	"node.k8s.io/v1alpha1":                  {16300, 1},
	"node.k8s.io/v1beta1":                   {16300, 9},
	"discovery.k8s.io/v1":                   {16200, 15},
	"discovery.k8s.io/v1beta1":              {16200, 12},
	"resource.k8s.io/v1":                    {16200, 21},
	"resource.k8s.io/v1beta2":               {16200, 15},
	"resource.k8s.io/v1beta1":               {16200, 9},
	"resource.k8s.io/v1alpha3":              {16200, 1},
	"flowcontrol.apiserver.k8s.io/v1":       {16100, 21},
	"flowcontrol.apiserver.k8s.io/v1beta3":  {16100, 18},
	"flowcontrol.apiserver.k8s.io/v1beta2":  {16100, 15},
	"flowcontrol.apiserver.k8s.io/v1beta1":  {16100, 12},
	"flowcontrol.apiserver.k8s.io/v1alpha1": {16100, 9},
	"internal.apiserver.k8s.io/v1alpha1":    {16000, 9},
	"storagemigration.k8s.io/v1":            {15800, 15},
	"storagemigration.k8s.io/v1beta1":       {15800, 9},
	"lifecycle.k8s.io/v1alpha1":             {15700, 1},
	"metrics.k8s.io/v1beta1":                {100, 100},
}

// defaultPriority is what kube-apiserver gives a group version it has no
// priority for (CRDs): group 1000, version 15.
var defaultPriority = priority{1000, 15}

func priorityOf(group, version string) priority {
	if p, ok := apiServicePriorities[group+"/"+version]; ok {
		return p
	}
	return defaultPriority
}

// GroupPriority is the order key of a group: the highest
// GroupPriorityMinimum of its versions.
func groupPriority(g Group) int {
	best := 0
	for i, v := range g.Versions {
		if p := priorityOf(g.Name, v).group; i == 0 || p > best {
			best = p
		}
	}
	return best
}

// Groups derives the served groups from resources, in kube-apiserver's
// discovery order: by group priority (highest first), then by name; each
// group's versions by version priority, then newest first in Kubernetes
// version order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1). The core group
// "" is included (first).
func Groups(resources []Resource) []Group {
	versions := map[string][]string{}
	for _, r := range resources {
		if !slices.Contains(versions[r.Group], r.Version) {
			versions[r.Group] = append(versions[r.Group], r.Version)
		}
	}
	groups := make([]Group, 0, len(versions))
	for name, vs := range versions {
		sort.SliceStable(vs, func(i, j int) bool {
			pi, pj := priorityOf(name, vs[i]).version, priorityOf(name, vs[j]).version
			if pi != pj {
				return pi > pj
			}
			return version.CompareKubeAwareVersionStrings(vs[i], vs[j]) > 0
		})
		groups = append(groups, Group{Name: name, Versions: vs, PreferredVersion: vs[0]})
	}
	sort.SliceStable(groups, func(i, j int) bool {
		pi, pj := groupPriority(groups[i]), groupPriority(groups[j])
		if pi != pj {
			return pi > pj
		}
		return groups[i].Name < groups[j].Name
	})
	return groups
}

// storageVersions lists the resources kube-apiserver stores in another
// group/version than the one they are served at; their discovery
// storageVersionHash is that of the storage version.
var storageVersions = map[string]struct{ group, version string }{
	"events.k8s.io/Event":                 {"", "v1"},
	"autoscaling/HorizontalPodAutoscaler": {"autoscaling", "v2"},
}

// APIResources returns the legacy discovery entries of one group version,
// sorted by name as kube-apiserver's installer registers them.
func APIResources(resources []Resource, group, version string) []metav1.APIResource {
	var out []metav1.APIResource
	for _, r := range resources {
		if r.Group != group || r.Version != version {
			continue
		}
		out = append(out, apiResource(r))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func apiResource(r Resource) metav1.APIResource {
	verbs := slices.Clone(r.Verbs)
	if verbs == nil {
		verbs = []string{}
	}
	sort.Strings(verbs)
	verbs = slices.Compact(verbs)
	a := metav1.APIResource{
		Name:       r.Resource,
		Namespaced: r.Namespaced,
		Kind:       r.Kind,
		Verbs:      verbs,
		ShortNames: slices.Clone(r.ShortNames),
		Categories: slices.Clone(r.Categories),
	}
	if r.KindVersion != "" {
		a.Group, a.Version = r.KindGroup, r.KindVersion
	}
	if !r.IsSubresource() {
		a.SingularName = r.SingularName
		switch {
		case r.StorageVersionHash != "":
			a.StorageVersionHash = r.StorageVersionHash
		case !r.NoStorageVersionHash:
			g, v := r.Group, r.Version
			if sv, ok := storageVersions[r.Group+"/"+r.Kind]; ok {
				g, v = sv.group, sv.version
			}
			a.StorageVersionHash = discovery.StorageVersionHash(g, v, r.Kind)
		}
	}
	return a
}

// MetricsResources are the resources metrics-server serves in
// metrics.k8s.io/v1beta1, as its discovery lists them; `kubectl top` looks
// for them.
func MetricsResources() []Resource {
	return []Resource{
		{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "nodes", Kind: "NodeMetrics", SingularName: "node",
			Verbs: []string{"get", "list"}, NoStorageVersionHash: true},
		{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "pods", Kind: "PodMetrics", SingularName: "pod",
			Namespaced: true, Verbs: []string{"get", "list"}, NoStorageVersionHash: true},
	}
}
