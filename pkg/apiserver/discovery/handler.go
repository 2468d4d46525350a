package discovery

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	apidiscoveryconversion "k8s.io/apiserver/pkg/apis/apidiscovery/v2"
	"k8s.io/apiserver/pkg/endpoints"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
)

// Options tune the handler.
type Options struct {
	// ServerAddress ("host:port") is what /api advertises in
	// serverAddressByClientCIDRs for 0.0.0.0/0, as kube-apiserver does with
	// its advertise address. Empty: the Host the request was sent to.
	ServerAddress string
	// NoV2Beta1 stops answering apidiscovery.k8s.io/v2beta1 requests with
	// the aggregated document, as kube-apiserver 1.37 does
	// (AggregatedDiscoveryRemoveBetaType, locked on since 1.35): a client
	// asking only v2beta1 (kubectl 1.27) then gets the legacy documents,
	// which it handles. By default v2beta1 is served, which saves such a
	// client one request per group version.
	NoV2Beta1 bool
}

// Handler serves the discovery paths (see the package comment). It is safe
// for concurrent use; SetResources swaps the served set atomically.
type Handler struct {
	opts   Options
	codecs serializer.CodecFactory
	// legacy encodes /api and /api/v1 without apiVersion, as kube-apiserver
	// keeps them for compatibility with release 1.1.
	legacy runtime.NegotiatedSerializer
	state  atomic.Pointer[state]
}

// state is everything precomputed from one resource list.
type state struct {
	resources []Resource
	groups    []Group
	// versions: group/version ("v1", "apps/v1") → resource list.
	versions map[string]*metav1.APIResourceList
	byName   map[string]metav1.APIGroup
	apis     *metav1.APIGroupList
	// aggregated documents of /api (core only) and /apis (named groups).
	aggCore, aggAPIs         *apidiscoveryv2.APIGroupDiscoveryList
	aggCoreETag, aggAPIsETag string
}

// New returns a handler serving resources.
func New(resources []Resource, opts Options) *Handler {
	scheme := runtime.NewScheme()
	unversioned := schema.GroupVersion{Version: "v1"}
	scheme.AddUnversionedTypes(unversioned, &metav1.Status{}, &metav1.APIVersions{},
		&metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	utilruntime.Must(apidiscoveryv2.AddToScheme(scheme))
	utilruntime.Must(apidiscoveryv2beta1.AddToScheme(scheme))
	utilruntime.Must(apidiscoveryconversion.RegisterConversions(scheme))
	codecs := serializer.NewCodecFactory(scheme)
	h := &Handler{opts: opts, codecs: codecs, legacy: kindOnlySerializer{codecs, scheme}}
	h.SetResources(resources)
	return h
}

// SetResources replaces the served resources (e.g. after a CRD appears).
func (h *Handler) SetResources(resources []Resource) {
	h.state.Store(newState(resources))
}

// Resources returns the served resources.
func (h *Handler) Resources() []Resource { return h.state.Load().resources }

// Groups returns the served groups in discovery order, core first.
func (h *Handler) Groups() []Group { return h.state.Load().groups }

func newState(resources []Resource) *state {
	s := &state{
		resources: resources,
		groups:    Groups(resources),
		versions:  map[string]*metav1.APIResourceList{},
		byName:    map[string]metav1.APIGroup{},
		apis:      &metav1.APIGroupList{Groups: []metav1.APIGroup{}},
		aggCore:   &apidiscoveryv2.APIGroupDiscoveryList{Items: []apidiscoveryv2.APIGroupDiscovery{}},
		aggAPIs:   &apidiscoveryv2.APIGroupDiscoveryList{Items: []apidiscoveryv2.APIGroupDiscovery{}},
	}
	for _, g := range s.groups {
		ag := metav1.APIGroup{Name: g.Name}
		agg := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Name}}
		for _, v := range g.Versions {
			gv := groupVersion(g.Name, v)
			list := APIResources(resources, g.Name, v)
			s.versions[gv] = &metav1.APIResourceList{GroupVersion: gv, APIResources: list}
			ag.Versions = append(ag.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: v})
			aggResources, err := endpoints.ConvertGroupVersionIntoToDiscovery(list)
			if err != nil {
				// A subresource whose scope differs from its parent's: a bug
				// in the resource list, reported where it is served.
				utilruntime.HandleError(fmt.Errorf("discovery of %s: %w", gv, err))
			}
			agg.Versions = append(agg.Versions, apidiscoveryv2.APIVersionDiscovery{
				Version:   v,
				Resources: aggResources,
				Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
			})
		}
		ag.PreferredVersion = ag.Versions[0]
		if g.Name == "" {
			s.aggCore.Items = append(s.aggCore.Items, agg)
			continue
		}
		s.byName[g.Name] = ag
		s.apis.Groups = append(s.apis.Groups, ag)
		s.aggAPIs.Items = append(s.aggAPIs.Items, agg)
	}
	s.aggCoreETag = etag(s.aggCore)
	s.aggAPIsETag = etag(s.aggAPIs)
	return s
}

// etag is kube-apiserver's: the hex SHA-512 of the v2 document's JSON, the
// same for every encoding and for v2beta1 (Accept is in Vary).
func etag(list *apidiscoveryv2.APIGroupDiscoveryList) string {
	data, err := json.Marshal(list)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%X", sha512.Sum512(data))
}

// Handles reports whether path is a discovery path this handler answers
// (with or without a trailing slash). Resource paths such as
// /api/v1/pods are not.
func (h *Handler) Handles(path string) bool {
	parts := splitPath(path)
	switch {
	case len(parts) == 1 && (parts[0] == "api" || parts[0] == "apis"):
		return true
	case len(parts) == 2 && parts[0] == "api":
		return true
	case len(parts) == 2 && parts[0] == "apis":
		return true
	case len(parts) == 3 && parts[0] == "apis":
		return true
	}
	return false
}

func splitPath(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

// ServeHTTP answers GET (and HEAD) on the discovery paths and 404 for
// other paths or unknown groups and versions.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			"the server does not allow this method on the requested resource")
		return
	}
	s := h.state.Load()
	parts := splitPath(req.URL.Path)
	switch {
	case len(parts) == 1 && parts[0] == "api":
		if h.serveAggregated(w, req, s.aggCore, s.aggCoreETag) {
			return
		}
		addr := h.opts.ServerAddress
		if addr == "" {
			addr = req.Host
		}
		versions := &metav1.APIVersions{
			Versions:                   []string{},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: addr}},
		}
		if _, ok := s.versions["v1"]; ok {
			versions.Versions = []string{"v1"}
		}
		h.write(w, req, h.legacy, versions)
	case len(parts) == 2 && parts[0] == "api":
		list, ok := s.versions[parts[1]]
		if !ok {
			notFound(w)
			return
		}
		h.write(w, req, h.legacy, list)
	case len(parts) == 1 && parts[0] == "apis":
		if h.serveAggregated(w, req, s.aggAPIs, s.aggAPIsETag) {
			return
		}
		h.write(w, req, h.codecs, s.apis)
	case len(parts) == 2 && parts[0] == "apis":
		g, ok := s.byName[parts[1]]
		if !ok {
			notFound(w)
			return
		}
		h.write(w, req, h.codecs, &g)
	case len(parts) == 3 && parts[0] == "apis" && parts[1] != "":
		list, ok := s.versions[parts[1]+"/"+parts[2]]
		if !ok {
			notFound(w)
			return
		}
		h.write(w, req, h.codecs, list)
	default:
		notFound(w)
	}
}

func (h *Handler) write(w http.ResponseWriter, req *http.Request, s runtime.NegotiatedSerializer, obj runtime.Object) {
	responsewriters.WriteObjectNegotiated(s, negotiation.DefaultEndpointRestrictions, schema.GroupVersion{},
		w, req, http.StatusOK, obj, false)
}

// serveAggregated answers with the aggregated document when the Accept
// header asks for an APIGroupDiscoveryList version this handler serves,
// and reports whether it did. Accept is parsed as kube-apiserver does
// (clauses in order, q-values, wildcards), so "v2beta1 then plain JSON"
// gets v2beta1 and never v2.
func (h *Handler) serveAggregated(w http.ResponseWriter, req *http.Request, list *apidiscoveryv2.APIGroupDiscoveryList, tag string) bool {
	restrictions := aggregatedRestrictions{v2beta1: !h.opts.NoV2Beta1}
	mt, ok := negotiation.NegotiateMediaTypeOptions(req.Header.Get("Accept"), h.codecs.SupportedMediaTypes(), restrictions)
	if !ok || mt.Convert == nil {
		return false
	}
	target := mt.Convert.GroupVersion()
	quoted := strconv.Quote(tag)
	w.Header().Set("ETag", quoted)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Cache-Control", "public")
	if req.Header.Get("If-None-Match") == quoted {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	responsewriters.WriteObjectNegotiated(h.codecs, restrictions, target, w, req, http.StatusOK, list, true)
	return true
}

// aggregatedRestrictions accept only the aggregated discovery conversions.
type aggregatedRestrictions struct{ v2beta1 bool }

func (r aggregatedRestrictions) AllowsMediaTypeTransform(_, _ string, gvk *schema.GroupVersionKind) bool {
	if gvk == nil || gvk.Group != apidiscoveryv2.GroupName || gvk.Kind != "APIGroupDiscoveryList" {
		return false
	}
	return gvk.Version == "v2" || (r.v2beta1 && gvk.Version == "v2beta1")
}
func (aggregatedRestrictions) AllowsServerVersion(string) bool  { return false }
func (aggregatedRestrictions) AllowsStreamSchema(s string) bool { return s == "watch" }

// kindOnlySerializer encodes objects with their kind and no apiVersion.
type kindOnlySerializer struct {
	runtime.NegotiatedSerializer
	typer runtime.ObjectTyper
}

func (k kindOnlySerializer) EncoderForVersion(e runtime.Encoder, _ runtime.GroupVersioner) runtime.Encoder {
	return kindOnlyEncoder{e: e, typer: k.typer}
}

type kindOnlyEncoder struct {
	e     runtime.Encoder
	typer runtime.ObjectTyper
}

func (k kindOnlyEncoder) Encode(obj runtime.Object, w io.Writer) error {
	kinds, _, err := k.typer.ObjectKinds(obj)
	if err != nil {
		return err
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Kind: kinds[0].Kind})
	return k.e.Encode(obj, w)
}

func (k kindOnlyEncoder) Identifier() runtime.Identifier {
	return runtime.Identifier(`{"name":"kindOnly","encoder":` + strconv.Quote(string(k.e.Identifier())) + `}`)
}

func notFound(w http.ResponseWriter) {
	writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	responsewriters.WriteRawJSON(code, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Details:  &metav1.StatusDetails{},
		Code:     int32(code),
	}, w)
}
