package openapi

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"

	restful "github.com/emicklei/go-restful/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints"

	"k1s.dev/k1s/pkg/apiserver/discovery"
)

// The routes below describe the API the way kube-apiserver's installer
// (k8s.io/apiserver/pkg/endpoints/installer.go) registers it with
// go-restful, so that kube-openapi's builders produce the same operations,
// operation IDs, parameters and x-kubernetes-* extensions. go-restful is
// used only as the route description language: no request is served
// through these web services.

var (
	// mediaTypes and streamMediaTypes are what kube-apiserver's codecs
	// produce (CBOR is behind a disabled feature gate in 1.37).
	mediaTypes       = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	streamMediaTypes = []string{"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	allMediaTypes    = append(append([]string{}, mediaTypes...), streamMediaTypes...)

	patchTypes = []string{
		string(types.JSONPatchType),
		string(types.MergePatchType),
		string(types.StrategicMergePatchType),
		string(types.ApplyYAMLPatchType),
	}
)

const prettyDoc = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."

// deleteReturnsObject lists the resources whose DELETE answers with the
// deleted object rather than a Status (genericregistry.Store's
// ReturnDeletedObject in kube-apiserver's registry).
var deleteReturnsObject = setOf(
	"/namespaces",
	"/persistentvolumes",
	"/persistentvolumeclaims",
	"/pods",
	"/podtemplates",
	"/resourcequotas",
	"/services",
	"/serviceaccounts",
	"storage.k8s.io/csidrivers",
	"storage.k8s.io/storageclasses",
	"storage.k8s.io/volumeattachments",
	"storage.k8s.io/csinodes",
	"storage.k8s.io/volumeattributesclasses",
	"resource.k8s.io/deviceclasses",
	"resource.k8s.io/resourceclaims",
	"resource.k8s.io/resourceclaimtemplates",
	"resource.k8s.io/resourceslices",
)

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// getterWithOptions lists the subresources read with GET and options (not
// connect), with their options kind and the MIME types they add.
var getterWithOptions = map[string]struct {
	optionsKind string
	produces    []string
}{
	"/pods/log": {"PodLogOptions", []string{"text/plain"}},
}

func noop(*restful.Request, *restful.Response) {}

// routeBuilder turns resources into go-restful web services.
type routeBuilder struct {
	scheme    *runtime.Scheme
	resources []discovery.Resource
}

// rootPath is the path of the web service serving a group version:
// "/api/v1" or "/apis/<group>/<version>".
func rootPath(group, version string) string {
	if group == "" {
		return "/api/" + version
	}
	return "/apis/" + group + "/" + version
}

// groupVersionWebService returns the web service of one group version: the
// discovery route "/" and every route of its resources. Resources whose
// kind the scheme does not know are left out.
func (b *routeBuilder) groupVersionWebService(group, ver string) (*restful.WebService, error) {
	prefix := rootPath(group, ver)
	ws := new(restful.WebService)
	ws.Path(prefix)
	ws.Doc("API at " + prefix)
	ws.Consumes("*/*")
	ws.Produces(allMediaTypes...)
	ws.ApiVersion(schema.GroupVersion{Group: group, Version: ver}.String())

	var inGV []discovery.Resource
	byName := map[string]discovery.Resource{}
	for _, r := range b.resources {
		if r.Group == group && r.Version == ver {
			inGV = append(inGV, r)
			byName[r.Resource] = r
		}
	}
	sort.Slice(inGV, func(i, j int) bool { return inGV[i].Resource < inGV[j].Resource })

	for _, r := range inGV {
		parentKind := r.Kind
		if r.IsSubresource() {
			if p, ok := byName[r.Parent()]; ok {
				parentKind = p.Kind
			}
		}
		if _, err := b.addResourceRoutes(ws, r, parentKind); err != nil {
			return nil, fmt.Errorf("%s %s: %w", prefix, r.Resource, err)
		}
	}

	ws.Route(ws.GET("/").To(noop).
		Doc("get available resources").
		Operation("getAPIResources").
		Produces(mediaTypes...).
		Consumes(mediaTypes...).
		Writes(metav1.APIResourceList{}))
	return ws, nil
}

// groupWebService serves /apis/<group> (getAPIGroup).
func groupWebService(group string) *restful.WebService {
	ws := new(restful.WebService)
	ws.Path("/apis/" + group)
	ws.Doc("get information of a group")
	ws.Route(ws.GET("/").To(noop).
		Doc("get information of a group").
		Operation("getAPIGroup").
		Produces(mediaTypes...).
		Consumes(mediaTypes...).
		Writes(metav1.APIGroup{}))
	return ws
}

// rootWebService serves /api (APIVersions) or /apis (APIGroupList).
func rootWebService(path string) *restful.WebService {
	ws := new(restful.WebService)
	ws.Path(path)
	ws.Doc("get available API versions")
	var out any = metav1.APIGroupList{}
	if path == "/api" {
		out = metav1.APIVersions{}
	}
	ws.Route(ws.GET("/").To(noop).
		Doc("get available API versions").
		Operation("getAPIVersions").
		Produces(mediaTypes...).
		Consumes(mediaTypes...).
		Writes(out))
	return ws
}

// versionWebService serves /version.
func versionWebService() *restful.WebService {
	ws := new(restful.WebService)
	ws.Path("/version")
	ws.Doc("git code version from which this is built")
	ws.Route(ws.GET("/").To(noop).
		Doc("get the version information for this server").
		Operation("getCodeVersion").
		Produces(restful.MIME_JSON).
		Consumes(restful.MIME_JSON).
		Writes(version.Info{}))
	return ws
}

// action is one route of a resource: an HTTP method on a path.
type action struct {
	verb          string // list, post, deletecollection, watchlist, get, put, patch, delete, watch, connect
	path          string
	params        []*restful.Parameter
	allNamespaces bool
}

func hasVerb(r discovery.Resource, v string) bool {
	for _, x := range r.Verbs {
		if x == v {
			return true
		}
	}
	return false
}

// connectMethods returns the HTTP methods of a connect subresource
// (pods/exec, pods/proxy, nodes/proxy, ...), whose kind is an options kind;
// nil for other resources.
func connectMethods(r discovery.Resource) []string {
	if !r.IsSubresource() || !strings.HasSuffix(r.Kind, "Options") {
		return nil
	}
	var methods []string
	for _, m := range []struct{ verb, method string }{
		{"get", http.MethodGet}, {"create", http.MethodPost}, {"update", http.MethodPut},
		{"patch", http.MethodPatch}, {"delete", http.MethodDelete},
	} {
		if hasVerb(r, m.verb) {
			methods = append(methods, m.method)
		}
	}
	if r.Subresource() == "proxy" {
		methods = append(methods, http.MethodHead, http.MethodOptions)
	}
	return methods
}

// addResourceRoutes adds the routes of one resource or subresource, named
// and parametrised as kube-apiserver's installer does. It returns false
// when the scheme does not know the resource's kind.
func (b *routeBuilder) addResourceRoutes(ws *restful.WebService, r discovery.Resource, parentKind string) (bool, error) {
	gv := schema.GroupVersion{Group: r.Group, Version: r.Version}
	fqKind := gv.WithKind(r.Kind)
	if r.KindVersion != "" {
		fqKind = schema.GroupVersionKind{Group: r.KindGroup, Version: r.KindVersion, Kind: r.Kind}
	}
	versionedPtr, err := b.scheme.New(fqKind)
	if err != nil {
		return false, nil
	}
	object := deref(versionedPtr)
	resource, subresource := r.Parent(), r.Subresource()
	isSubresource := subresource != ""
	key := r.Group + "/" + r.Resource

	connect := connectMethods(r)
	getOpts, isGetterWithOptions := getterWithOptions[key]

	var list any
	if !isSubresource && hasVerb(r, "list") {
		l, err := b.scheme.New(gv.WithKind(r.Kind + "List"))
		if err != nil {
			return false, fmt.Errorf("no list kind for %s: %w", fqKind, err)
		}
		list = deref(l)
	}

	nameParam := ws.PathParameter("name", "name of the "+fqKind.Kind).DataType("string")
	pathParam := ws.PathParameter("path", "path to the resource").DataType("string")

	var params []*restful.Parameter
	resourcePath := resource
	if r.Namespaced {
		params = []*restful.Parameter{ws.PathParameter("namespace", "object name and auth scope, such as for teams and projects").DataType("string")}
		resourcePath = "namespaces/{namespace}/" + resource
	}
	resourceParams := params
	itemPath := resourcePath + "/{name}"
	nameParams := append(append([]*restful.Parameter{}, params...), nameParam)
	proxyParams := append(append([]*restful.Parameter{}, nameParams...), pathParam)
	if isSubresource {
		itemPath += "/" + subresource
		resourcePath = itemPath
		resourceParams = nameParams
	}

	isLister, isWatcher := hasVerb(r, "list"), hasVerb(r, "watch")
	var actions []action
	add := func(ok bool, a action) {
		if ok {
			actions = append(actions, a)
		}
	}
	if connect != nil {
		add(true, action{verb: "connect", path: itemPath, params: nameParams})
		add(subresource == "proxy", action{verb: "connect", path: itemPath + "/{path:*}", params: proxyParams})
	} else {
		add(isLister, action{verb: "list", path: resourcePath, params: resourceParams})
		add(hasVerb(r, "create"), action{verb: "post", path: resourcePath, params: resourceParams})
		add(hasVerb(r, "deletecollection"), action{verb: "deletecollection", path: resourcePath, params: resourceParams})
		add(isLister && isWatcher, action{verb: "watchlist", path: "watch/" + resourcePath, params: resourceParams})
		add(hasVerb(r, "get"), action{verb: "get", path: itemPath, params: nameParams})
		add(hasVerb(r, "update"), action{verb: "put", path: itemPath, params: nameParams})
		add(hasVerb(r, "patch"), action{verb: "patch", path: itemPath, params: nameParams})
		add(hasVerb(r, "delete"), action{verb: "delete", path: itemPath, params: nameParams})
		add(isWatcher, action{verb: "watch", path: "watch/" + itemPath, params: nameParams})
		if r.Namespaced && !isSubresource {
			add(isLister, action{verb: "list", path: resource, allNamespaces: true})
			add(isLister && isWatcher, action{verb: "watchlist", path: "watch/" + resource, allNamespaces: true})
		}
	}

	kind := fqKind.Kind
	if isSubresource {
		kind = parentKind
	}
	sub := title(subresource)
	status := metav1.Status{}
	deleteReturn := any(status)
	if deleteReturnsObject[key] {
		deleteReturn = object
	}
	var produced any = object
	if isGetterWithOptions {
		produced = ""
	}

	for _, a := range actions {
		namespaced, suffix := "", ""
		if r.Namespaced {
			namespaced = "Namespaced"
		}
		if strings.HasSuffix(a.path, "/{path:*}") {
			suffix = "WithPath"
		}
		if a.allNamespaces {
			suffix += "ForAllNamespaces"
			namespaced = ""
		}
		op := func(prefix string) string { return prefix + namespaced + kind + sub + suffix }

		var routes []*restful.RouteBuilder
		pretty := func() *restful.Parameter { return ws.QueryParameter("pretty", prettyDoc) }
		switch a.verb {
		case "get":
			doc := "read the specified " + kind
			if isSubresource {
				doc = "read " + subresource + " of the specified " + kind
			}
			produces := mediaTypes
			if isGetterWithOptions {
				produces = append(append([]string{}, getOpts.produces...), mediaTypes...)
			}
			rb := ws.GET(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("read")).Produces(produces...).
				Returns(http.StatusOK, "OK", produced).Writes(produced)
			if isGetterWithOptions {
				opts, err := b.scheme.New(gv.WithKind(getOpts.optionsKind))
				if err != nil {
					return false, err
				}
				if err := endpoints.AddObjectParams(ws, rb, opts); err != nil {
					return false, err
				}
			}
			routes = append(routes, rb)
		case "list":
			doc := "list objects of kind " + kind
			if isWatcher {
				doc = "list or watch objects of kind " + kind
			}
			rb := ws.GET(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("list")).Produces(allMediaTypes...).
				Returns(http.StatusOK, "OK", list).Writes(list)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.ListOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "put":
			doc := "replace the specified " + kind
			if isSubresource {
				doc = "replace " + subresource + " of the specified " + kind
			}
			rb := ws.PUT(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("replace")).Produces(mediaTypes...).
				Returns(http.StatusOK, "OK", object).Returns(http.StatusCreated, "Created", object).
				Reads(object).Writes(object)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.UpdateOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "patch":
			doc := "partially update the specified " + kind
			if isSubresource {
				doc = "partially update " + subresource + " of the specified " + kind
			}
			rb := ws.PATCH(a.path).To(noop).Doc(doc).Param(pretty()).
				Consumes(patchTypes...).
				Operation(op("patch")).Produces(mediaTypes...).
				Returns(http.StatusOK, "OK", object).Returns(http.StatusCreated, "Created", object).
				Reads(metav1.Patch{}).Writes(object)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.PatchOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "post":
			article := endpoints.GetArticleForNoun(kind, " ")
			doc := "create" + article + kind
			if isSubresource {
				doc = "create " + subresource + " of" + article + kind
			}
			rb := ws.POST(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("create")).Produces(mediaTypes...).
				Returns(http.StatusOK, "OK", object).Returns(http.StatusCreated, "Created", object).
				Returns(http.StatusAccepted, "Accepted", object).
				Reads(object).Writes(object)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.CreateOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "delete":
			article := endpoints.GetArticleForNoun(kind, " ")
			doc := "delete" + article + kind
			if isSubresource {
				doc = "delete " + subresource + " of" + article + kind
			}
			rb := ws.DELETE(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("delete")).Produces(mediaTypes...).
				Writes(deleteReturn).
				Returns(http.StatusOK, "OK", deleteReturn).Returns(http.StatusAccepted, "Accepted", deleteReturn).
				Reads(metav1.DeleteOptions{})
			rb.ParameterNamed("body").Required(false)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.DeleteOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "deletecollection":
			doc := "delete collection of " + kind
			if isSubresource {
				doc = "delete collection of " + subresource + " of a " + kind
			}
			rb := ws.DELETE(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("deletecollection")).Produces(mediaTypes...).
				Writes(status).Returns(http.StatusOK, "OK", status).
				Reads(metav1.DeleteOptions{})
			rb.ParameterNamed("body").Required(false)
			if err := endpoints.AddObjectParams(ws, rb, &metav1.DeleteOptions{}); err != nil {
				return false, err
			}
			if err := endpoints.AddObjectParams(ws, rb, &metav1.ListOptions{}, "watch", "allowWatchBookmarks"); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "watch":
			doc := "watch changes to an object of kind " + kind
			if isSubresource {
				doc = "watch changes to " + subresource + " of an object of kind " + kind
			}
			doc += ". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
			rb := ws.GET(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation(op("watch")).Produces(allMediaTypes...).
				Returns(http.StatusOK, "OK", metav1.WatchEvent{}).Writes(metav1.WatchEvent{})
			if err := endpoints.AddObjectParams(ws, rb, &metav1.ListOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "watchlist":
			doc := "watch individual changes to a list of " + kind
			if isSubresource {
				doc = "watch individual changes to a list of " + subresource + " of " + kind
			}
			doc += ". deprecated: use the 'watch' parameter with a list operation instead."
			rb := ws.GET(a.path).To(noop).Doc(doc).Param(pretty()).
				Operation("watch"+namespaced+kind+sub+"List"+suffix).Produces(allMediaTypes...).
				Returns(http.StatusOK, "OK", metav1.WatchEvent{}).Writes(metav1.WatchEvent{})
			if err := endpoints.AddObjectParams(ws, rb, &metav1.ListOptions{}); err != nil {
				return false, err
			}
			routes = append(routes, rb)
		case "connect":
			for _, method := range connect {
				doc := "connect " + method + " requests to " + kind
				if isSubresource {
					doc = "connect " + method + " requests to " + subresource + " of " + kind
				}
				rb := ws.Method(method).Path(a.path).To(noop).Doc(doc).
					Operation("connect" + title(strings.ToLower(method)) + namespaced + kind + sub + suffix).
					Produces("*/*").Consumes("*/*").Writes("string")
				if err := endpoints.AddObjectParams(ws, rb, versionedPtr); err != nil {
					return false, err
				}
				routes = append(routes, rb)
			}
		}
		for _, rb := range routes {
			for _, p := range a.params {
				rb.Param(p)
			}
			rb.Metadata(endpoints.RouteMetaGVK, metav1.GroupVersionKind{Group: fqKind.Group, Version: fqKind.Version, Kind: fqKind.Kind})
			rb.Metadata(endpoints.RouteMetaAction, a.verb)
			ws.Route(rb)
		}
	}
	return true, nil
}

// title upper-cases the first letter and lower-cases the rest, as
// cases.Title does for the installer's single-word subresource names.
func title(s string) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}

// deref returns the value a pointer points to: the installer registers
// values, not pointers, as route samples.
func deref(obj runtime.Object) any { return reflect.ValueOf(obj).Elem().Interface() }
