// Package servicelb gives LoadBalancer Services an address, the way k3s's
// ServiceLB does: status.loadBalancer.ingress lists the nodes' addresses
// (ipMode VIP), and the proxy on every node serves the Service's ports
// there. Run one per cluster (in the server).
//
// It only writes the status of type=LoadBalancer Services without
// spec.loadBalancerClass (a class names another implementation), and
// clears the ingress of a Service that is no longer a LoadBalancer (the
// API server does this too). It records no events: a real cluster's
// Service whose load balancer is provisioned this way shows none.
package servicelb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// Options configure a Controller.
type Options struct {
	Client kubernetes.Interface
	// NodeIPs: the addresses to publish. Empty: every Ready Node's
	// ExternalIP, or its InternalIP when it has none (as k3s does), followed
	// as Nodes come and go.
	NodeIPs []net.IP
	// Informers: a factory to share; nil creates one. Run starts it.
	Informers informers.SharedInformerFactory
}

// Controller keeps the ingress of LoadBalancer Services.
type Controller struct {
	client   kubernetes.Interface
	static   []string
	factory  informers.SharedInformerFactory
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister // nil with static addresses
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
}

// New builds a Controller; Run starts it.
func New(o Options) (*Controller, error) {
	if o.Client == nil {
		return nil, errors.New("servicelb: Client is required")
	}
	c := &Controller{client: o.Client, factory: o.Informers}
	for _, ip := range o.NodeIPs {
		if ip.To4() == nil && ip.To16() == nil {
			return nil, fmt.Errorf("servicelb: bad node address %v", ip)
		}
		c.static = append(c.static, ip.String())
	}
	if c.factory == nil {
		c.factory = informers.NewSharedInformerFactory(o.Client, 0)
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "servicelb"})

	svcInformer := c.factory.Core().V1().Services()
	c.services = svcInformer.Lister()
	reg, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
	})
	if err != nil {
		return nil, err
	}
	c.synced = append(c.synced, reg.HasSynced)
	if len(c.static) == 0 {
		nodeInformer := c.factory.Core().V1().Nodes()
		c.nodes = nodeInformer.Lister()
		all := func(any) { c.enqueueLoadBalancers() }
		reg, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    all,
			UpdateFunc: func(old, cur any) { c.nodeChanged(old, cur) },
			DeleteFunc: all,
		})
		if err != nil {
			return nil, err
		}
		c.synced = append(c.synced, reg.HasSynced)
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueLoadBalancers() {
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		if s.Spec.Type == v1.ServiceTypeLoadBalancer {
			c.enqueue(s)
		}
	}
}

// nodeChanged requeues the LoadBalancers only when what they publish may
// change (not on every heartbeat).
func (c *Controller) nodeChanged(old, cur any) {
	o, ok1 := old.(*v1.Node)
	n, ok2 := cur.(*v1.Node)
	if ok1 && ok2 && nodeReady(o) == nodeReady(n) && slices.Equal(nodeAddress(o), nodeAddress(n)) {
		return
	}
	c.enqueueLoadBalancers()
}

// Run keeps Services' ingress until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("servicelb: informer caches did not sync")
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.processNext(ctx) {
	}
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		klog.V(2).InfoS("Updating a LoadBalancer Service's ingress failed, will retry", "service", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	want, manage := c.desired(svc)
	if !manage || equality.Semantic.DeepEqual(svc.Status.LoadBalancer, want) {
		return nil
	}
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer = want
	_, err = c.client.CoreV1().Services(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// desired is the load-balancer status the Service should have, and false
// if the Service is not this controller's to manage.
func (c *Controller) desired(svc *v1.Service) (v1.LoadBalancerStatus, bool) {
	if svc.Spec.LoadBalancerClass != nil {
		return v1.LoadBalancerStatus{}, false
	}
	if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
		return v1.LoadBalancerStatus{}, len(svc.Status.LoadBalancer.Ingress) > 0
	}
	var st v1.LoadBalancerStatus
	for _, ip := range c.addresses() {
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
	}
	return st, true
}

// addresses are the IPs to publish, sorted.
func (c *Controller) addresses() []string {
	if len(c.static) > 0 {
		return c.static
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		if !nodeReady(n) {
			continue
		}
		out = append(out, nodeAddress(n)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// nodeAddress is the Node's ExternalIP addresses, or its InternalIP ones
// when it has none.
func nodeAddress(n *v1.Node) []string {
	var ext, internal []string
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case v1.NodeExternalIP:
			ext = append(ext, a.Address)
		case v1.NodeInternalIP:
			internal = append(internal, a.Address)
		}
	}
	if len(ext) > 0 {
		return ext
	}
	return internal
}
