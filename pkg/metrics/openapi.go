package metrics

import (
	"net/http"

	restful "github.com/emicklei/go-restful/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// The aggregator downloads every APIService's /openapi/v2 (and retries
// with errors in the log while it gets 404) and kubectl explain reads
// /openapi/v3; both are built from kube-apiserver's generated definitions
// on first request (some ms and a few MB of garbage, once).

// routes describes the metrics API for the OpenAPI builders, with the
// operation names kube-apiserver's installer would give it.
func routes() *restful.WebService {
	ws := new(restful.WebService).
		Path("/apis/"+metricsv1beta1.SchemeGroupVersion.String()).
		Consumes("*/*").
		Produces(runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf)
	none := func(*restful.Request, *restful.Response) {}
	gvk := func(kind string) metav1.GroupVersionKind {
		return metav1.GroupVersionKind{Group: metricsv1beta1.GroupName, Version: "v1beta1", Kind: kind}
	}
	list := func(b *restful.RouteBuilder) *restful.RouteBuilder {
		return b.Metadata("x-kubernetes-action", "list").
			Param(ws.QueryParameter("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything.")).
			Param(ws.QueryParameter("fieldSelector", "A selector to restrict the list of returned objects by their fields (metadata.name, metadata.namespace). Defaults to everything.")).
			Param(ws.QueryParameter("pretty", "If 'true', then the output is pretty printed."))
	}
	get := func(b *restful.RouteBuilder, kind string) *restful.RouteBuilder {
		return b.Metadata("x-kubernetes-action", "get").
			Param(ws.PathParameter("name", "name of the "+kind)).
			Param(ws.QueryParameter("pretty", "If 'true', then the output is pretty printed."))
	}
	namespace := ws.PathParameter("namespace", "object name and auth scope, such as for teams and projects")

	ws.Route(list(ws.GET("/nodes").To(none).
		Operation("listNodeMetrics").Doc("list objects of kind NodeMetrics").
		Metadata("x-kubernetes-group-version-kind", gvk("NodeMetrics")).
		Returns(http.StatusOK, "OK", metricsv1beta1.NodeMetricsList{}).Writes(metricsv1beta1.NodeMetricsList{})))
	ws.Route(get(ws.GET("/nodes/{name}").To(none).
		Operation("readNodeMetrics").Doc("read the specified NodeMetrics").
		Metadata("x-kubernetes-group-version-kind", gvk("NodeMetrics")).
		Returns(http.StatusOK, "OK", metricsv1beta1.NodeMetrics{}).Writes(metricsv1beta1.NodeMetrics{}), "NodeMetrics"))
	ws.Route(list(ws.GET("/pods").To(none).
		Operation("listPodMetricsForAllNamespaces").Doc("list objects of kind PodMetrics").
		Metadata("x-kubernetes-group-version-kind", gvk("PodMetrics")).
		Returns(http.StatusOK, "OK", metricsv1beta1.PodMetricsList{}).Writes(metricsv1beta1.PodMetricsList{})))
	ws.Route(list(ws.GET("/namespaces/{namespace}/pods").To(none).
		Operation("listNamespacedPodMetrics").Doc("list objects of kind PodMetrics").
		Metadata("x-kubernetes-group-version-kind", gvk("PodMetrics")).
		Param(namespace).
		Returns(http.StatusOK, "OK", metricsv1beta1.PodMetricsList{}).Writes(metricsv1beta1.PodMetricsList{})))
	ws.Route(get(ws.GET("/namespaces/{namespace}/pods/{name}").To(none).
		Operation("readNamespacedPodMetrics").Doc("read the specified PodMetrics").
		Metadata("x-kubernetes-group-version-kind", gvk("PodMetrics")).
		Param(namespace).
		Returns(http.StatusOK, "OK", metricsv1beta1.PodMetrics{}).Writes(metricsv1beta1.PodMetrics{}), "PodMetrics"))
	return ws
}

const openAPITitle = "Kubernetes metrics-server"

func openAPIV2() (*spec.Swagger, error) {
	cfg := genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, apiopenapi.NewDefinitionNamer(newScheme()))
	cfg.Info.Title = openAPITitle
	return builder.BuildOpenAPISpec([]*restful.WebService{routes()}, cfg)
}

func openAPIV3() (*spec3.OpenAPI, error) {
	cfg := genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, apiopenapi.NewDefinitionNamer(newScheme()))
	cfg.Info.Title = openAPITitle
	return builder3.BuildOpenAPISpec([]*restful.WebService{routes()}, cfg)
}

// mux adapts http.ServeMux to the OpenAPI handlers' registration.
type mux struct{ *http.ServeMux }

func (m mux) HandlePrefix(path string, h http.Handler) { m.Handle(path, h) }

// installOpenAPI serves /openapi/v2 and /openapi/v3 on m, built lazily.
func installOpenAPI(m *http.ServeMux) {
	v2 := cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		s, err := openAPIV2()
		if err != nil {
			klog.ErrorS(err, "Failed to build the metrics API's OpenAPI v2 document")
		}
		return s, "v2", err
	}))
	handler.NewOpenAPIServiceLazy(v2).RegisterOpenAPIVersionedService("/openapi/v2", mux{m})

	v3 := cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
		s, err := openAPIV3()
		if err != nil {
			klog.ErrorS(err, "Failed to build the metrics API's OpenAPI v3 document")
		}
		return s, "v3", err
	}))
	svc := handler3.NewOpenAPIService()
	svc.UpdateGroupVersionLazy("apis/"+metricsv1beta1.SchemeGroupVersion.String(), v3)
	svc.RegisterOpenAPIV3VersionedService("/openapi/v3", mux{m})
}
