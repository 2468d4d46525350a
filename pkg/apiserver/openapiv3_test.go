package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/emicklei/go-restful/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/apiserver/pkg/server/routes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/handler3"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
)

func noop(*restful.Request, *restful.Response) {}

// webServicesForTest are three web services shaped like the
// kube-apiserver's: a core group-version, a named one, and /version.
func webServicesForTest(extraRoute bool) []*restful.WebService {
	core := new(restful.WebService).Path("/api/v1").Produces("application/json")
	core.Route(core.GET("/namespaces/{namespace}/pods/{name}").To(noop).Operation("readCoreV1NamespacedPod").
		Param(core.PathParameter("namespace", "object name and auth scope")).
		Param(core.PathParameter("name", "name of the Pod")).
		Returns(http.StatusOK, "OK", corev1.Pod{}))
	core.Route(core.GET("/pods").To(noop).Operation("listCoreV1PodForAllNamespaces").
		Param(core.QueryParameter("labelSelector", "A selector to restrict the list of returned objects by their labels.")).
		Returns(http.StatusOK, "OK", corev1.PodList{}))
	apps := new(restful.WebService).Path("/apis/apps/v1").Produces("application/json").Consumes("application/json")
	apps.Route(apps.POST("/namespaces/{namespace}/deployments").To(noop).Operation("createAppsV1NamespacedDeployment").
		Reads(appsv1.Deployment{}).Returns(http.StatusCreated, "Created", appsv1.Deployment{}))
	if extraRoute {
		apps.Route(apps.GET("/namespaces/{namespace}/deployments/{name}").To(noop).Operation("readAppsV1NamespacedDeployment").
			Returns(http.StatusOK, "OK", appsv1.Deployment{}))
	}
	version := new(restful.WebService).Path("/version").Produces("application/json")
	version.Route(version.GET("/").To(noop).Operation("getCodeVersion"))
	return []*restful.WebService{core, apps, version}
}

func openAPIV3ConfigForTest() *genericapiserver.Config {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		panic(err)
	}
	c := &genericapiserver.Config{
		OpenAPIV3Config: genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, apiopenapi.NewDefinitionNamer(s)),
	}
	c.OpenAPIV3Config.Info.Version = "v1.37.2" // as the kube-apiserver's (protobuf needs one)
	routeOperationIDs(c)
	return c
}

func get(t *testing.T, h http.Handler, url string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The group-version documents are upstream's, byte for byte, in JSON and
// protobuf; the discovery document names the same group-versions, with
// hashes that the documents are then served and cached under.
func TestLazyOpenAPIV3ServesUpstreamDocuments(t *testing.T) {
	cfg := openAPIV3ConfigForTest().OpenAPIV3Config
	container := restful.NewContainer()
	for _, ws := range webServicesForTest(false) {
		container.Add(ws)
	}
	upstream := mux.NewPathRecorderMux("upstream")
	routes.OpenAPI{V3Config: cfg}.InstallV3(container, upstream)

	l, err := newLazyOpenAPIV3(cfg, container.RegisteredWebServices(), []byte("build-1"))
	if err != nil {
		t.Fatal(err)
	}
	ours := mux.NewPathRecorderMux("k1s")
	ours.Handle("/openapi/v3", http.HandlerFunc(l.serveDiscovery))
	ours.HandlePrefix("/openapi/v3/", http.HandlerFunc(l.serveGroupVersion))
	for gv, doc := range l.docs {
		if doc.json != nil || doc.err != nil {
			t.Fatalf("%s built before any request", gv)
		}
	}

	var disco, upDisco handler3.OpenAPIV3Discovery
	dw := get(t, ours, "/openapi/v3")
	if dw.Code != http.StatusOK || dw.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %q", dw.Code, dw.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(dw.Body.Bytes(), &disco); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(get(t, upstream, "/openapi/v3").Body.Bytes(), &upDisco); err != nil {
		t.Fatal(err)
	}
	if len(disco.Paths) != 3 || len(disco.Paths) != len(upDisco.Paths) {
		t.Fatalf("discovery paths %v, upstream %v", disco.Paths, upDisco.Paths)
	}
	etag := dw.Header().Get("Etag")
	if w := get(t, ours, "/openapi/v3", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("discovery with its Etag: %d, want 304", w.Code)
	}

	const pb = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
	for gv, entry := range disco.Paths {
		if _, ok := upDisco.Paths[gv]; !ok {
			t.Fatalf("%s: not in upstream's discovery", gv)
		}
		want := get(t, upstream, "/openapi/v3/"+gv)
		got := get(t, ours, entry.ServerRelativeURL)
		if got.Code != http.StatusOK || got.Body.String() != want.Body.String() {
			t.Errorf("%s: %d, body equal to upstream's: %v", gv, got.Code, got.Body.String() == want.Body.String())
		}
		for _, h := range []string{"Content-Type", "Vary", "Etag"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("%s: %s %q, upstream %q", gv, h, got.Header().Get(h), want.Header().Get(h))
			}
		}
		if got.Header().Get("Cache-Control") != "public, immutable" || got.Header().Get("Expires") == "" {
			t.Errorf("%s by hash: Cache-Control %q, Expires %q", gv, got.Header().Get("Cache-Control"), got.Header().Get("Expires"))
		}
		if w := get(t, ours, "/openapi/v3/"+gv); w.Header().Get("Cache-Control") != "" || w.Body.String() != want.Body.String() {
			t.Errorf("%s without hash: Cache-Control %q", gv, w.Header().Get("Cache-Control"))
		}
		wantPB := get(t, upstream, "/openapi/v3/"+gv, "Accept", pb)
		gotPB := get(t, ours, entry.ServerRelativeURL, "Accept", pb)
		if wantPB.Body.Len() == 0 {
			_, perr := handler3.ToV3ProtoBinary(want.Body.Bytes())
			t.Fatalf("%s: upstream serves no protobuf: %v", gv, perr)
		}
		if gotPB.Code != http.StatusOK || gotPB.Body.String() != wantPB.Body.String() || gotPB.Header().Get("Content-Type") != pb {
			t.Errorf("%s protobuf: %d %q, body equal to upstream's: %v", gv, gotPB.Code, gotPB.Header().Get("Content-Type"), gotPB.Body.String() == wantPB.Body.String())
		}
		if w := get(t, ours, entry.ServerRelativeURL, "If-None-Match", got.Header().Get("Etag")); w.Code != http.StatusNotModified {
			t.Errorf("%s with its Etag: %d, want 304", gv, w.Code)
		}
		stale := get(t, ours, "/openapi/v3/"+gv+"?hash=0123")
		if stale.Code != http.StatusMovedPermanently || stale.Header().Get("Location") != entry.ServerRelativeURL {
			t.Errorf("%s stale hash: %d to %q, want 301 to %q", gv, stale.Code, stale.Header().Get("Location"), entry.ServerRelativeURL)
		}
	}
	if w := get(t, ours, "/openapi/v3/apis/nothing/v1"); w.Code != http.StatusNotFound {
		t.Errorf("unknown group-version: %d, want 404", w.Code)
	}
}

// A hash changes with the executable and with its group-version's routes,
// and with nothing else.
func TestLazyOpenAPIV3Hashes(t *testing.T) {
	cfg := openAPIV3ConfigForTest().OpenAPIV3Config
	hashes := func(id string, extra bool) map[string]string {
		l, err := newLazyOpenAPIV3(cfg, webServicesForTest(extra), []byte(id))
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for gv, doc := range l.docs {
			h[gv] = doc.hash
		}
		return h
	}
	a, again, otherBuild, moreRoutes := hashes("build-1", false), hashes("build-1", false), hashes("build-2", false), hashes("build-1", true)
	for gv := range a {
		if a[gv] != again[gv] {
			t.Errorf("%s: hash not stable", gv)
		}
		if a[gv] == otherBuild[gv] {
			t.Errorf("%s: same hash for another executable", gv)
		}
		if changed := a[gv] != moreRoutes[gv]; changed != (gv == "apis/apps/v1") {
			t.Errorf("%s: hash changed %v with a route added to apis/apps/v1", gv, changed)
		}
		if len(a[gv]) != 128 {
			t.Errorf("%s: hash %q is not a hex SHA-512", gv, a[gv])
		}
	}
	if _, err := strconv.ParseUint(a["version"][:16], 16, 64); err != nil {
		t.Errorf("hash %q: %v", a["version"], err)
	}
}

// The test binary is an ELF executable with a Go build ID note.
func TestExecutableBuildID(t *testing.T) {
	id, err := executableBuildID()
	if err != nil || len(id) == 0 {
		t.Fatalf("executableBuildID() = %q, %v", id, err)
	}
}
