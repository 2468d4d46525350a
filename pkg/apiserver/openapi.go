package apiserver

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/emicklei/go-restful/v3"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/apiserver/pkg/server/routes"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/common/restfuladapter"
)

// routeOperationIDs gives every OpenAPI configuration of the chain its
// GetOperationIDAndTagsFromRoute before a builder runs. kube-openapi's
// builders (v2 and v3) otherwise store, into the shared configuration, an
// adapter closure over the builder itself, which keeps that builder's copy
// of every OpenAPI definition (~10 MB: the apiextensions server's v2
// builder runs first) alive for the life of the process. The adapter here
// is the same conversion without the builder.
func routeOperationIDs(configs ...*genericapiserver.Config) {
	for _, c := range configs {
		if v2 := c.OpenAPIConfig; v2 != nil && v2.GetOperationIDAndTagsFromRoute == nil && v2.GetOperationIDAndTags != nil {
			v2.GetOperationIDAndTagsFromRoute = restfulOperationIDAndTags(v2.GetOperationIDAndTags)
		}
		if v3 := c.OpenAPIV3Config; v3 != nil && v3.GetOperationIDAndTagsFromRoute == nil && v3.GetOperationIDAndTags != nil {
			v3.GetOperationIDAndTagsFromRoute = restfulOperationIDAndTags(v3.GetOperationIDAndTags)
		}
	}
}

func restfulOperationIDAndTags(f func(*restful.Route) (string, []string, error)) func(openapicommon.Route) (string, []string, error) {
	return func(r openapicommon.Route) (string, []string, error) {
		ra, ok := r.(*restfuladapter.RouteAdapter)
		if !ok {
			return "", nil, fmt.Errorf("config.GetOperationIDAndTags specified but route is not a restful v1 Route")
		}
		return f(ra.Route)
	}
}

// kube-apiserver builds its OpenAPI v2 document (every path and definition
// of the built-in API, ~20 MB of live heap and ~0.2 s of CPU) while it
// starts, though nothing inside the server reads it: the aggregator merges
// the delegates' /openapi/v2 only when a client asks for it, and clients
// (kubectl ≥ 1.27) use v3. k1s therefore skips upstream's installation in
// the kube-apiserver and installs the same documents itself: v3 per
// group-version on first request (openapiv3.go), v2 with upstream's own
// builder on the first request for it (routes.OpenAPI.InstallV2 into a
// private mux), so what /openapi/v2 serves is byte for byte upstream's.

// openAPIConfigs are the kube-apiserver's OpenAPI configurations, read
// before its installation is turned off.
type openAPIConfigs struct {
	v2 *openapicommon.Config
	v3 *openapicommon.OpenAPIV3Config
}

// skipOpenAPIInstallation turns upstream's eager installation off in the
// kube-apiserver's generic config and returns what install needs.
func skipOpenAPIInstallation(c *genericapiserver.Config) openAPIConfigs {
	oc := openAPIConfigs{v2: c.OpenAPIConfig, v3: c.OpenAPIV3Config}
	c.SkipOpenAPIInstallation = true
	return oc
}

// install serves /openapi/v3 and /openapi/v2 (both built on first use) for
// the web services of container on m. Call it once every API group is
// installed and before the server chain's PrepareRun.
func (oc openAPIConfigs) install(container *restful.Container, m *mux.PathRecorderMux) {
	if oc.v3 != nil {
		installOpenAPIV3(oc.v3, container, m)
	}
	if oc.v2 != nil {
		m.Handle("/openapi/v2", &lazyOpenAPIV2{config: oc.v2, container: container})
	}
}

// releaseDefinitions drops the OpenAPI v3 definitions that upstream's
// configuration computes up front (DefaultOpenAPIV3Config) once the
// chain is prepared: every API group has built its server-side apply type
// converter from them by then, and the v3 builder recomputes them
// (GetDefinitions) when it finds none, which it now only does on the first
// request for a group-version's document. Call it after PrepareRun,
// before Run: nothing else reads the configuration concurrently then.
func (oc openAPIConfigs) releaseDefinitions() {
	if oc.v3 != nil && oc.v3.GetDefinitions != nil {
		oc.v3.Definitions = nil
	}
}

// lazyOpenAPIV2 builds upstream's /openapi/v2 handler on the first request.
type lazyOpenAPIV2 struct {
	config    *openapicommon.Config
	container *restful.Container

	once    sync.Once
	handler http.Handler
}

func (l *lazyOpenAPIV2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(func() {
		m := mux.NewPathRecorderMux("k1s-openapi-v2")
		routes.OpenAPI{Config: l.config}.InstallV2(l.container, m)
		l.handler = m
	})
	l.handler.ServeHTTP(w, r)
}

// kubeAPIServerOf returns the kube-apiserver in the chain behind the
// aggregator.
func kubeAPIServerOf(aggregator *genericapiserver.GenericAPIServer) (*genericapiserver.GenericAPIServer, error) {
	kube, ok := aggregator.NextDelegate().(*genericapiserver.GenericAPIServer)
	if !ok {
		return nil, fmt.Errorf("unexpected delegate %T behind the aggregator", aggregator.NextDelegate())
	}
	return kube, nil
}
