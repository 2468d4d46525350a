package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

const (
	acceptV2        = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	acceptV2Beta1   = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
	accept133       = acceptV2 + "," + acceptV2Beta1 + ",application/json" // kubectl 1.32, 1.33
	accept127       = acceptV2Beta1 + ",application/json"                  // kubectl 1.27
	acceptNoPeer137 = acceptV2 + ";profile=nopeer," + acceptV2 + ",application/json"
)

func get(t *testing.T, h http.Handler, path, accept string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "10.0.0.1:6443"
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestLegacyDocumentsMatchKubeAPIServer(t *testing.T) {
	h := New(kubeResources(), Options{ServerAddress: "192.0.2.2:6443"})
	tests := []struct {
		path string
		want string // exact JSON, as kube-apiserver 1.37 writes it
	}{
		{"/api", `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"192.0.2.2:6443"}]}`},
		{"/apis/batch", `{"kind":"APIGroup","apiVersion":"v1","name":"batch","versions":[{"groupVersion":"batch/v1","version":"v1"}],"preferredVersion":{"groupVersion":"batch/v1","version":"v1"}}`},
		{"/apis/batch/v1", `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"batch/v1","resources":[{"name":"jobs","singularName":"job","namespaced":true,"kind":"Job","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"categories":["all"],"storageVersionHash":"mudhfqk/qZY="}]}`},
		{"/apis/autoscaling", `{"kind":"APIGroup","apiVersion":"v1","name":"autoscaling","versions":[{"groupVersion":"autoscaling/v2","version":"v2"},{"groupVersion":"autoscaling/v1","version":"v1"}],"preferredVersion":{"groupVersion":"autoscaling/v2","version":"v2"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := get(t, h, tt.path, "")
			if rec.Code != 200 {
				t.Fatalf("code %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCoreResourceList(t *testing.T) {
	h := New(kubeResources(), Options{})
	rec := get(t, h, "/api/v1", "")
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["kind"] != "APIResourceList" || raw["apiVersion"] != nil || raw["groupVersion"] != "v1" {
		t.Errorf("header fields: kind=%v apiVersion=%v groupVersion=%v", raw["kind"], raw["apiVersion"], raw["groupVersion"])
	}
	var list metav1.APIResourceList
	json.Unmarshal(rec.Body.Bytes(), &list)
	var names []string
	byName := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		names = append(names, r.Name)
		byName[r.Name] = r
	}
	want := []string{"bindings", "events", "namespaces", "nodes", "pods", "pods/binding", "pods/eviction", "pods/exec", "pods/log", "pods/status", "services"}
	if !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
	pod := byName["pods"]
	if pod.SingularName != "pod" || pod.StorageVersionHash != "xPOwRZ+Yhw8=" || !slices.Equal(pod.ShortNames, []string{"po"}) {
		t.Errorf("pods = %+v", pod)
	}
	if ev := byName["pods/eviction"]; ev.Group != "policy" || ev.Version != "v1" || ev.Kind != "Eviction" || ev.StorageVersionHash != "" {
		t.Errorf("pods/eviction = %+v", ev)
	}
	if st := byName["pods/status"]; st.Group != "" || st.Version != "" || st.SingularName != "" || st.StorageVersionHash != "" {
		t.Errorf("pods/status = %+v", st)
	}
}

// TestStorageVersionHash pins hashes against values kube-apiserver serves.
func TestStorageVersionHash(t *testing.T) {
	h := New(kubeResources(), Options{})
	tests := []struct{ path, resource, want string }{
		{"/api/v1", "events", "r2yiGXH7wu8="},
		{"/apis/events.k8s.io/v1", "events", "r2yiGXH7wu8="}, // stored as core v1 Events
		{"/apis/apps/v1", "deployments", "8aSe+NMegvE="},
		{"/apis/metrics.k8s.io/v1beta1", "nodes", ""},
	}
	for _, tt := range tests {
		var list metav1.APIResourceList
		json.Unmarshal(get(t, h, tt.path, "").Body.Bytes(), &list)
		found := false
		for _, r := range list.APIResources {
			if r.Name == tt.resource {
				found = true
				if r.StorageVersionHash != tt.want {
					t.Errorf("%s %s: hash %q, want %q", tt.path, tt.resource, r.StorageVersionHash, tt.want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no %s", tt.path, tt.resource)
		}
	}
}

func TestGroupOrder(t *testing.T) {
	var names []string
	for _, g := range Groups(kubeResources()) {
		names = append(names, g.Name)
	}
	want := []string{"", "apps", "events.k8s.io", "autoscaling", "batch", "policy", "coordination.k8s.io", "discovery.k8s.io", "example.com", "metrics.k8s.io"}
	if !slices.Equal(names, want) {
		t.Errorf("groups = %q\nwant     %q", names, want)
	}
	for _, g := range Groups(kubeResources()) {
		if g.Name == "example.com" && !slices.Equal(g.Versions, []string{"v1", "v1beta1"}) {
			t.Errorf("example.com versions %v", g.Versions)
		}
	}
}

func TestAcceptNegotiation(t *testing.T) {
	tests := []struct {
		name      string
		accept    string
		noV2Beta1 bool
		code      int
		ctype     string
	}{
		{"kubectl 1.33 gets v2", accept133, false, 200, acceptV2},
		{"kubectl 1.27 gets v2beta1, never v2", accept127, false, 200, acceptV2Beta1},
		{"kubectl 1.27 against 1.37 behaviour gets legacy", accept127, true, 200, "application/json"},
		{"client-go 0.37 nopeer gets v2", acceptNoPeer137, false, 200, acceptV2},
		{"plain JSON gets legacy", "application/json", false, 200, "application/json"},
		{"no Accept gets legacy", "", false, 200, "application/json"},
		{"wildcard gets legacy", "*/*", false, 200, "application/json"},
		{"q-values order clauses", acceptV2Beta1 + ";q=0.5," + acceptV2, false, 200, acceptV2},
		{"protobuf v2", "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", false, 200,
			"application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
		{"unknown version falls back", "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", false, 200, "application/json"},
		{"Table only is not acceptable", "application/json;as=Table;v=v1;g=meta.k8s.io", false, 406, "application/json"},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api", "/apis"} {
			t.Run(tt.name+path, func(t *testing.T) {
				h := New(kubeResources(), Options{NoV2Beta1: tt.noV2Beta1})
				rec := get(t, h, path, tt.accept)
				if rec.Code != tt.code {
					t.Fatalf("code %d, want %d: %s", rec.Code, tt.code, rec.Body)
				}
				if ct := rec.Header().Get("Content-Type"); ct != tt.ctype {
					t.Errorf("Content-Type = %q, want %q", ct, tt.ctype)
				}
				aggregated := strings.Contains(tt.ctype, "APIGroupDiscoveryList")
				if got := rec.Header().Get("ETag") != ""; got != aggregated {
					t.Errorf("ETag present = %v, want %v", got, aggregated)
				}
			})
		}
	}
}

func TestAggregatedDocument(t *testing.T) {
	h := New(kubeResources(), Options{})
	var core apidiscoveryv2.APIGroupDiscoveryList
	rec := get(t, h, "/api", accept133)
	if err := json.Unmarshal(rec.Body.Bytes(), &core); err != nil {
		t.Fatal(err)
	}
	if core.Kind != "APIGroupDiscoveryList" || core.APIVersion != "apidiscovery.k8s.io/v2" {
		t.Errorf("type = %s %s", core.APIVersion, core.Kind)
	}
	if len(core.Items) != 1 || core.Items[0].Name != "" || core.Items[0].Versions[0].Version != "v1" {
		t.Fatalf("core items = %+v", core.Items)
	}
	var pods *apidiscoveryv2.APIResourceDiscovery
	for i, r := range core.Items[0].Versions[0].Resources {
		if r.Resource == "pods" {
			pods = &core.Items[0].Versions[0].Resources[i]
		}
	}
	if pods == nil {
		t.Fatal("no pods")
	}
	want := apidiscoveryv2.APIResourceDiscovery{
		Resource: "pods", ResponseKind: &metav1.GroupVersionKind{Kind: "Pod"}, Scope: apidiscoveryv2.ScopeNamespace,
		SingularResource: "pod", Verbs: []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		ShortNames: []string{"po"}, Categories: []string{"all"},
		Subresources: []apidiscoveryv2.APISubresourceDiscovery{
			{Subresource: "binding", ResponseKind: &metav1.GroupVersionKind{Kind: "Binding"}, Verbs: []string{"create"}},
			{Subresource: "eviction", ResponseKind: &metav1.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, Verbs: []string{"create"}},
			{Subresource: "exec", ResponseKind: &metav1.GroupVersionKind{Kind: "PodExecOptions"}, Verbs: []string{"create", "get"}},
			{Subresource: "log", ResponseKind: &metav1.GroupVersionKind{Kind: "Pod"}, Verbs: []string{"get"}},
			{Subresource: "status", ResponseKind: &metav1.GroupVersionKind{Kind: "Pod"}, Verbs: []string{"get", "patch", "update"}},
		},
	}
	if d := cmp.Diff(want, *pods); d != "" {
		t.Errorf("pods (-want +got):\n%s", d)
	}

	var apis apidiscoveryv2beta1.APIGroupDiscoveryList
	rec = get(t, h, "/apis", accept127)
	if err := json.Unmarshal(rec.Body.Bytes(), &apis); err != nil {
		t.Fatal(err)
	}
	if apis.APIVersion != "apidiscovery.k8s.io/v2beta1" {
		t.Errorf("apiVersion %q", apis.APIVersion)
	}
	var names []string
	for _, g := range apis.Items {
		names = append(names, g.Name)
		if g.Name == "autoscaling" && (g.Versions[0].Version != "v2" || g.Versions[1].Version != "v1") {
			t.Errorf("autoscaling versions not preferred-first: %v", g.Versions)
		}
		if g.Versions[0].Freshness != apidiscoveryv2beta1.DiscoveryFreshnessCurrent {
			t.Errorf("%s freshness %q", g.Name, g.Versions[0].Freshness)
		}
	}
	if want := []string{"apps", "events.k8s.io", "autoscaling", "batch", "policy", "coordination.k8s.io", "discovery.k8s.io", "example.com", "metrics.k8s.io"}; !slices.Equal(names, want) {
		t.Errorf("groups %v\nwant   %v", names, want)
	}
}

func TestETag(t *testing.T) {
	h := New(kubeResources(), Options{})
	first := get(t, h, "/apis", accept133)
	tag := first.Header().Get("ETag")
	if tag == "" || tag[0] != '"' || first.Header().Get("Vary") != "Accept" || first.Header().Get("Cache-Control") != "public" {
		t.Fatalf("headers %v", first.Header())
	}
	if beta := get(t, h, "/apis", accept127).Header().Get("ETag"); beta != tag {
		t.Errorf("v2beta1 etag %s differs from v2 etag %s", beta, tag)
	}
	if rec := get(t, h, "/apis", accept133, "If-None-Match", tag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("If-None-Match: code %d, %d bytes", rec.Code, rec.Body.Len())
	}
	h.SetResources(kubeResources()[:5])
	if rec := get(t, h, "/apis", accept133, "If-None-Match", tag); rec.Code != 200 || rec.Header().Get("ETag") == tag {
		t.Errorf("after change: code %d, etag unchanged=%v", rec.Code, rec.Header().Get("ETag") == tag)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := New(kubeResources(), Options{})
	for _, p := range []string{"/apis/nope", "/apis/apps/v9", "/api/v2", "/apis//v1", "/healthz"} {
		if rec := get(t, h, p, ""); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"reason": "NotFound"`) {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/apis", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /apis: %d", rec.Code)
	}
	for path, want := range map[string]bool{
		"/api": true, "/api/": true, "/api/v1": true, "/apis": true, "/apis/apps": true, "/apis/apps/v1/": true,
		"/api/v1/pods": false, "/apis/apps/v1/deployments": false, "/version": false, "/": false,
	} {
		if got := h.Handles(path); got != want {
			t.Errorf("Handles(%q) = %v", path, got)
		}
	}
}

// TestClientGoSeesTheSameAPIEitherWay runs client-go's discovery client, as
// kubectl does, once with aggregated discovery and once with the legacy
// documents, and checks both see the same groups and resources.
func TestClientGoSeesTheSameAPIEitherWay(t *testing.T) {
	h := New(kubeResources(), Options{})
	var accepts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepts = append(accepts, r.URL.Path+" "+r.Header.Get("Accept"))
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	collect := func(legacy bool, protobuf ...bool) ([]string, map[string][]string) {
		cfg := &rest.Config{Host: srv.URL}
		if len(protobuf) > 0 {
			cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
			cfg.ContentType = "application/vnd.kubernetes.protobuf"
		}
		dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
		dc.UseLegacyDiscovery = legacy
		groups, lists, err := dc.ServerGroupsAndResources()
		if err != nil {
			t.Fatal(err)
		}
		var gs []string
		for _, g := range groups {
			gs = append(gs, g.Name+"="+g.PreferredVersion.Version)
		}
		res := map[string][]string{}
		for _, l := range lists {
			for _, r := range l.APIResources {
				res[l.GroupVersion] = append(res[l.GroupVersion], r.Name+":"+r.Kind+":"+r.Group+":"+r.Version+":"+strings.Join(r.Verbs, ","))
			}
		}
		return gs, res
	}
	aggGroups, aggRes := collect(false)
	if n := len(accepts); n != 2 {
		t.Errorf("aggregated discovery took %d requests, want 2 (/api, /apis): %v", n, accepts)
	}
	accepts = nil
	legGroups, legRes := collect(true)
	if len(accepts) <= 2 {
		t.Errorf("legacy discovery took only %d requests", len(accepts))
	}
	if d := cmp.Diff(legGroups, aggGroups); d != "" {
		t.Errorf("groups differ (-legacy +aggregated):\n%s", d)
	}
	if d := cmp.Diff(legRes, aggRes); d != "" {
		t.Errorf("resources differ (-legacy +aggregated):\n%s", d)
	}
	pbGroups, pbRes := collect(true, true)
	if d := cmp.Diff(legGroups, pbGroups); d != "" {
		t.Errorf("groups differ (-json +protobuf):\n%s", d)
	}
	if d := cmp.Diff(legRes, pbRes); d != "" {
		t.Errorf("resources differ (-json +protobuf):\n%s", d)
	}
	if aggGroups[0] != "=v1" || aggGroups[1] != "apps=v1" {
		t.Errorf("order: %v", aggGroups)
	}

	// What `kubectl api-resources` lists first.
	dc := discovery.NewDiscoveryClientForConfigOrDie(&rest.Config{Host: srv.URL})
	preferred, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	gv, _ := schema.ParseGroupVersion(preferred[0].GroupVersion)
	if gv.Group != "" || preferred[1].GroupVersion != "apps/v1" {
		t.Errorf("preferred resources start with %s, %s", preferred[0].GroupVersion, preferred[1].GroupVersion)
	}
}

// TestProtobufLegacy covers clients configured for protobuf (controllers),
// whose discovery requests then accept protobuf first.
func TestProtobufLegacy(t *testing.T) {
	h := New(kubeResources(), Options{})
	for path, into := range map[string]runtime.Object{
		"/api": &metav1.APIVersions{}, "/api/v1": &metav1.APIResourceList{},
		"/apis": &metav1.APIGroupList{}, "/apis/apps/v1": &metav1.APIResourceList{},
	} {
		rec := get(t, h, path, "application/vnd.kubernetes.protobuf, */*")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/vnd.kubernetes.protobuf" {
			t.Fatalf("%s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		// As client-go's REST client decodes it: into the expected type.
		obj, _, err := h.codecs.UniversalDeserializer().Decode(rec.Body.Bytes(), nil, into)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if l, ok := obj.(*metav1.APIResourceList); ok && len(l.APIResources) == 0 {
			t.Errorf("%s: empty list", path)
		}
	}
}
