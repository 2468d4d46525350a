// Package openapi serves kube-apiserver's OpenAPI documents for the
// resources k1s serves:
//
//	GET /openapi/v2               one Swagger 2.0 document of everything,
//	                              JSON or protobuf (kubectl 1.27 asks
//	                              application/com.github.proto-openapi.spec.v2@v1.0+protobuf)
//	GET /openapi/v3               {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}
//	GET /openapi/v3/<doc>         one OpenAPI 3.0 document per group version
//	                              ("api/v1", "apis/apps/v1"), per group
//	                              ("apis/apps"), and "api", "apis", "version";
//	                              JSON or protobuf
//
// Schemas come from k8s.io/kubernetes/pkg/generated/openapi, paths from
// routes described as kube-apiserver's installer registers them (every
// verb, with the x-kubernetes-group-version-kind and x-kubernetes-action
// extensions, and PATCH listing fieldValidation so kubectl leaves field
// validation to the server), built by kube-openapi's builder (v2) and
// builder3 (v3).
//
// Documents are built on first request, one at a time, and kept gzipped.
// The v3 root does not build anything: each document's hash is computed
// from what it is built from (the resources of its group version and the
// k1s build), not from its bytes as kube-apiserver does, so listing the
// documents stays cheap.
package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/munnerz/goautoneg"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"

	"k1s.dev/k1s/pkg/apiserver/discovery"
)

// Media types of the documents.
const (
	mimeJSON       = "application/json"
	mimeV2Proto    = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	mimeV2ProtoOld = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
	mimeV3Proto    = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
	mimeV3ProtoOld = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
)

// Options tune the handler; the zero value is usable.
type Options struct {
	// Version is the info.version of the documents. Default: the binary's
	// k8s.io/component-base/version git version, or v1.37.2.
	Version string
	// BuildID goes into the v3 documents' hashes so that clients caching
	// them by hash (kubectl's ~/.kube/cache) refetch after k1s changes.
	// Default: the VCS revision and time from the binary's build info.
	BuildID string
	// Scheme gives the Go type of each served kind. Default: NewScheme().
	Scheme *runtime.Scheme
}

// Handler serves /openapi/v2 and /openapi/v3. Safe for concurrent use.
type Handler struct {
	info    string
	buildID string
	scheme  *runtime.Scheme

	namerOnce sync.Once
	namer     *apiopenapi.DefinitionNamer

	// buildMu lets one document build at a time: each build expands all
	// generated definitions (tens of MB, briefly).
	buildMu sync.Mutex
	state   atomic.Pointer[state]
}

type state struct {
	builder *routeBuilder
	names   []string
	v3      map[string]*document
	v2      *document

	root     []byte
	rootETag string
	rootTime time.Time
}

// document is one built document, kept gzipped, built at most once.
type document struct {
	hash string // v3: from the inputs, known before building

	mu       sync.Mutex
	built    bool
	json, pb []byte // gzip-compressed
	etag     string
	modified time.Time
}

// New returns a handler for resources. Nothing is built until asked for.
func New(resources []discovery.Resource, opts ...Options) *Handler {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	h := &Handler{info: o.Version, buildID: o.BuildID, scheme: o.Scheme}
	if h.info == "" {
		h.info = defaultVersion()
	}
	if h.buildID == "" {
		h.buildID = defaultBuildID()
	}
	if h.scheme == nil {
		h.scheme = NewScheme()
	}
	h.SetResources(resources)
	return h
}

func defaultVersion() string {
	v := version.Get().GitVersion
	if v == "" || strings.HasPrefix(v, "v0.0.0") {
		return "v1.37.2"
	}
	return strings.Split(v, "-")[0]
}

func defaultBuildID() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	id := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified":
			id += " " + s.Value
		}
	}
	return id
}

// SetResources replaces the described resources; documents are rebuilt on
// their next request.
//
// Resources whose kind the scheme does not know (custom resources) are
// left out, and so is a group version left without resources: kube-apiserver
// publishes custom resources' schemas from their CRDs, which k1s does not.
func (h *Handler) SetResources(resources []discovery.Resource) {
	resources = h.known(resources)
	keys := make([]resourceKey, 0, len(resources))
	for _, r := range resources {
		keys = append(keys, resourceKey{r.Group, r.Version})
	}
	s := &state{
		builder: &routeBuilder{scheme: h.scheme, resources: resources},
		names:   docNames(keys),
		v3:      map[string]*document{},
		v2:      &document{},
	}
	disc := handler3.OpenAPIV3Discovery{Paths: map[string]handler3.OpenAPIV3DiscoveryGroupVersion{}}
	for _, name := range s.names {
		d := &document{hash: h.inputHash(name, resources)}
		s.v3[name] = d
		u := url.URL{Path: path.Join("/openapi/v3", name), RawQuery: url.Values{"hash": {d.hash}}.Encode()}
		disc.Paths[name] = handler3.OpenAPIV3DiscoveryGroupVersion{ServerRelativeURL: u.String()}
	}
	s.root, _ = json.Marshal(disc)
	s.rootETag = hexSHA512(s.root)
	s.rootTime = time.Now()
	h.state.Store(s)
}

// known keeps the resources whose kind is in the scheme.
func (h *Handler) known(resources []discovery.Resource) []discovery.Resource {
	var out []discovery.Resource
	for _, r := range resources {
		gvk := schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
		if r.KindVersion != "" {
			gvk = schema.GroupVersionKind{Group: r.KindGroup, Version: r.KindVersion, Kind: r.Kind}
		}
		if h.scheme.Recognizes(gvk) {
			out = append(out, r)
		}
	}
	// A subresource goes with its parent (a custom resource's scale
	// subresource has a known kind, Scale, but no documented parent).
	parents := map[string]bool{}
	for _, r := range out {
		if !r.IsSubresource() {
			parents[r.Group+"/"+r.Version+"/"+r.Resource] = true
		}
	}
	kept := out[:0]
	for _, r := range out {
		if !r.IsSubresource() || parents[r.Group+"/"+r.Version+"/"+r.Parent()] {
			kept = append(kept, r)
		}
	}
	return kept
}

// inputHash identifies what document name is built from.
func (h *Handler) inputHash(name string, resources []discovery.Resource) string {
	var in []discovery.Resource
	if parts := strings.Split(name, "/"); (len(parts) == 2 && parts[0] == "api") || (len(parts) == 3 && parts[0] == "apis") {
		group, ver := "", parts[len(parts)-1]
		if parts[0] == "apis" {
			group = parts[1]
		}
		for _, r := range resources {
			if r.Group == group && r.Version == ver {
				in = append(in, r)
			}
		}
	}
	data, _ := json.Marshal(struct {
		Build, Info, Name string
		Resources         []discovery.Resource
	}{h.buildID, h.info, name, in})
	return hexSHA512(data)
}

func hexSHA512(data []byte) string { return fmt.Sprintf("%X", sha512.Sum512(data)) }

func (h *Handler) getNamer() *apiopenapi.DefinitionNamer {
	h.namerOnce.Do(func() { h.namer = apiopenapi.NewDefinitionNamer(h.scheme) })
	return h.namer
}

// Handles reports whether path is served by ServeHTTP.
func (h *Handler) Handles(p string) bool {
	return p == "/openapi/v2" || p == "/openapi/v3" || p == "/openapi/v3/" || strings.HasPrefix(p, "/openapi/v3/")
}

// ServeHTTP routes /openapi/v2, /openapi/v3 and /openapi/v3/<doc>; mount
// it at "/openapi/".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/openapi/v2":
		h.ServeV2(w, r)
	case p == "/openapi/v3" || p == "/openapi/v3/":
		h.ServeV3Root(w, r)
	case strings.HasPrefix(p, "/openapi/v3/"):
		h.ServeV3Group(w, r)
	default:
		http.NotFound(w, r)
	}
}

// ServeV3Root lists the v3 documents with their hashed URLs.
func (h *Handler) ServeV3Root(w http.ResponseWriter, r *http.Request) {
	s := h.state.Load()
	w.Header().Set("Etag", strconv.Quote(s.rootETag))
	w.Header().Set("Content-Type", mimeJSON)
	http.ServeContent(w, r, "/openapi/v3", s.rootTime, bytes.NewReader(s.root))
}

// ServeV3Group serves /openapi/v3/<doc>, redirecting a stale ?hash= to the
// current one as kube-apiserver does.
func (h *Handler) ServeV3Group(w http.ResponseWriter, r *http.Request) {
	s := h.state.Load()
	name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/openapi/v3/"), "/")
	d, ok := s.v3[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Add("Vary", "Accept")
	format, ok := negotiate(r.Header.Get("Accept"), []acceptable{
		{"application", "json", mimeJSON, false},
		{"application", "com.github.proto-openapi.spec.v3.v1.0+protobuf", mimeV3Proto, true},
		{"application", "com.github.proto-openapi.spec.v3@v1.0+protobuf", mimeV3Proto, true},
	})
	if !ok {
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	if hash := r.URL.Query().Get("hash"); hash != "" {
		if hash != d.hash {
			u := url.URL{Path: path.Join("/openapi/v3", name), RawQuery: url.Values{"hash": {d.hash}}.Encode()}
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).Format(time.RFC1123))
	}
	err := h.ensure(d, func() ([]byte, string, error) {
		spec, err := s.builder.buildV3(name, h.info, h.getNamer())
		if err != nil {
			return nil, "", err
		}
		data, err := json.Marshal(spec)
		return data, d.hash, err
	}, handler3.ToV3ProtoBinary)
	if err != nil {
		klog.ErrorS(err, "Building OpenAPI v3 document", "document", name)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	serveDocument(w, r, d, format)
}

// ServeV2 serves /openapi/v2 as JSON or protobuf.
func (h *Handler) ServeV2(w http.ResponseWriter, r *http.Request) {
	s := h.state.Load()
	w.Header().Add("Vary", "Accept")
	format, ok := negotiate(r.Header.Get("Accept"), []acceptable{
		{"application", "json", mimeJSON, false},
		{"application", "com.github.proto-openapi.spec.v2@v1.0+protobuf", mimeV2Proto, true},
		{"application", "com.github.proto-openapi.spec.v2.v1.0+protobuf", mimeV2Proto, true},
	})
	if !ok {
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	err := h.ensure(s.v2, func() ([]byte, string, error) {
		spec, err := s.builder.buildV2(s.names, h.info, h.getNamer())
		if err != nil {
			return nil, "", err
		}
		data, err := spec.MarshalJSON()
		return data, hexSHA512(data), err
	}, handler.ToProtoBinary)
	if err != nil {
		klog.ErrorS(err, "Building OpenAPI v2 document")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	serveDocument(w, r, s.v2, format)
}

// ensure builds d once (failures are retried on the next request).
func (h *Handler) ensure(d *document, build func() ([]byte, string, error), toProto func([]byte) ([]byte, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.built {
		return nil
	}
	h.buildMu.Lock()
	defer h.buildMu.Unlock()
	data, etag, err := build()
	if err != nil {
		return err
	}
	pb, err := toProto(data)
	if err != nil {
		return fmt.Errorf("protobuf encoding: %w", err)
	}
	d.json, d.pb, d.etag, d.modified, d.built = gzipBytes(data), gzipBytes(pb), etag, time.Now(), true
	return nil
}

// acceptable is a media type a document can be served as.
type acceptable struct {
	typ, subtype string
	contentType  string
	proto        bool
}

// negotiate picks the format for an Accept header as kube-openapi's
// handlers do: clauses by preference, each tried against the formats in
// order; wildcards match the first. No Accept means JSON.
func negotiate(accept string, formats []acceptable) (acceptable, bool) {
	if accept == "" {
		accept = "*/*"
	}
	for _, c := range goautoneg.ParseAccept(accept) {
		for _, f := range formats {
			if (c.Type == f.typ || c.Type == "*") && (c.SubType == f.subtype || c.SubType == "*") {
				return f, true
			}
		}
	}
	return acceptable{}, false
}

// serveDocument writes d in format f, gzipped when the client accepts it,
// answering If-None-Match with 304.
func serveDocument(w http.ResponseWriter, r *http.Request, d *document, f acceptable) {
	data := d.json
	if f.proto {
		data = d.pb
	}
	quoted := strconv.Quote(d.etag)
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Etag", quoted)
	w.Header().Set("Last-Modified", d.modified.UTC().Format(http.TimeFormat))
	w.Header().Add("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == quoted || inm == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(data)
		}
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, zr)
	}
}

func acceptsGzip(header string) bool {
	for _, c := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(c), ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func gzipBytes(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}
