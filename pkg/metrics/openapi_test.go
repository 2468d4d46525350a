package metrics

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOpenAPIDocuments(t *testing.T) {
	m := http.NewServeMux()
	installOpenAPI(m)

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept", "application/json")
		m.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	code, body := get("/openapi/v2")
	if code != 200 {
		t.Fatalf("/openapi/v2: %d %s", code, body)
	}
	var v2 struct {
		Paths       map[string]any `json:"paths"`
		Definitions map[string]struct {
			GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal([]byte(body), &v2); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/apis/metrics.k8s.io/v1beta1/nodes",
		"/apis/metrics.k8s.io/v1beta1/nodes/{name}",
		"/apis/metrics.k8s.io/v1beta1/pods",
		"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
		"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
	} {
		if _, ok := v2.Paths[p]; !ok {
			t.Errorf("v2 lacks path %s", p)
		}
	}
	for name, kind := range map[string]string{
		"io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics":    "NodeMetrics",
		"io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList": "PodMetricsList",
	} {
		d, ok := v2.Definitions[name]
		if !ok {
			t.Errorf("v2 lacks definition %s", name)
			continue
		}
		if len(d.GVK) != 1 || d.GVK[0]["kind"] != kind || d.GVK[0]["group"] != "metrics.k8s.io" {
			t.Errorf("%s: group-version-kind %v", name, d.GVK)
		}
	}
	if _, ok := v2.Definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]; !ok {
		t.Errorf("v2 lacks ObjectMeta")
	}

	code, body = get("/openapi/v3")
	if code != 200 || !strings.Contains(body, `"apis/metrics.k8s.io/v1beta1"`) {
		t.Fatalf("/openapi/v3: %d %s", code, body)
	}
	code, body = get("/openapi/v3/apis/metrics.k8s.io/v1beta1")
	if code != 200 {
		t.Fatalf("/openapi/v3/apis/metrics.k8s.io/v1beta1: %d %s", code, body)
	}
	var v3 struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(body), &v3); err != nil {
		t.Fatal(err)
	}
	if _, ok := v3.Components.Schemas["io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"]; !ok {
		t.Errorf("v3 lacks PodMetrics; has %d schemas", len(v3.Components.Schemas))
	}
}
