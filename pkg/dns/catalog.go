package dns

import (
	"net"
	"sort"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/cachetrim"
)

// catalog is what the zone reads: the cluster's Services, their endpoints
// and Namespaces. Returned objects are shared with the cache and must not
// be mutated.
type catalog interface {
	namespaceExists(name string) bool
	service(namespace, name string) *corev1.Service
	// endpoints lists every address of the service's EndpointSlices, ready
	// or not, in a stable order.
	endpoints(namespace, service string) []endpoint
	// servicesByClusterIP lists services with ip among their cluster IPs,
	// ordered by namespace and name.
	servicesByClusterIP(ip net.IP) []*corev1.Service
	// endpointsByIP lists endpoints with address ip, ordered by service.
	endpointsByIP(ip net.IP) []endpoint
	// serial is the SOA serial: the time of the last change seen.
	serial() uint32
}

// endpoint is one address of an EndpointSlice.
type endpoint struct {
	namespace, service string // the owning service (label kubernetes.io/service-name)
	ip                 net.IP
	hostname           string
	ready              bool
	ports              []discoveryv1.EndpointPort
}

// label is the endpoint's first label under its service's name.
func (e endpoint) label() string { return endpointLabel(e.hostname, e.ip.String()) }

const (
	indexServiceByClusterIP = "clusterIP"
	indexSliceByService     = "service"
	indexSliceByIP          = "ip"
)

// informerCatalog is the catalog kept by shared informers.
type informerCatalog struct {
	factory    informers.SharedInformerFactory
	services   cache.SharedIndexInformer
	slices     cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer
	clock      clock.PassiveClock
	modified   atomic.Int64 // unix seconds
}

var _ catalog = (*informerCatalog)(nil)

func newInformerCatalog(client kubernetes.Interface, clk clock.PassiveClock) (*informerCatalog, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTransform(cachetrim.StripManagedFields))
	c := &informerCatalog{
		factory:    f,
		services:   f.Core().V1().Services().Informer(),
		slices:     f.Discovery().V1().EndpointSlices().Informer(),
		namespaces: f.Core().V1().Namespaces().Informer(),
		clock:      clk,
	}
	c.modified.Store(clk.Now().Unix())
	if err := c.services.AddIndexers(cache.Indexers{indexServiceByClusterIP: serviceClusterIPs}); err != nil {
		return nil, err
	}
	if err := c.slices.AddIndexers(cache.Indexers{
		indexSliceByService: sliceService,
		indexSliceByIP:      sliceIPs,
	}); err != nil {
		return nil, err
	}
	touch := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.touch() },
		UpdateFunc: func(any, any) { c.touch() },
		DeleteFunc: func(any) { c.touch() },
	}
	for _, inf := range []cache.SharedIndexInformer{c.services, c.slices, c.namespaces} {
		if _, err := inf.AddEventHandler(touch); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *informerCatalog) touch() { c.modified.Store(c.clock.Now().Unix()) }

func (c *informerCatalog) hasSynced() bool {
	return c.services.HasSynced() && c.slices.HasSynced() && c.namespaces.HasSynced()
}

func (c *informerCatalog) serial() uint32 { return uint32(c.modified.Load()) }

func (c *informerCatalog) namespaceExists(name string) bool {
	_, ok, _ := c.namespaces.GetStore().GetByKey(name)
	return ok
}

func (c *informerCatalog) service(namespace, name string) *corev1.Service {
	obj, ok, _ := c.services.GetStore().GetByKey(namespace + "/" + name)
	if !ok {
		return nil
	}
	return obj.(*corev1.Service)
}

func (c *informerCatalog) endpoints(namespace, service string) []endpoint {
	objs, _ := c.slices.GetIndexer().ByIndex(indexSliceByService, namespace+"/"+service)
	sortByKey(objs)
	var eps []endpoint
	for _, obj := range objs {
		eps = appendSliceEndpoints(eps, obj.(*discoveryv1.EndpointSlice), nil)
	}
	return eps
}

func (c *informerCatalog) servicesByClusterIP(ip net.IP) []*corev1.Service {
	objs, _ := c.services.GetIndexer().ByIndex(indexServiceByClusterIP, ip.String())
	sortByKey(objs)
	svcs := make([]*corev1.Service, 0, len(objs))
	for _, obj := range objs {
		svcs = append(svcs, obj.(*corev1.Service))
	}
	return svcs
}

func (c *informerCatalog) endpointsByIP(ip net.IP) []endpoint {
	objs, _ := c.slices.GetIndexer().ByIndex(indexSliceByIP, ip.String())
	sortByKey(objs)
	var eps []endpoint
	for _, obj := range objs {
		eps = appendSliceEndpoints(eps, obj.(*discoveryv1.EndpointSlice), ip)
	}
	return eps
}

// appendSliceEndpoints appends the addresses of slice (only the address
// only, when set) to eps.
func appendSliceEndpoints(eps []endpoint, slice *discoveryv1.EndpointSlice, only net.IP) []endpoint {
	if slice.AddressType == discoveryv1.AddressTypeFQDN {
		return eps
	}
	svc := slice.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return eps
	}
	for _, e := range slice.Endpoints {
		ready := e.Conditions.Ready == nil || *e.Conditions.Ready
		hostname := ""
		if e.Hostname != nil {
			hostname = *e.Hostname
		}
		for _, a := range e.Addresses {
			ip := net.ParseIP(a)
			if ip == nil || only != nil && !ip.Equal(only) {
				continue
			}
			eps = append(eps, endpoint{
				namespace: slice.Namespace,
				service:   svc,
				ip:        ip,
				hostname:  hostname,
				ready:     ready,
				ports:     slice.Ports,
			})
		}
	}
	return eps
}

func sortByKey(objs []any) {
	sort.Slice(objs, func(i, j int) bool {
		ki, _ := cache.MetaNamespaceKeyFunc(objs[i])
		kj, _ := cache.MetaNamespaceKeyFunc(objs[j])
		return ki < kj
	})
}

// serviceClusterIPs indexes a service under each of its cluster IPs.
func serviceClusterIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	var ips []string
	for _, s := range clusterIPs(svc) {
		ips = append(ips, s.String())
	}
	return ips, nil
}

// clusterIPs returns the service's parsed cluster IPs (none for headless
// and ExternalName services).
func clusterIPs(svc *corev1.Service) []net.IP {
	list := svc.Spec.ClusterIPs
	if len(list) == 0 && svc.Spec.ClusterIP != "" {
		list = []string{svc.Spec.ClusterIP}
	}
	var ips []net.IP
	for _, s := range list {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// sliceService indexes a slice under namespace/service of its owner.
func sliceService(obj any) ([]string, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	svc := slice.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil, nil
	}
	return []string{slice.Namespace + "/" + svc}, nil
}

// sliceIPs indexes a slice under each of its addresses (normalised).
func sliceIPs(obj any) ([]string, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || slice.AddressType == discoveryv1.AddressTypeFQDN {
		return nil, nil
	}
	var ips []string
	seen := map[string]bool{}
	for _, e := range slice.Endpoints {
		for _, a := range e.Addresses {
			ip := net.ParseIP(a)
			if ip == nil || seen[ip.String()] {
				continue
			}
			seen[ip.String()] = true
			ips = append(ips, ip.String())
		}
	}
	return ips, nil
}
