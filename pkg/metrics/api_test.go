package metrics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	clocktesting "k8s.io/utils/clock/testing"
)

type fakePods []*metav1.PartialObjectMetadata

func (f fakePods) List(ns string, sel labels.Selector) ([]*metav1.PartialObjectMetadata, error) {
	var out []*metav1.PartialObjectMetadata
	for _, p := range f {
		if (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f fakePods) Get(ns, name string) (*metav1.PartialObjectMetadata, error) {
	for _, p := range f {
		if p.Namespace == ns && p.Name == name {
			return p, nil
		}
	}
	return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
}

// testAPI serves node vm and pods ns1/a (app=web), ns1/b, ns2/c with
// metrics, and ns1/new without.
func testAPI(t *testing.T) *API {
	t.Helper()
	store := &Store{Resolution: Resolution}
	for i := range 2 {
		b := NewBatch()
		ts := at(float64(10 * i))
		b.Nodes["vm"] = Point{Timestamp: ts, CPU: uint64(i) * 5e9, Memory: 2 << 30}
		for _, r := range []string{"ns1/a", "ns1/b", "ns2/c"} {
			ns, name, _ := strings.Cut(r, "/")
			b.Pods[ref(ns, name)] = map[string]Point{
				"main":    {Timestamp: ts, CPU: uint64(i) * 1e9, Memory: 8 << 20},
				"sidecar": {Timestamp: ts, CPU: uint64(i) * 2e8, Memory: 1 << 20},
			}
		}
		store.Add(b)
	}
	nodes := fakeNodes{node("vm", true, map[string]string{"kubernetes.io/hostname": "vm"}), node("idle", true, nil)}
	pods := fakePods{
		pod("ns1", "a", map[string]string{"app": "web"}),
		pod("ns1", "b", map[string]string{"app": "db"}),
		pod("ns2", "c", map[string]string{"app": "web"}),
		pod("ns1", "new", nil),
	}
	return NewAPI(nodes, pods, store, clocktesting.NewFakePassiveClock(at(15)))
}

func request(t *testing.T, h http.Handler, method, path, accept string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestDiscovery(t *testing.T) {
	api := testAPI(t)

	w := request(t, api, "GET", "/apis", "application/json")
	var groups metav1.APIGroupList
	if err := json.Unmarshal(w.Body.Bytes(), &groups); err != nil || w.Code != 200 {
		t.Fatalf("/apis: %d %s", w.Code, w.Body)
	}
	if groups.Kind != "APIGroupList" || len(groups.Groups) != 1 || groups.Groups[0].Name != "metrics.k8s.io" ||
		groups.Groups[0].PreferredVersion.GroupVersion != "metrics.k8s.io/v1beta1" {
		t.Errorf("/apis: %s", w.Body)
	}

	// The aggregator asks for aggregated discovery first.
	w = request(t, api, "GET", "/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
	if ct := w.Header().Get("Content-Type"); ct != "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" {
		t.Errorf("aggregated discovery content type %q", ct)
	}
	var agg apidiscoveryv2.APIGroupDiscoveryList
	if err := json.Unmarshal(w.Body.Bytes(), &agg); err != nil {
		t.Fatal(err)
	}
	if len(agg.Items) != 1 || len(agg.Items[0].Versions) != 1 || len(agg.Items[0].Versions[0].Resources) != 2 {
		t.Fatalf("aggregated discovery %s", w.Body)
	}
	pods := agg.Items[0].Versions[0].Resources[1]
	if pods.Resource != "pods" || pods.Scope != apidiscoveryv2.ScopeNamespace || pods.ResponseKind.Kind != "PodMetrics" {
		t.Errorf("pods %+v", pods)
	}

	w = request(t, api, "GET", "/apis/metrics.k8s.io", "")
	var group metav1.APIGroup
	if err := json.Unmarshal(w.Body.Bytes(), &group); err != nil || group.Kind != "APIGroup" || group.Name != "metrics.k8s.io" {
		t.Errorf("/apis/metrics.k8s.io: %d %s", w.Code, w.Body)
	}

	w = request(t, api, "GET", "/apis/metrics.k8s.io/v1beta1", "")
	var rl metav1.APIResourceList
	if err := json.Unmarshal(w.Body.Bytes(), &rl); err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1","resources":[` +
		`{"name":"nodes","singularName":"","namespaced":false,"kind":"NodeMetrics","verbs":["get","list"]},` +
		`{"name":"pods","singularName":"","namespaced":true,"kind":"PodMetrics","verbs":["get","list"]}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("/apis/metrics.k8s.io/v1beta1:\n got %s\nwant %s", got, want)
	}
}

// TestClient reads the API with the metrics clientset kubectl top uses,
// in JSON and in protobuf (kubectl's default).
func TestClient(t *testing.T) {
	srv := httptest.NewServer(testAPI(t))
	defer srv.Close()
	for _, contentType := range []string{"application/json", "application/vnd.kubernetes.protobuf"} {
		t.Run(contentType, func(t *testing.T) {
			c := metricsclient.NewForConfigOrDie(&rest.Config{Host: srv.URL, QPS: -1, ContentConfig: rest.ContentConfig{ContentType: contentType}}).MetricsV1beta1()
			ctx := context.Background()

			nodes, err := c.NodeMetricses().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) != 1 {
				t.Fatalf("nodes %+v", nodes.Items)
			}
			n := nodes.Items[0]
			cpu, mem := n.Usage[corev1.ResourceCPU], n.Usage[corev1.ResourceMemory]
			if n.Name != "vm" || cpu.String() != "500m" || mem.String() != "2Gi" || n.Window.Duration.String() != "10s" ||
				!n.Timestamp.Time.Equal(at(10)) || !n.CreationTimestamp.Time.Equal(at(15)) || n.Labels["kubernetes.io/hostname"] != "vm" {
				t.Errorf("node %+v", n)
			}
			if nm, err := c.NodeMetricses().Get(ctx, "vm", metav1.GetOptions{}); err != nil || nm.Name != "vm" {
				t.Errorf("get vm: %v %v", nm, err)
			}
			_, err = c.NodeMetricses().Get(ctx, "idle", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) || err.Error() != `nodemetrics.metrics.k8s.io "idle" not found` {
				t.Errorf("node without metrics: %v", err)
			}
			_, err = c.NodeMetricses().Get(ctx, "nope", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) || err.Error() != `node "nope" not found` {
				t.Errorf("missing node: %v", err)
			}

			names := func(opts metav1.ListOptions, ns string) string {
				t.Helper()
				l, err := c.PodMetricses(ns).List(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				var s []string
				for _, p := range l.Items {
					s = append(s, p.Namespace+"/"+p.Name)
				}
				return strings.Join(s, " ")
			}
			for _, tt := range []struct {
				ns   string
				opts metav1.ListOptions
				want string
			}{
				{"", metav1.ListOptions{}, "ns1/a ns1/b ns2/c"},
				{"ns1", metav1.ListOptions{}, "ns1/a ns1/b"},
				{"", metav1.ListOptions{LabelSelector: "app=web"}, "ns1/a ns2/c"},
				{"ns1", metav1.ListOptions{LabelSelector: "app in (web,db)"}, "ns1/a ns1/b"},
				{"ns1", metav1.ListOptions{FieldSelector: "metadata.name=b"}, "ns1/b"},
				{"", metav1.ListOptions{FieldSelector: "metadata.namespace!=ns1"}, "ns2/c"},
				{"ns3", metav1.ListOptions{}, ""},
			} {
				if got := names(tt.opts, tt.ns); got != tt.want {
					t.Errorf("pods in %q %+v: %q, want %q", tt.ns, tt.opts, got, tt.want)
				}
			}

			pm, err := c.PodMetricses("ns1").Get(ctx, "a", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(pm.Containers) != 2 || pm.Containers[0].Name != "main" || pm.Containers[1].Name != "sidecar" {
				t.Fatalf("containers %+v", pm.Containers)
			}
			if cpu := pm.Containers[1].Usage[corev1.ResourceCPU]; cpu.String() != "20m" {
				t.Errorf("sidecar cpu %s", cpu.String())
			}
			_, err = c.PodMetricses("ns1").Get(ctx, "new", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) || err.Error() != `podmetrics.metrics.k8s.io "ns1/new" not found` {
				t.Errorf("pod without metrics: %v", err)
			}
			_, err = c.PodMetricses("ns1").Get(ctx, "gone", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) || err.Error() != `pods "gone" not found` {
				t.Errorf("missing pod: %v", err)
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	api := testAPI(t)
	tests := []struct {
		method, path string
		code         int
		message      string
	}{
		{"GET", "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dvm", 400, `"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"`},
		{"GET", "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=a%3D%3D%3Db", 400, ""},
		{"GET", "/apis/metrics.k8s.io/v1beta1/nodes?watch=true", 405, `watch is not supported on resources of kind "nodes.metrics.k8s.io"`},
		{"GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods?watch=1", 405, `watch is not supported on resources of kind "pods.metrics.k8s.io"`},
		{"POST", "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods", 405, `post is not supported on resources of kind "pods.metrics.k8s.io"`},
		{"DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/vm", 405, `delete is not supported on resources of kind "nodes.metrics.k8s.io"`},
		{"GET", "/apis/metrics.k8s.io/v1beta1/services", 404, "the server could not find the requested resource"},
		{"GET", "/api/v1", 404, "the server could not find the requested resource"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := request(t, api, tt.method, tt.path, "")
			var st metav1.Status
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if w.Code != tt.code || st.Kind != "Status" || int(st.Code) != tt.code || (tt.message != "" && st.Message != tt.message) {
				t.Errorf("%d %s", w.Code, w.Body)
			}
		})
	}
}

func TestTable(t *testing.T) {
	api := testAPI(t)
	accept := "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

	w := request(t, api, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods", accept)
	var table metav1.Table
	if err := json.Unmarshal(w.Body.Bytes(), &table); err != nil {
		t.Fatal(err)
	}
	if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" {
		t.Fatalf("not a table: %s", w.Body)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if strings.Join(cols, ",") != "Name,cpu,memory,Window" {
		t.Errorf("columns %v", cols)
	}
	if len(table.Rows) != 2 {
		t.Fatalf("rows %+v", table.Rows)
	}
	cells, _ := json.Marshal(table.Rows[0].Cells)
	if string(cells) != `["a","120m","9Mi","10s"]` {
		t.Errorf("row %s", cells)
	}
	var meta metav1.PartialObjectMetadata
	if err := json.Unmarshal(table.Rows[0].Object.Raw, &meta); err != nil || meta.Kind != "PartialObjectMetadata" || meta.Namespace != "ns1" || meta.Name != "a" {
		t.Errorf("row object %s", table.Rows[0].Object.Raw)
	}

	w = request(t, api, "GET", "/apis/metrics.k8s.io/v1beta1/nodes/vm?includeObject=Object", accept)
	if err := json.Unmarshal(w.Body.Bytes(), &table); err != nil {
		t.Fatal(err)
	}
	cells, _ = json.Marshal(table.Rows[0].Cells)
	if string(cells) != `["vm","500m","2Gi","10s"]` || !strings.Contains(string(table.Rows[0].Object.Raw), `"kind":"NodeMetrics"`) {
		t.Errorf("node table %s", w.Body)
	}

	w = request(t, api, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/none/pods?includeObject=None", accept)
	if err := json.Unmarshal(w.Body.Bytes(), &table); err != nil || len(table.Rows) != 0 || table.Kind != "Table" {
		t.Errorf("empty table %s", w.Body)
	}

	// Tables are JSON or YAML only; a protobuf client gets the list.
	w = request(t, api, "GET", "/apis/metrics.k8s.io/v1beta1/nodes", "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json")
	if !strings.Contains(w.Body.String(), `"kind":"NodeMetricsList"`) {
		t.Errorf("fallback %s", w.Body)
	}
}

func TestHealthz(t *testing.T) {
	w := request(t, testAPI(t), "GET", "/readyz", "")
	if b, _ := io.ReadAll(w.Body); w.Code != 200 || string(b) != "ok" {
		t.Errorf("%d %s", w.Code, b)
	}
}
