package apiserver

import (
	"bytes"
	"crypto/sha512"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emicklei/go-restful/v3"
	"github.com/munnerz/goautoneg"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/apiserver/pkg/server/routes"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
	"k8s.io/klog/v2"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler3"
)

// The kube-apiserver's /openapi/v3 is a discovery document naming one
// document per group-version, each with a hash that clients use as an
// immutable cache key (/openapi/v3/apis/apps/v1?hash=…). Upstream's hash
// is the SHA-512 of the document's JSON, so the discovery document — which
// the aggregator downloads while the server chain is prepared — needs every
// group-version built and marshalled: ~110 MB of allocation, ~18 MB kept,
// and a good part of the heap's start-up fragmentation.
//
// k1s builds each group-version's document on its first request, with
// upstream's own builder (routes.OpenAPI.InstallV3 over that group-version's
// web service alone, read back through upstream's handler), so the
// documents are byte for byte upstream's; it keeps their bytes, not the
// spec objects, and serves them with upstream's headers. Only the hash in
// the discovery document differs: it is the SHA-512 of what the document
// is built from — this executable (its Go build ID), the feature gates,
// and the group-version's routes — instead of the document's bytes. It
// stays a content key: a different document cannot come with the same
// hash. Where the build ID cannot be read (not an ELF executable), the
// documents are built at start as upstream does.

// installOpenAPIV3 serves /openapi/v3 and /openapi/v3/<group-version> on m
// for the web services of container.
func installOpenAPIV3(config *openapicommon.OpenAPIV3Config, container *restful.Container, m *mux.PathRecorderMux) {
	id, err := executableBuildID()
	var l *lazyOpenAPIV3
	if err == nil {
		l, err = newLazyOpenAPIV3(config, container.RegisteredWebServices(), id)
	}
	if err != nil {
		klog.V(2).InfoS("Building OpenAPI v3 at start", "reason", err)
		routes.OpenAPI{V3Config: config}.InstallV3(container, m)
		return
	}
	m.Handle("/openapi/v3", http.HandlerFunc(l.serveDiscovery))
	m.HandlePrefix("/openapi/v3/", http.HandlerFunc(l.serveGroupVersion))
}

// lazyOpenAPIV3 is the kube-apiserver's OpenAPI v3 service, built per
// group-version on first use.
type lazyOpenAPIV3 struct {
	config *openapicommon.OpenAPIV3Config
	// docs by group-version path: "api/v1", "apis/apps/v1", "version"
	docs map[string]*lazyGroupVersion

	discovery     []byte
	discoveryETag string
	since         time.Time
}

// lazyGroupVersion is one group-version's document, built on first use.
// Only its bytes are kept (JSON; protobuf once asked for): the spec
// object behind them is several times their size (api/v1: 1.6 MB of
// JSON, ~6 MB of spec).
type lazyGroupVersion struct {
	service *restful.WebService
	hash    string // in the discovery document

	once     sync.Once
	json     []byte
	etag     string
	modified time.Time
	err      error

	pbOnce sync.Once
	pb     []byte
	pbErr  error
}

func newLazyOpenAPIV3(config *openapicommon.OpenAPIV3Config, services []*restful.WebService, buildID []byte) (*lazyOpenAPIV3, error) {
	l := &lazyOpenAPIV3{config: config, docs: map[string]*lazyGroupVersion{}, since: time.Now()}
	gates := featureGateState()
	disco := handler3.OpenAPIV3Discovery{Paths: map[string]handler3.OpenAPIV3DiscoveryGroupVersion{}}
	w := &routeWriter{h: sha512.New()}
	for _, ws := range services {
		// as upstream: the root path without its leading "/"
		gv := ws.RootPath()[1:]
		w.h.Reset()
		w.field(string(buildID), gates, gv)
		w.writeRoutes(ws)
		doc := &lazyGroupVersion{service: ws, hash: fmt.Sprintf("%X", w.h.Sum(nil))}
		l.docs[gv] = doc
		disco.Paths[gv] = handler3.OpenAPIV3DiscoveryGroupVersion{ServerRelativeURL: serverRelativeURL(gv, doc.hash)}
	}
	j, err := json.Marshal(disco)
	if err != nil {
		return nil, err
	}
	l.discovery = j
	l.discoveryETag = hexSHA512(j)
	return l, nil
}

// hexSHA512 is upstream's Etag of a document: its SHA-512 in upper-case hex.
func hexSHA512(b []byte) string { return fmt.Sprintf("%X", sha512.Sum512(b)) }

// serverRelativeURL is a group-version document's address in the discovery
// document, in upstream's form.
func serverRelativeURL(gv, hash string) string {
	u := url.URL{Path: path.Join("/openapi/v3", gv), RawQuery: url.Values{"hash": {hash}}.Encode()}
	return u.String()
}

func (l *lazyOpenAPIV3) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Etag", strconv.Quote(l.discoveryETag))
	w.Header().Set("Content-Type", "application/json")
	http.ServeContent(w, r, "/openapi/v3", l.since, bytes.NewReader(l.discovery))
}

// The media types of a group-version document, as upstream's handler3.
const (
	openAPIV3JSON               = "application/json"
	openAPIV3Protobuf           = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
	openAPIV3ProtobufDeprecated = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
)

// serveGroupVersion answers as upstream's handler3 does: the document in
// the first media type of the Accept header it can produce (JSON,
// protobuf), its Etag, and, when the request names the document's hash,
// caching headers for an immutable document.
func (l *lazyOpenAPIV3) serveGroupVersion(w http.ResponseWriter, r *http.Request) {
	gv := strings.TrimPrefix(r.URL.Path, "/openapi/v3/")
	doc, ok := l.docs[gv]
	if !ok {
		http.NotFound(w, r)
		return
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "*/*"
	}
	clauses := goautoneg.ParseAccept(accept)
	w.Header().Add("Vary", "Accept")
	if len(clauses) == 0 {
		return
	}
	for _, c := range clauses {
		for _, mt := range []string{openAPIV3JSON, openAPIV3Protobuf, openAPIV3ProtobufDeprecated} {
			typ, sub, _ := strings.Cut(mt, "/")
			if (c.Type != typ && c.Type != "*") || (c.SubType != sub && c.SubType != "*") {
				continue
			}
			l.build(gv, doc)
			data, err := doc.json, doc.err
			if mt != openAPIV3JSON {
				data, err = doc.protobuf()
			}
			if err != nil {
				klog.ErrorS(err, "Building an OpenAPI v3 document", "groupVersion", gv)
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			if mt == openAPIV3ProtobufDeprecated {
				mt = openAPIV3Protobuf
			}
			w.Header().Set("Content-Type", mt)
			w.Header().Set("Etag", strconv.Quote(doc.etag))
			if got := r.URL.Query().Get("hash"); got != "" {
				if got != doc.hash {
					// upstream: a stale hash is sent to the current document
					http.Redirect(w, r, serverRelativeURL(gv, doc.hash), http.StatusMovedPermanently)
					return
				}
				w.Header().Set("Cache-Control", "public, immutable")
				w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).Format(time.RFC1123))
			}
			http.ServeContent(w, r, "", doc.modified, bytes.NewReader(data))
			return
		}
	}
	w.WriteHeader(http.StatusNotAcceptable)
}

// build makes a group-version's document on first use with upstream's
// builder (routes.OpenAPI.InstallV3 over its web service alone, read back
// through upstream's handler), so the bytes are upstream's.
func (l *lazyOpenAPIV3) build(gv string, doc *lazyGroupVersion) {
	doc.once.Do(func() {
		c := restful.NewContainer()
		c.Add(doc.service)
		m := mux.NewPathRecorderMux("k1s-openapi-v3")
		routes.OpenAPI{V3Config: l.config}.InstallV3(c, m)
		req, err := http.NewRequest(http.MethodGet, "/openapi/v3/"+gv, nil)
		if err != nil {
			doc.err = err
			return
		}
		req.Header.Set("Accept", openAPIV3JSON)
		rec := &documentRecorder{header: http.Header{}}
		m.ServeHTTP(rec, req)
		if rec.code != http.StatusOK || rec.body.Len() == 0 {
			doc.err = fmt.Errorf("OpenAPI v3 document of %s: status %d", gv, rec.code)
			return
		}
		doc.json = rec.body.Bytes()
		doc.etag = hexSHA512(doc.json)
		doc.modified = time.Now()
		// Building allocates ~10× the document (every definition is
		// generated again): hand that back now rather than hold it
		// until the idle server's next collections.
		go debug.FreeOSMemory()
	})
}

// protobuf is the document in upstream's protobuf form, made once.
func (d *lazyGroupVersion) protobuf() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	d.pbOnce.Do(func() { d.pb, d.pbErr = handler3.ToV3ProtoBinary(d.json) })
	return d.pb, d.pbErr
}

// documentRecorder is the response writer a document is read back with.
type documentRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *documentRecorder) Header() http.Header { return r.header }

func (r *documentRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *documentRecorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// routeWriter writes length-prefixed fields (so that fields cannot run
// together) to a hash through one reused buffer: the kube-apiserver has
// ~2,000 routes, and this runs while it starts.
type routeWriter struct {
	h   hash.Hash
	buf []byte
}

func (w *routeWriter) field(parts ...string) {
	w.buf = w.buf[:0]
	for _, p := range parts {
		w.buf = strconv.AppendInt(w.buf, int64(len(p)), 10)
		w.buf = append(w.buf, ':')
		w.buf = append(w.buf, p...)
	}
	w.h.Write(w.buf)
}

// writeRoutes writes what the OpenAPI builder reads from a web service's
// routes: methods, paths, operations, documentation, parameters and the Go
// types of bodies and responses.
func (w *routeWriter) writeRoutes(ws *restful.WebService) {
	typeName := func(v any) string {
		if v == nil {
			return ""
		}
		t := reflect.TypeOf(v)
		return t.PkgPath() + "." + t.String()
	}
	for _, r := range ws.Routes() {
		w.field(r.Method, r.Path, r.Operation, r.Doc, typeName(r.ReadSample), typeName(r.WriteSample),
			strings.Join(r.Consumes, ","), strings.Join(r.Produces, ","))
		for _, p := range r.ParameterDocs {
			d := p.Data()
			w.field(d.Name, strconv.Itoa(d.Kind), d.DataType, d.DataFormat, d.DefaultValue, strconv.FormatBool(d.Required), d.Description)
		}
		codes := make([]int, 0, len(r.ResponseErrors))
		for c := range r.ResponseErrors {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			e := r.ResponseErrors[c]
			w.field(strconv.Itoa(c), e.Message, typeName(e.Model))
		}
	}
}

// featureGateState lists every feature gate with its state: the OpenAPI
// definitions leave out fields of disabled features.
func featureGateState() string {
	var b strings.Builder
	all := utilfeature.DefaultMutableFeatureGate.GetAll()
	names := make([]string, 0, len(all))
	for f := range all {
		names = append(names, string(f))
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%t,", n, utilfeature.DefaultFeatureGate.Enabled(featuregate.Feature(n)))
	}
	if v := utilfeature.DefaultMutableFeatureGate.EmulationVersion(); v != nil {
		b.WriteString(v.String())
	}
	return b.String()
}

// executableBuildID returns the Go build ID note of the running executable,
// which changes with any change of its code or data.
func executableBuildID() ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return nil, errors.New("no Go build ID note in " + exe)
	}
	id, err := io.ReadAll(s.Open())
	if err != nil {
		return nil, err
	}
	if len(id) == 0 {
		return nil, errors.New("empty Go build ID note in " + exe)
	}
	return id, nil
}
