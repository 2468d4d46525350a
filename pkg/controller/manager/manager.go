// Package manager runs kube-controller-manager's controllers in-process, on
// one shared informer factory, constructed as kube-controller-manager v1.37.2
// constructs them (see ../README.md for the list).
package manager

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/controller-manager/pkg/informerfactory"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Config is what Run needs. Zero values take kube-controller-manager's defaults.
type Config struct {
	// KubeConfig is the loopback admin config; each controller gets its own
	// client from it, with kube-controller-manager's User-Agent.
	KubeConfig *rest.Config
	// Clients, if set, is used instead of KubeConfig (tests use fakes).
	Clients ClientBuilder
	// Informers, if set, is the shared informer factory to use, so that the
	// scheduler and the controllers cache pods and nodes once (build it with
	// NewInformerFactory). Run starts it.
	Informers informers.SharedInformerFactory
	// Clock drives the manager's own periodic work (RESTMapper refresh).
	// Upstream controllers keep their own real clocks.
	Clock clock.WithTicker
	// RootCA is the cluster CA (PEM) published as kube-root-ca.crt in every namespace.
	RootCA []byte
	// Controllers to run, by kube-controller-manager name; nil means DefaultControllers.
	Controllers []string
	// NodeLifecycle tunes node health monitoring (upstream defaults when zero).
	NodeLifecycle NodeLifecycleOptions
	// TerminatedPodGCThreshold: terminated pods kept before pod GC deletes the oldest (12500).
	TerminatedPodGCThreshold int
	// MinResyncPeriod: informers resync at a random period in [p, 2p) (12h).
	MinResyncPeriod time.Duration
	// ClusterCIDR (e.g. 10.42.0.0/16) and NodeCIDRMaskSize (24): the node
	// IPAM controller gives every Node a spec.podCIDR from it
	// (--allocate-node-cidrs). Empty: no node IPAM.
	ClusterCIDR      string
	NodeCIDRMaskSize int
	// ServiceCIDR is kept out of the pod CIDRs it hands out.
	ServiceCIDR string
	// Ready, if set, is closed once every controller has been started.
	Ready chan<- struct{}
}

// NodeLifecycleOptions are KubeControllerManagerConfiguration's
// NodeLifecycleController fields plus the eviction flags.
type NodeLifecycleOptions struct {
	NodeMonitorPeriod         time.Duration // 5s
	NodeStartupGracePeriod    time.Duration // 60s
	NodeMonitorGracePeriod    time.Duration // 50s
	NodeEvictionRate          float32       // 0.1
	SecondaryNodeEvictionRate float32       // 0.01
	LargeClusterSizeThreshold int32         // 50
	UnhealthyZoneThreshold    float32       // 0.55
}

func (o NodeLifecycleOptions) withDefaults() NodeLifecycleOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.NodeMonitorPeriod, 5*time.Second)
	def(&o.NodeStartupGracePeriod, 60*time.Second)
	def(&o.NodeMonitorGracePeriod, 50*time.Second)
	if o.NodeEvictionRate == 0 {
		o.NodeEvictionRate = 0.1
	}
	if o.SecondaryNodeEvictionRate == 0 {
		o.SecondaryNodeEvictionRate = 0.01
	}
	if o.LargeClusterSizeThreshold == 0 {
		o.LargeClusterSizeThreshold = 50
	}
	if o.UnhealthyZoneThreshold == 0 {
		o.UnhealthyZoneThreshold = 0.55
	}
	return o
}

func (c Config) withDefaults() (Config, error) {
	if c.Clients == nil {
		if c.KubeConfig == nil {
			return c, fmt.Errorf("controller manager: KubeConfig or Clients is required")
		}
		c.Clients = RESTClientBuilder{Config: c.KubeConfig}
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Controllers == nil {
		c.Controllers = DefaultControllers
	}
	for _, name := range c.Controllers {
		if _, ok := constructors[name]; !ok {
			return c, fmt.Errorf("controller manager: unknown controller %q", name)
		}
	}
	if c.TerminatedPodGCThreshold == 0 {
		c.TerminatedPodGCThreshold = 12500
	}
	if c.MinResyncPeriod == 0 {
		c.MinResyncPeriod = 12 * time.Hour
	}
	c.NodeLifecycle = c.NodeLifecycle.withDefaults()
	return c, nil
}

// resyncPeriod spreads resyncs in [min, 2*min) as kube-controller-manager does,
// so that controllers do not resync in lock-step.
func resyncPeriod(min time.Duration) time.Duration {
	return time.Duration(float64(min) * (rand.Float64() + 1))
}

// trimManagedFields is kube-controller-manager's informer transform: no
// controller reads managedFields, and they are a large part of each object.
func trimManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// NewInformerFactory returns a shared informer factory set up as
// kube-controller-manager's (managedFields trimmed, resync in [12h, 24h)).
// Pass it as Config.Informers and to the scheduler to share its caches.
func NewInformerFactory(client kubernetes.Interface) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resyncPeriod(12*time.Hour), informers.WithTransform(trimManagedFields))
}

// controllerContext is what constructors build from (upstream's ControllerContext, small).
type controllerContext struct {
	cfg              Config
	clients          ClientBuilder
	informers        informers.SharedInformerFactory
	metadataClient   metadata.Interface
	metadataInf      metadatainformer.SharedInformerFactory
	objectOrMetadata informerfactory.InformerFactory
	restMapper       *restmapper.DeferredDiscoveryRESTMapper
	informersStarted chan struct{}
}

func newControllerContext(cfg Config) (*controllerContext, error) {
	c := &controllerContext{cfg: cfg, clients: cfg.Clients, informersStarted: make(chan struct{})}
	c.informers = cfg.Informers
	if c.informers == nil {
		client, err := cfg.Clients.Client("shared-informers")
		if err != nil {
			return nil, err
		}
		c.informers = informers.NewSharedInformerFactoryWithOptions(client, resyncPeriod(cfg.MinResyncPeriod), informers.WithTransform(trimManagedFields))
	}
	var err error
	if c.metadataClient, err = cfg.Clients.Metadata("metadata-informers"); err != nil {
		return nil, err
	}
	c.metadataInf = metadatainformer.NewSharedInformerFactoryWithOptions(c.metadataClient, resyncPeriod(cfg.MinResyncPeriod), metadatainformer.WithTransform(trimManagedFields))
	c.objectOrMetadata = informerfactory.NewInformerFactory(c.informers, c.metadataInf)
	disco, err := cfg.Clients.Discovery("controller-discovery")
	if err != nil {
		return nil, err
	}
	c.restMapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	return c, nil
}

// restMapperResetPeriod: kube-controller-manager forgets discovery every 30 s
// so that new resources (CRDs) become mappable.
const restMapperResetPeriod = 30 * time.Second

// Run builds the configured controllers, starts the informers and runs every
// controller until ctx is done. It returns once all controllers have stopped.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	cc, err := newControllerContext(cfg)
	if err != nil {
		return err
	}
	if err := waitForDiscovery(ctx, cfg); err != nil {
		return err
	}

	type started struct {
		name string
		run  runFunc
	}
	var ctrls []started
	for _, name := range cfg.Controllers {
		if slices.ContainsFunc(ctrls, func(s started) bool { return s.name == name }) {
			continue
		}
		run, err := constructors[name](klog.NewContext(ctx, klog.LoggerWithName(logger, name)), cc)
		if err != nil {
			return fmt.Errorf("controller manager: starting %s: %w", name, err)
		}
		if run == nil { // disabled by its configuration (e.g. no cluster CIDR)
			continue
		}
		ctrls = append(ctrls, started{name, run})
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := cfg.Clock.NewTicker(restMapperResetPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				cc.restMapper.Reset()
			}
		}
	}()

	cc.informers.Start(ctx.Done())
	cc.metadataInf.Start(ctx.Done())
	close(cc.informersStarted)

	for _, s := range ctrls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logger.V(1).Info("Starting controller", "controller", s.name)
			s.run(klog.NewContext(ctx, klog.LoggerWithName(logger, s.name)))
		}()
	}
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	<-ctx.Done()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		return fmt.Errorf("controller manager: controllers did not stop within %v", shutdownTimeout)
	}
	if cfg.Informers == nil {
		cc.informers.Shutdown()
	}
	cc.metadataInf.Shutdown()
	return nil
}

// shutdownTimeout is kube-controller-manager's ControllerShutdownTimeout.
const shutdownTimeout = 10 * time.Second

// discoveryTimeout bounds the wait for the API server's discovery, like
// kube-controller-manager's wait for /healthz.
const discoveryTimeout = 30 * time.Second

// waitForDiscovery waits until the API server lists namespaced resources:
// the namespace controller's constructor exits the process otherwise, and
// the garbage collector and RESTMapper read it too.
func waitForDiscovery(ctx context.Context, cfg Config) error {
	disco, err := cfg.Clients.Discovery("controller-discovery")
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, discoveryTimeout, true, func(context.Context) (bool, error) {
		rl, err := disco.ServerPreferredNamespacedResources()
		last = err
		return len(rl) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("controller manager: API discovery not available: %v (last error: %v)", err, last)
	}
	return nil
}
