package openapi

import (
	"net/http"
	"sort"
	"strings"

	restful "github.com/emicklei/go-restful/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/common/restfuladapter"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// NewScheme returns the scheme of every external type kube-apiserver's
// OpenAPI describes (all of k8s.io/api, apiextensions, apiregistration) and
// metrics.k8s.io: route samples are looked up in it, and it gives schemas
// their x-kubernetes-group-version-kind.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(apiregistrationv1.AddToScheme(s))
	utilruntime.Must(metricsv1beta1.AddToScheme(s))
	return s
}

var bearerTokenV2 = &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
	Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
}}

// v2Config is kube-apiserver's OpenAPI v2 configuration (DefaultOpenAPIConfig
// completed with token authentication). A new one per build: the builder
// writes into it.
func v2Config(info string, namer *apiopenapi.DefinitionNamer) *common.Config {
	return &common.Config{
		ProtocolList:   []string{"https"},
		IgnorePrefixes: []string{},
		Info:           &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: info}},
		DefaultResponse: &spec.Response{ResponseProps: spec.ResponseProps{
			Description: "Default Response."}},
		CommonResponses: map[int]spec.Response{http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{
			Description: "Unauthorized"}}},
		GetOperationIDAndTags: apiopenapi.GetOperationIDAndTags,
		GetDefinitionName:     namer.GetDefinitionName,
		GetDefinitions:        generatedopenapi.GetOpenAPIDefinitions,
		SecurityDefinitions:   &spec.SecurityDefinitions{"BearerToken": bearerTokenV2},
		DefaultSecurity:       []map[string][]string{{"BearerToken": {}}},
	}
}

// v3Config is the v3 counterpart of v2Config.
func v3Config(info string, namer *apiopenapi.DefinitionNamer) *common.OpenAPIV3Config {
	return &common.OpenAPIV3Config{
		IgnorePrefixes: []string{},
		Info:           &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: info}},
		DefaultResponse: &spec3.Response{ResponseProps: spec3.ResponseProps{
			Description: "Default Response."}},
		CommonResponses: map[int]*spec3.Response{http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{
			Description: "Unauthorized"}}},
		GetOperationIDAndTags: apiopenapi.GetOperationIDAndTags,
		GetDefinitionName:     namer.GetDefinitionName,
		GetDefinitions:        generatedopenapi.GetOpenAPIDefinitions,
		SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
	}
}

// docWebServices returns the web services of one /openapi/v3 document:
// "api", "apis", "version", "apis/<g>", "api/v1", "apis/<g>/<v>".
func (b *routeBuilder) docWebServices(doc string) ([]*restful.WebService, error) {
	switch doc {
	case "api", "apis":
		return []*restful.WebService{rootWebService("/" + doc)}, nil
	case "version":
		return []*restful.WebService{versionWebService()}, nil
	}
	parts := strings.Split(doc, "/")
	switch {
	case len(parts) == 2 && parts[0] == "api":
		ws, err := b.groupVersionWebService("", parts[1])
		return []*restful.WebService{ws}, err
	case len(parts) == 2 && parts[0] == "apis":
		return []*restful.WebService{groupWebService(parts[1])}, nil
	case len(parts) == 3 && parts[0] == "apis":
		ws, err := b.groupVersionWebService(parts[1], parts[2])
		return []*restful.WebService{ws}, err
	}
	return nil, nil
}

// docNames lists the /openapi/v3 documents of the resources, sorted.
func docNames(resources []resourceKey) []string {
	set := map[string]bool{"api": true, "apis": true, "version": true}
	for _, r := range resources {
		if r.group == "" {
			set["api/"+r.version] = true
			continue
		}
		set["apis/"+r.group] = true
		set["apis/"+r.group+"/"+r.version] = true
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type resourceKey struct{ group, version string }

// buildV3 builds one /openapi/v3 document, as kube-apiserver's
// routes.OpenAPI.InstallV3 does for each of its web services.
func (b *routeBuilder) buildV3(doc, info string, namer *apiopenapi.DefinitionNamer) (*spec3.OpenAPI, error) {
	wss, err := b.docWebServices(doc)
	if err != nil {
		return nil, err
	}
	s, err := builder3.BuildOpenAPISpecFromRoutes(restfuladapter.AdaptWebServices(wss), v3Config(info, namer))
	if err != nil {
		return nil, err
	}
	parts := strings.Split(doc, "/")
	switch {
	case len(parts) == 2 && parts[0] == "api":
		scopeMetaGVKs(s, "", parts[1])
	case len(parts) == 3 && parts[0] == "apis":
		scopeMetaGVKs(s, parts[1], parts[2])
	}
	return s, nil
}

// buildV2 builds the single /openapi/v2 document of everything, as
// kube-apiserver's routes.OpenAPI.InstallV2 does.
func (b *routeBuilder) buildV2(docs []string, info string, namer *apiopenapi.DefinitionNamer) (*spec.Swagger, error) {
	var all []*restful.WebService
	for _, d := range docs {
		wss, err := b.docWebServices(d)
		if err != nil {
			return nil, err
		}
		all = append(all, wss...)
	}
	s, err := builder.BuildOpenAPISpecFromRoutes(restfuladapter.AdaptWebServices(all), v2Config(info, namer))
	if err != nil {
		return nil, err
	}
	s.Definitions = handler.PruneDefaults(s.Definitions)
	return s, nil
}

// crossRegisteredKinds are the meta kinds every group version registers
// (metav1.AddToGroupVersion). In a per-group-version v3 document
// kube-apiserver keeps only the GVKs of that group version and core/v1 on
// their schemas instead of ~60.
var crossRegisteredKinds = map[string]bool{"WatchEvent": true, "DeleteOptions": true}

func scopeMetaGVKs(s *spec3.OpenAPI, group, version string) {
	if s.Components == nil {
		return
	}
	for _, sch := range s.Components.Schemas {
		if sch == nil {
			continue
		}
		gvks, ok := sch.Extensions["x-kubernetes-group-version-kind"].([]any)
		if !ok || len(gvks) <= 1 {
			continue
		}
		first, _ := gvks[0].(map[string]any)
		if kind, _ := first["kind"].(string); !crossRegisteredKinds[kind] {
			continue
		}
		var kept []any
		for _, item := range gvks {
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			g, _ := m["group"].(string)
			v, _ := m["version"].(string)
			if (g == group && v == version) || (g == "" && v == "v1") {
				kept = append(kept, item)
			}
		}
		if len(kept) > 0 {
			sch.Extensions["x-kubernetes-group-version-kind"] = kept
		} else {
			delete(sch.Extensions, "x-kubernetes-group-version-kind")
		}
	}
}
