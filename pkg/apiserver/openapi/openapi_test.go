package openapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	openapi_v3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"
)

// server runs the handler behind a counting middleware.
type server struct {
	*httptest.Server
	h        *Handler
	requests []string
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{h: New(kubeResources(), Options{BuildID: "test"})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests = append(s.requests, r.URL.Path+" "+r.Header.Get("Accept"))
		s.h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) config() *rest.Config { return &rest.Config{Host: s.URL} }

func request(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func v3Doc(t *testing.T, h *Handler, name string) *spec3.OpenAPI {
	t.Helper()
	rec := request(t, h, "/openapi/v3/"+name)
	if rec.Code != 200 {
		t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

func TestV3RootListsDocumentsWithoutBuildingThem(t *testing.T) {
	h := New(kubeResources())
	rec := request(t, h, "/openapi/v3")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Etag") == "" {
		t.Fatalf("code %d headers %v", rec.Code, rec.Header())
	}
	var root struct {
		Paths map[string]struct{ ServerRelativeURL string }
	}
	json.Unmarshal(rec.Body.Bytes(), &root)
	for _, want := range []string{"api", "api/v1", "apis", "apis/apps", "apis/apps/v1", "apis/events.k8s.io/v1",
		"apis/autoscaling/v1", "apis/autoscaling/v2", "apis/metrics.k8s.io/v1beta1", "version"} {
		p, ok := root.Paths[want]
		if !ok {
			t.Errorf("root lacks %s", want)
			continue
		}
		if !strings.HasPrefix(p.ServerRelativeURL, "/openapi/v3/"+want+"?hash=") {
			t.Errorf("%s: url %s", want, p.ServerRelativeURL)
		}
	}
	if _, ok := root.Paths["apis/example.com/v1"]; ok {
		t.Error("a group version of unknown kinds (custom resources) is listed")
	}
	for name, d := range h.state.Load().v3 {
		if d.built {
			t.Errorf("%s was built by listing the root", name)
		}
	}
}

func TestHashesFollowInputs(t *testing.T) {
	h := New(kubeResources(), Options{BuildID: "a"})
	before := h.state.Load().v3
	rs := kubeResources()
	for i := range rs {
		if rs[i].Resource == "pods" && rs[i].Group == "" {
			rs[i].Verbs = []string{"get", "list"}
		}
	}
	h.SetResources(rs)
	after := h.state.Load().v3
	if before["api/v1"].hash == after["api/v1"].hash {
		t.Error("api/v1 hash unchanged after its resources changed")
	}
	if before["apis/apps/v1"].hash != after["apis/apps/v1"].hash {
		t.Error("apis/apps/v1 hash changed although its resources did not")
	}
	other := New(kubeResources(), Options{BuildID: "b"})
	if other.state.Load().v3["apis/apps/v1"].hash == before["apis/apps/v1"].hash {
		t.Error("hash does not depend on the build")
	}
}

// TestKubectlLeavesFieldValidationToServer runs cli-runtime's verifiers,
// the ones kubectl create/apply --validate use: the v3 one (kubectl 1.32+),
// and the v2 one fed by /openapi/v2 as protobuf (kubectl 1.27's fallback).
func TestKubectlLeavesFieldValidationToServer(t *testing.T) {
	s := newServer(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(s.config())
	dyn := dynamic.NewForConfigOrDie(s.config())
	v3 := resource.NewQueryParamVerifierV3(dyn, dc.OpenAPIV3(), resource.QueryParamFieldValidation)
	v2 := resource.NewQueryParamVerifier(dyn, dc, resource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "Pod"},
		{Version: "v1", Kind: "Service"},
		{Version: "v1", Kind: "Namespace"},
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Group: "batch", Version: "v1", Kind: "Job"},
		{Group: "events.k8s.io", Version: "v1", Kind: "Event"},
		{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
	} {
		if err := v3.HasSupport(gvk); err != nil {
			t.Errorf("v3 %s: %v", gvk, err)
		}
		if err := v2.HasSupport(gvk); err != nil {
			t.Errorf("v2 %s: %v", gvk, err)
		}
	}
	var v2Accept string
	for _, r := range s.requests {
		if strings.HasPrefix(r, "/openapi/v2 ") {
			v2Accept = strings.TrimPrefix(r, "/openapi/v2 ")
		}
	}
	if v2Accept != "application/com.github.proto-openapi.spec.v2@v1.0+protobuf" {
		t.Errorf("v2 fetched with Accept %q", v2Accept)
	}
}

func TestExplain(t *testing.T) {
	s := newServer(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(s.config())
	tests := []struct {
		gvr   schema.GroupVersionResource
		path  []string
		wants []string
	}{
		{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, []string{"spec", "containers"},
			[]string{"KIND:       Pod", "VERSION:    v1", "FIELD: containers <[]Container>", "DESCRIPTION:", "image\t<string>", "livenessProbe\t<Probe>"}},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, []string{"spec", "strategy"},
			[]string{"GROUP:      apps", "KIND:       Deployment", "FIELD: strategy <DeploymentStrategy>", "rollingUpdate\t<RollingUpdateDeployment>"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, nil,
			[]string{"KIND:       Pod", "metadata\t<ObjectMeta>", "spec\t<PodSpec>", "status\t<PodStatus>"}},
	}
	for _, tt := range tests {
		t.Run(tt.gvr.Resource+"."+strings.Join(tt.path, "."), func(t *testing.T) {
			var out bytes.Buffer
			if err := explainv2.PrintModelDescription(tt.path, &out, dc.OpenAPIV3(), tt.gvr, false, 0, "plaintext"); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(out.String(), w) {
					t.Errorf("explain output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestClientSideApplyMergesByKey does what kubectl apply's patcher does
// with /openapi/v3: strategic merge on containers keyed by name.
func TestClientSideApplyMergesByKey(t *testing.T) {
	s := newServer(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(s.config())
	gvSpec, err := openapi3.NewRoot(dc.OpenAPIV3()).GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	var podSchema *strategicpatch.PatchMetaFromOpenAPIV3
	for _, c := range gvSpec.Components.Schemas {
		var gvks []map[string]string
		if c.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks) != nil {
			continue
		}
		for _, g := range gvks {
			if g["group"] == "" && g["version"] == "v1" && g["kind"] == "Pod" {
				podSchema = &strategicpatch.PatchMetaFromOpenAPIV3{Schema: c, SchemaList: gvSpec.Components.Schemas}
			}
		}
	}
	if podSchema == nil {
		t.Fatal("no schema with GVK v1 Pod")
	}
	original := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}}`)
	modified := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x2"},{"name":"b","image":"y"}]}}`)
	current := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x","imagePullPolicy":"Always"},{"name":"b","image":"y","imagePullPolicy":"Always"}]}}`)
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, *podSchema, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"image":"x2","name":"a"}]}}`
	if string(patch) != want {
		t.Errorf("patch\n got %s\nwant %s", patch, want)
	}
}

func TestV2Protobuf(t *testing.T) {
	s := newServer(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(s.config())
	doc, err := dc.OpenAPISchema() // what kubectl 1.27 reads
	if err != nil {
		t.Fatal(err)
	}
	if doc.GetInfo().GetTitle() != "Kubernetes" || doc.GetSwagger() != "2.0" {
		t.Errorf("info %v swagger %q", doc.GetInfo(), doc.GetSwagger())
	}
	resources, err := kubectlopenapi.NewOpenAPIData(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvk := range []schema.GroupVersionKind{{Version: "v1", Kind: "Pod"}, {Group: "apps", Version: "v1", Kind: "Deployment"}} {
		if resources.LookupResource(gvk) == nil {
			t.Errorf("v2 has no model for %s", gvk)
		}
	}
	meta, _, err := strategicpatch.NewPatchMetaFromOpenAPI(resources.LookupResource(schema.GroupVersionKind{Version: "v1", Kind: "Pod"})).LookupPatchMetadataForStruct("spec")
	if err != nil {
		t.Fatal(err)
	}
	if _, pm, err := meta.LookupPatchMetadataForSlice("containers"); err != nil || pm.GetPatchMergeKey() != "name" || !slices.Contains(pm.GetPatchStrategies(), "merge") {
		t.Errorf("containers patch meta %+v, %v", pm, err)
	}

	// JSON and protobuf carry the same document.
	js := request(t, s.h, "/openapi/v2", "Accept", "application/json")
	pb := request(t, s.h, "/openapi/v2", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if ct := pb.Header().Get("Content-Type"); ct != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
		t.Errorf("protobuf Content-Type %q", ct)
	}
	fromJSON, err := openapi_v2.ParseDocument(js.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var fromPB openapi_v2.Document
	if err := proto.Unmarshal(pb.Body.Bytes(), &fromPB); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(fromJSON, &fromPB) {
		t.Error("v2 JSON and protobuf differ")
	}
	if js.Header().Get("Etag") == "" || js.Header().Get("Etag") != pb.Header().Get("Etag") {
		t.Errorf("etags %q %q", js.Header().Get("Etag"), pb.Header().Get("Etag"))
	}
}

func TestV3Serving(t *testing.T) {
	h := New(kubeResources())
	d := h.state.Load().v3["apis/apps/v1"]
	url := "/openapi/v3/apis/apps/v1?hash=" + d.hash

	rec := request(t, h, url, "Accept", "application/json")
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, immutable" || rec.Header().Get("Etag") != `"`+d.hash+`"` {
		t.Fatalf("code %d headers %v", rec.Code, rec.Header())
	}
	plain := rec.Body.Bytes()

	if rec := request(t, h, url, "If-None-Match", `"`+d.hash+`"`); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", rec.Code)
	}
	if rec := request(t, h, "/openapi/v3/apis/apps/v1?hash=stale"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != url {
		t.Errorf("stale hash: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = request(t, h, url, "Accept-Encoding", "gzip")
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", rec.Header())
	}
	zr, _ := gzip.NewReader(rec.Body)
	unzipped, _ := io.ReadAll(zr)
	if !bytes.Equal(unzipped, plain) {
		t.Error("gzipped body differs")
	}
	rec = request(t, h, url, "Accept", "application/com.github.proto-openapi.spec.v3.v1.0+protobuf")
	if ct := rec.Header().Get("Content-Type"); ct != "application/com.github.proto-openapi.spec.v3.v1.0+protobuf" {
		t.Errorf("protobuf Content-Type %q", ct)
	}
	var pdoc openapi_v3.Document
	if err := proto.Unmarshal(rec.Body.Bytes(), &pdoc); err != nil || pdoc.GetInfo().GetTitle() != "Kubernetes" {
		t.Errorf("v3 protobuf: %v %v", err, pdoc.GetInfo())
	}
	for path, code := range map[string]int{"/openapi/v3/apis/nope/v1": 404, "/openapi/v3/": 200, "/openapi/v4": 404} {
		if rec := request(t, h, path); rec.Code != code {
			t.Errorf("%s: %d, want %d", path, rec.Code, code)
		}
	}
	if rec := request(t, h, url, "Accept", "text/html"); rec.Code != http.StatusNotAcceptable {
		t.Errorf("text/html: %d", rec.Code)
	}
}

// TestOperations pins the operations kubectl and clients look up: IDs,
// actions and GVK extensions as kube-apiserver publishes them.
func TestOperations(t *testing.T) {
	h := New(kubeResources())
	docs := map[string]*spec3.OpenAPI{}
	tests := []struct {
		doc, path, method string
		opID, action      string
		gvk               string // group/version/kind
		params            []string
		response          string // $ref of the 200 response, or "string"
	}{
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod", "patch", "/v1/Pod",
			[]string{"dryRun", "fieldManager", "fieldValidation", "force"}, "io.k8s.api.core.v1.Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods", "post", "createCoreV1NamespacedPod", "post", "/v1/Pod",
			[]string{"dryRun", "fieldManager", "fieldValidation"}, "io.k8s.api.core.v1.Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "delete", "deleteCoreV1NamespacedPod", "delete", "/v1/Pod",
			[]string{"dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents", "propagationPolicy"}, "io.k8s.api.core.v1.Pod"},
		{"api/v1", "/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list", "/v1/Pod", nil, "io.k8s.api.core.v1.PodList"},
		{"api/v1", "/api/v1/watch/namespaces/{namespace}/pods", "get", "watchCoreV1NamespacedPodList", "watchlist", "/v1/Pod", nil,
			"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/status", "put", "replaceCoreV1NamespacedPodStatus", "put", "/v1/Pod",
			[]string{"dryRun", "fieldManager", "fieldValidation"}, "io.k8s.api.core.v1.Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/eviction", "post", "createCoreV1NamespacedPodEviction", "post", "policy/v1/Eviction",
			nil, "io.k8s.api.policy.v1.Eviction"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/exec", "get", "connectCoreV1GetNamespacedPodExec", "connect", "/v1/PodExecOptions",
			[]string{"command", "container", "stderr", "stdin", "stdout", "tty"}, "string"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "readCoreV1NamespacedPodLog", "get", "/v1/Pod",
			[]string{"container", "follow", "previous", "tailLines", "timestamps"}, "string"},
		{"apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch", "patchAppsV1NamespacedDeploymentScale", "patch", "autoscaling/v1/Scale",
			[]string{"fieldValidation"}, "io.k8s.api.autoscaling.v1.Scale"},
		{"apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "delete", "deleteAppsV1NamespacedDeployment", "delete", "apps/v1/Deployment",
			nil, "io.k8s.apimachinery.pkg.apis.meta.v1.Status"},
		{"apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments", "delete", "deleteAppsV1CollectionNamespacedDeployment", "deletecollection", "apps/v1/Deployment",
			[]string{"labelSelector", "gracePeriodSeconds"}, "io.k8s.apimachinery.pkg.apis.meta.v1.Status"},
		{"apis/apps/v1", "/apis/apps/v1/", "get", "getAppsV1APIResources", "", "", nil, "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"},
		{"apis/apps", "/apis/apps/", "get", "getAppsAPIGroup", "", "", nil, "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup"},
		{"api", "/api/", "get", "getCoreAPIVersions", "", "", nil, "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions"},
		{"version", "/version/", "get", "getCodeVersion", "", "", nil, "io.k8s.apimachinery.pkg.version.Info"},
		{"apis/metrics.k8s.io/v1beta1", "/apis/metrics.k8s.io/v1beta1/nodes", "get", "listMetricsV1beta1NodeMetrics", "list", "metrics.k8s.io/v1beta1/NodeMetrics",
			nil, "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetricsList"},
	}
	for _, tt := range tests {
		t.Run(tt.opID, func(t *testing.T) {
			doc := docs[tt.doc]
			if doc == nil {
				doc = v3Doc(t, h, tt.doc)
				docs[tt.doc] = doc
			}
			item := doc.Paths.Paths[tt.path]
			if item == nil {
				t.Fatalf("no path %s", tt.path)
			}
			op := map[string]*spec3.Operation{"get": item.Get, "post": item.Post, "put": item.Put, "patch": item.Patch, "delete": item.Delete}[tt.method]
			if op == nil {
				t.Fatalf("no %s on %s", tt.method, tt.path)
			}
			if op.OperationId != tt.opID {
				t.Errorf("operationId %s", op.OperationId)
			}
			if a, _ := op.Extensions["x-kubernetes-action"].(string); a != tt.action {
				t.Errorf("action %q", a)
			}
			var gvk map[string]string
			op.Extensions.GetObject("x-kubernetes-group-version-kind", &gvk)
			if got := gvk["group"] + "/" + gvk["version"] + "/" + gvk["kind"]; tt.gvk != "" && got != tt.gvk {
				t.Errorf("gvk %s", got)
			}
			var names []string // the operation's, and those common to the path's operations
			for _, p := range append(append([]*spec3.Parameter{}, op.Parameters...), item.Parameters...) {
				names = append(names, p.Name)
			}
			for _, p := range tt.params {
				if !slices.Contains(names, p) {
					t.Errorf("operation lacks parameter %s (has %v)", p, names)
				}
			}
			resp := op.Responses.StatusCodeResponses[200]
			if resp == nil {
				t.Fatal("no 200 response")
			}
			var media *spec3.MediaType
			for _, m := range resp.Content {
				media = m
				break
			}
			got := media.Schema.Ref.String()
			if got == "" && slices.Contains(media.Schema.Type, "string") {
				got = "string"
			}
			if want := tt.response; want != "string" {
				want = "#/components/schemas/" + want
				if got != want {
					t.Errorf("200 response %s, want %s", got, want)
				}
			} else if got != "string" {
				t.Errorf("200 response %s, want string", got)
			}
			if _, ok := op.Responses.StatusCodeResponses[401]; !ok {
				t.Error("no 401 Unauthorized response")
			}
		})
	}
	// Meta kinds registered in every group version keep only their own
	// and core/v1's GVKs in a group version document.
	var gvks []map[string]string
	docs["apis/apps/v1"].Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"].Extensions.GetObject("x-kubernetes-group-version-kind", &gvks)
	if len(gvks) != 2 {
		t.Errorf("WatchEvent GVKs in apps/v1: %v", gvks)
	}
}

func TestConcurrentRequestsBuildOnce(t *testing.T) {
	h := New(kubeResources())
	paths := []string{"/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1", "/openapi/v3", "/openapi/v2"}
	done := make(chan int, 16)
	for i := 0; i < 16; i++ {
		go func(i int) {
			if i == 7 {
				h.SetResources(kubeResources())
			}
			done <- request(t, h, paths[i%len(paths)]).Code
		}(i)
	}
	for i := 0; i < 16; i++ {
		if code := <-done; code != 200 {
			t.Errorf("code %d", code)
		}
	}
}
