package metrics

import (
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/client-go/tools/cache"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"k8s.io/utils/clock"
)

// PodLister is what the API reads pods from: the metadata of the running
// pods (metrics-server watches only those).
type PodLister interface {
	// List lists the pods of a namespace ("" for all).
	List(namespace string, selector labels.Selector) ([]*metav1.PartialObjectMetadata, error)
	Get(namespace, name string) (*metav1.PartialObjectMetadata, error)
}

// MetadataPods adapts a metadata informer's lister to PodLister.
type MetadataPods struct{ Lister cache.GenericLister }

var _ PodLister = MetadataPods{}

// List implements PodLister.
func (m MetadataPods) List(namespace string, selector labels.Selector) ([]*metav1.PartialObjectMetadata, error) {
	var objs []runtime.Object
	var err error
	if namespace == "" {
		objs, err = m.Lister.List(selector)
	} else {
		objs, err = m.Lister.ByNamespace(namespace).List(selector)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*metav1.PartialObjectMetadata, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*metav1.PartialObjectMetadata); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// Get implements PodLister.
func (m MetadataPods) Get(namespace, name string) (*metav1.PartialObjectMetadata, error) {
	o, err := m.Lister.ByNamespace(namespace).Get(name)
	if err != nil {
		return nil, err
	}
	p, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		return nil, fmt.Errorf("unexpected %T in pod cache", o)
	}
	return p, nil
}

// API serves metrics.k8s.io/v1beta1 from a Store.
type API struct {
	Nodes NodeLister
	Pods  PodLister
	Store *Store
	Clock clock.PassiveClock

	serializer runtime.NegotiatedSerializer
	mux        *http.ServeMux
}

// NewAPI returns the handler of metrics.k8s.io (unauthenticated: wrap it
// in FrontProxyAuth).
func NewAPI(nodes NodeLister, pods PodLister, store *Store, clk clock.PassiveClock) *API {
	a := &API{Nodes: nodes, Pods: pods, Store: store, Clock: clk, serializer: newSerializer()}
	mux := http.NewServeMux()
	const gv = "/apis/metrics.k8s.io/v1beta1"
	mux.HandleFunc("/apis", a.get(a.groupList))
	mux.HandleFunc("/apis/metrics.k8s.io", a.get(a.group))
	mux.HandleFunc("/apis/metrics.k8s.io/{$}", a.get(a.group))
	mux.HandleFunc(gv, a.get(a.resourceList))
	mux.HandleFunc(gv+"/{$}", a.get(a.resourceList))
	mux.HandleFunc(gv+"/nodes", a.get(a.listNodes))
	mux.HandleFunc(gv+"/nodes/{name}", a.get(a.getNode))
	mux.HandleFunc(gv+"/pods", a.get(a.listPods))
	mux.HandleFunc(gv+"/namespaces/{namespace}/pods", a.get(a.listPods))
	mux.HandleFunc(gv+"/namespaces/{namespace}/pods/{name}", a.get(a.getPod))
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok"))
		})
	}
	installOpenAPI(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, notFound())
	})
	a.mux = mux
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.writeError(w, r, apierrors.NewMethodNotSupported(resourceOf(r), strings.ToLower(r.Method)))
			return
		}
		h(w, r)
	}
}

// resourceOf names the resource of a request path in errors.
func resourceOf(r *http.Request) schema.GroupResource {
	gr := schema.GroupResource{Group: metricsv1beta1.GroupName}
	switch {
	case strings.Contains(r.URL.Path, "/pods"):
		gr.Resource = "pods"
	case strings.Contains(r.URL.Path, "/nodes"):
		gr.Resource = "nodes"
	}
	return gr
}

func notFound() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotFound,
		Reason:  metav1.StatusReasonNotFound,
		Details: &metav1.StatusDetails{},
		Message: "the server could not find the requested resource",
	}}
}

// listOptions are a list request's selectors.
type listOptions struct {
	labels labels.Selector
	fields fields.Selector
}

func parseListOptions(r *http.Request, gr schema.GroupResource) (listOptions, error) {
	q := r.URL.Query()
	o := listOptions{labels: labels.Everything(), fields: fields.Everything()}
	if watchRequested(r) {
		return o, apierrors.NewMethodNotSupported(gr, "watch")
	}
	if s := q.Get("labelSelector"); s != "" {
		sel, err := labels.Parse(s)
		if err != nil {
			return o, apierrors.NewBadRequest(err.Error())
		}
		o.labels = sel
	}
	if s := q.Get("fieldSelector"); s != "" {
		sel, err := fields.ParseSelector(s)
		if err != nil {
			return o, apierrors.NewBadRequest(err.Error())
		}
		if sel, err = sel.Transform(runtime.DefaultMetaV1FieldSelectorConversion); err != nil {
			return o, apierrors.NewBadRequest(err.Error())
		}
		o.fields = sel
	}
	return o, nil
}

// watchRequested: metrics cannot be watched (405, as metrics-server).
func watchRequested(r *http.Request) bool {
	w := r.URL.Query().Get("watch")
	return w == "true" || w == "1"
}

// matchesFields: the only fields of metrics are metadata.name and, for
// pods, metadata.namespace.
func matchesFields(sel fields.Selector, meta metav1.ObjectMeta, namespaced bool) bool {
	if sel.Empty() {
		return true
	}
	set := fields.Set{"metadata.name": meta.Name}
	if namespaced {
		set["metadata.namespace"] = meta.Namespace
	}
	return sel.Matches(set)
}

func (a *API) listNodes(w http.ResponseWriter, r *http.Request) {
	o, err := parseListOptions(r, metricsv1beta1.Resource("nodes"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	all, err := a.Nodes.List(o.labels)
	if err != nil {
		a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("failed listing nodes: %w", err)))
		return
	}
	nodes := make([]*corev1.Node, 0, len(all))
	for _, n := range all {
		if matchesFields(o.fields, n.ObjectMeta, false) {
			nodes = append(nodes, n)
		}
	}
	list := &metricsv1beta1.NodeMetricsList{Items: a.Store.NodeMetrics(a.Clock.Now(), nodes...)}
	a.writeObject(w, r, list)
}

func (a *API) getNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if watchRequested(r) {
		a.writeError(w, r, apierrors.NewMethodNotSupported(metricsv1beta1.Resource("nodes"), "watch"))
		return
	}
	node, err := a.Nodes.Get(name)
	if apierrors.IsNotFound(err) {
		a.writeError(w, r, apierrors.NewNotFound(corev1.Resource("node"), name))
		return
	}
	if err != nil {
		a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("failed getting node: %w", err)))
		return
	}
	ms := a.Store.NodeMetrics(a.Clock.Now(), node)
	if len(ms) == 0 {
		a.writeError(w, r, apierrors.NewNotFound(metricsv1beta1.Resource("nodemetrics"), name))
		return
	}
	a.writeObject(w, r, &ms[0])
}

func (a *API) listPods(w http.ResponseWriter, r *http.Request) {
	o, err := parseListOptions(r, metricsv1beta1.Resource("pods"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	all, err := a.Pods.List(r.PathValue("namespace"), o.labels)
	if err != nil {
		a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("failed listing pods: %w", err)))
		return
	}
	pods := make([]*metav1.PartialObjectMetadata, 0, len(all))
	for _, p := range all {
		if matchesFields(o.fields, p.ObjectMeta, true) {
			pods = append(pods, p)
		}
	}
	list := &metricsv1beta1.PodMetricsList{Items: a.Store.PodMetrics(a.Clock.Now(), pods...)}
	a.writeObject(w, r, list)
}

func (a *API) getPod(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if watchRequested(r) {
		a.writeError(w, r, apierrors.NewMethodNotSupported(metricsv1beta1.Resource("pods"), "watch"))
		return
	}
	pod, err := a.Pods.Get(ns, name)
	if apierrors.IsNotFound(err) {
		a.writeError(w, r, apierrors.NewNotFound(corev1.Resource("pods"), name))
		return
	}
	if err != nil {
		a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("failed getting pod: %w", err)))
		return
	}
	ms := a.Store.PodMetrics(a.Clock.Now(), pod)
	if len(ms) == 0 {
		a.writeError(w, r, apierrors.NewNotFound(metricsv1beta1.Resource("podmetrics"), ns+"/"+name))
		return
	}
	a.writeObject(w, r, &ms[0])
}

// writeObject writes a metrics object or list in the negotiated media
// type, as a Table when the client asks for one (kubectl get).
func (a *API) writeObject(w http.ResponseWriter, r *http.Request, obj runtime.Object) {
	opts, _, err := negotiation.NegotiateOutputMediaType(r, a.serializer, restrictions{})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if opts.Convert != nil && opts.Convert.Kind == "Table" {
		table, err := toTable(obj, r.URL.Query().Get("includeObject"))
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		responsewriters.WriteObjectNegotiated(a.serializer, restrictions{}, metav1.SchemeGroupVersion, w, r, http.StatusOK, table, false)
		return
	}
	responsewriters.WriteObjectNegotiated(a.serializer, restrictions{}, metricsv1beta1.SchemeGroupVersion, w, r, http.StatusOK, obj, false)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	responsewriters.ErrorNegotiated(err, a.serializer, metricsv1beta1.SchemeGroupVersion, w, r)
}
