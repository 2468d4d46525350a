package manager

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
	"k8s.io/kubernetes/pkg/controller/cronjob"
	"k8s.io/kubernetes/pkg/controller/daemon"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/disruption"
	"k8s.io/kubernetes/pkg/controller/endpoint"
	"k8s.io/kubernetes/pkg/controller/endpointslice"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	"k8s.io/kubernetes/pkg/controller/job"
	"k8s.io/kubernetes/pkg/controller/namespace"
	"k8s.io/kubernetes/pkg/controller/nodeipam"
	"k8s.io/kubernetes/pkg/controller/nodeipam/ipam"
	"k8s.io/kubernetes/pkg/controller/nodelifecycle"
	"k8s.io/kubernetes/pkg/controller/podgc"
	"k8s.io/kubernetes/pkg/controller/replicaset"
	"k8s.io/kubernetes/pkg/controller/replication"
	"k8s.io/kubernetes/pkg/controller/serviceaccount"
	"k8s.io/kubernetes/pkg/controller/statefulset"
	"k8s.io/kubernetes/pkg/controller/tainteviction"
	"k8s.io/kubernetes/pkg/controller/ttl"
	"k8s.io/kubernetes/pkg/controller/ttlafterfinished"
)

// Controller names, as kube-controller-manager's --controllers flag spells them.
const (
	ReplicaSet            = names.ReplicaSetController
	ReplicationController = names.ReplicationControllerController
	Deployment            = names.DeploymentController
	StatefulSet           = names.StatefulSetController
	DaemonSet             = names.DaemonSetController
	Job                   = names.JobController
	CronJob               = names.CronJobController
	TTLAfterFinished      = names.TTLAfterFinishedController
	Endpoints             = names.EndpointsController
	EndpointSlice         = names.EndpointSliceController
	GarbageCollector      = names.GarbageCollectorController
	Namespace             = names.NamespaceController
	ServiceAccount        = names.ServiceAccountController
	RootCACertPublisher   = names.RootCACertificatePublisherController
	PodGC                 = names.PodGarbageCollectorController
	NodeLifecycle         = names.NodeLifecycleController
	TaintEviction         = names.TaintEvictionController
	Disruption            = names.DisruptionController
	TTL                   = names.TTLController
	NodeIpam              = names.NodeIpamController
)

// DefaultControllers is the set Run starts when Config.Controllers is nil:
// everything SPEC sections 5, 6 and 8 need, nothing else (no volumes, quota,
// certificates signing, HPA, IPAM).
var DefaultControllers = []string{
	ReplicaSet, ReplicationController, Deployment, StatefulSet, DaemonSet,
	Job, CronJob, TTLAfterFinished,
	Endpoints, EndpointSlice,
	GarbageCollector, Namespace, ServiceAccount, RootCACertPublisher, PodGC,
	NodeLifecycle, TaintEviction, Disruption, TTL, NodeIpam,
}

// runFunc runs one controller until ctx is done.
type runFunc func(ctx context.Context)

// constructor builds one controller the way kube-controller-manager does
// (cmd/kube-controller-manager/app/*.go of v1.37.2): same client name, same
// informers, same defaults from KubeControllerManagerConfiguration.
type constructor func(ctx context.Context, c *controllerContext) (runFunc, error)

var constructors = map[string]constructor{
	ReplicaSet: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("replicaset-controller")
		if err != nil {
			return nil, err
		}
		rsc := replicaset.NewReplicaSetController(ctx, c.informers.Apps().V1().ReplicaSets(), c.informers.Core().V1().Pods(), client, replicaset.BurstReplicas)
		return func(ctx context.Context) { rsc.Run(ctx, 5) }, nil // ConcurrentRSSyncs
	},
	ReplicationController: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("replication-controller")
		if err != nil {
			return nil, err
		}
		rm := replication.NewReplicationManager(ctx, c.informers.Core().V1().Pods(), c.informers.Core().V1().ReplicationControllers(), client, replication.BurstReplicas)
		return func(ctx context.Context) { rm.Run(ctx, 5) }, nil // ConcurrentRCSyncs
	},
	Deployment: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("deployment-controller")
		if err != nil {
			return nil, err
		}
		dc, err := deployment.NewDeploymentController(ctx, c.informers.Apps().V1().Deployments(), c.informers.Apps().V1().ReplicaSets(), c.informers.Core().V1().Pods(), client)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { dc.Run(ctx, 5) }, nil // ConcurrentDeploymentSyncs
	},
	StatefulSet: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("statefulset-controller")
		if err != nil {
			return nil, err
		}
		ssc := statefulset.NewStatefulSetController(ctx, c.informers.Core().V1().Pods(), c.informers.Apps().V1().StatefulSets(),
			c.informers.Core().V1().PersistentVolumeClaims(), c.informers.Apps().V1().ControllerRevisions(), client)
		return func(ctx context.Context) { ssc.Run(ctx, 5) }, nil // ConcurrentStatefulSetSyncs
	},
	DaemonSet: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("daemon-set-controller")
		if err != nil {
			return nil, err
		}
		dsc, err := daemon.NewDaemonSetsController(ctx, c.informers.Apps().V1().DaemonSets(), c.informers.Apps().V1().ControllerRevisions(),
			c.informers.Core().V1().Pods(), c.informers.Core().V1().Nodes(), client, flowcontrol.NewBackOff(1*time.Second, 15*time.Minute))
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { dsc.Run(ctx, 2) }, nil // ConcurrentDaemonSetSyncs
	},
	Job: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("job-controller")
		if err != nil {
			return nil, err
		}
		// Workload and PodGroup informers are only needed with the alpha
		// WorkloadWithJob gate, off by default.
		jc, err := job.NewController(ctx, client, c.informers.Core().V1().Pods(), c.informers.Batch().V1().Jobs(), nil, nil)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { jc.Run(ctx, 5) }, nil // ConcurrentJobSyncs
	},
	CronJob: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("cronjob-controller")
		if err != nil {
			return nil, err
		}
		cj, err := cronjob.NewControllerV2(ctx, c.informers.Batch().V1().Jobs(), c.informers.Batch().V1().CronJobs(), client)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { cj.Run(ctx, 5) }, nil // ConcurrentCronJobSyncs
	},
	TTLAfterFinished: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("ttl-after-finished-controller")
		if err != nil {
			return nil, err
		}
		tc := ttlafterfinished.New(ctx, c.informers.Batch().V1().Jobs(), client)
		return func(ctx context.Context) { tc.Run(ctx, 5) }, nil // ConcurrentTTLSyncs
	},
	Endpoints: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("endpoint-controller")
		if err != nil {
			return nil, err
		}
		ec := endpoint.NewEndpointController(ctx, c.informers.Core().V1().Pods(), c.informers.Core().V1().Services(),
			c.informers.Core().V1().Endpoints(), client, 0) // EndpointUpdatesBatchPeriod
		return func(ctx context.Context) { ec.Run(ctx, 5) }, nil // ConcurrentEndpointSyncs
	},
	EndpointSlice: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("endpointslice-controller")
		if err != nil {
			return nil, err
		}
		esc := endpointslice.NewController(ctx, c.informers.Core().V1().Pods(), c.informers.Core().V1().Services(),
			c.informers.Core().V1().Nodes(), c.informers.Discovery().V1().EndpointSlices(),
			100,       // MaxEndpointsPerSlice
			client, 0) // EndpointUpdatesBatchPeriod
		return func(ctx context.Context) { esc.Run(ctx, 5) }, nil // ConcurrentServiceEndpointSyncs
	},
	GarbageCollector: newGarbageCollector,
	Namespace: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		const name = "namespace-controller"
		client, err := c.clients.Client(name)
		if err != nil {
			return nil, err
		}
		md, err := c.clients.Metadata(name)
		if err != nil {
			return nil, err
		}
		disco, err := c.clients.Discovery(name)
		if err != nil {
			return nil, err
		}
		// The constructor reads discovery at once and exits the process when
		// it lists nothing; Run waits for discovery first.
		nc := namespace.NewNamespaceController(ctx, client, md, disco.ServerPreferredNamespacedResources,
			c.informers.Core().V1().Namespaces(), 5*time.Minute, v1.FinalizerKubernetes) // NamespaceSyncPeriod
		return func(ctx context.Context) { nc.Run(ctx, 10) }, nil // ConcurrentNamespaceSyncs
	},
	ServiceAccount: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("service-account-controller")
		if err != nil {
			return nil, err
		}
		sac, err := serviceaccount.NewServiceAccountsController(klog.FromContext(ctx), c.informers.Core().V1().ServiceAccounts(),
			c.informers.Core().V1().Namespaces(), client, serviceaccount.DefaultServiceAccountsControllerOptions())
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { sac.Run(ctx, 1) }, nil
	},
	RootCACertPublisher: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("root-ca-cert-publisher")
		if err != nil {
			return nil, err
		}
		p, err := rootcacertpublisher.NewPublisher(c.informers.Core().V1().ConfigMaps(), c.informers.Core().V1().Namespaces(), client, c.cfg.RootCA)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { p.Run(ctx, 1) }, nil
	},
	PodGC: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("pod-garbage-collector")
		if err != nil {
			return nil, err
		}
		gc := podgc.NewPodGC(ctx, client, c.informers.Core().V1().Pods(), c.informers.Core().V1().Nodes(), c.cfg.TerminatedPodGCThreshold)
		return gc.Run, nil
	},
	NodeLifecycle: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("node-controller")
		if err != nil {
			return nil, err
		}
		o := c.cfg.NodeLifecycle
		nc, err := nodelifecycle.NewNodeLifecycleController(ctx, c.informers.Coordination().V1().Leases(), c.informers.Core().V1().Pods(),
			c.informers.Core().V1().Nodes(), c.informers.Apps().V1().DaemonSets(), client,
			o.NodeMonitorPeriod, o.NodeStartupGracePeriod, o.NodeMonitorGracePeriod,
			o.NodeEvictionRate, o.SecondaryNodeEvictionRate, o.LargeClusterSizeThreshold, o.UnhealthyZoneThreshold)
		if err != nil {
			return nil, err
		}
		return nc.Run, nil
	},
	TaintEviction: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		// Like upstream: the node-controller client, events from "taint-eviction-controller".
		client, err := c.clients.Client("node-controller")
		if err != nil {
			return nil, err
		}
		tc, err := tainteviction.New(ctx, client, c.informers.Core().V1().Pods(), c.informers.Core().V1().Nodes(), TaintEviction)
		if err != nil {
			return nil, err
		}
		return tc.Run, nil
	},
	Disruption: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		const name = "disruption-controller"
		client, err := c.clients.Client(name)
		if err != nil {
			return nil, err
		}
		scales, err := c.clients.Scales(name, c.restMapper, scale.NewDiscoveryScaleKindResolver(client.Discovery()))
		if err != nil {
			return nil, err
		}
		dc := disruption.NewDisruptionController(ctx, c.informers.Core().V1().Pods(), c.informers.Policy().V1().PodDisruptionBudgets(),
			c.informers.Core().V1().ReplicationControllers(), c.informers.Apps().V1().ReplicaSets(), c.informers.Apps().V1().Deployments(),
			c.informers.Apps().V1().StatefulSets(), client, c.restMapper, scales, client.Discovery())
		return func(ctx context.Context) { dc.Run(ctx, 1) }, nil // ConcurrentDisruptionSyncs
	},
	TTL: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		client, err := c.clients.Client("ttl-controller")
		if err != nil {
			return nil, err
		}
		tc := ttl.NewTTLController(ctx, c.informers.Core().V1().Nodes(), client)
		return func(ctx context.Context) { tc.Run(ctx, 5) }, nil
	},
	NodeIpam: func(ctx context.Context, c *controllerContext) (runFunc, error) {
		if c.cfg.ClusterCIDR == "" { // --allocate-node-cidrs=false
			return nil, nil
		}
		_, cluster, err := net.ParseCIDR(c.cfg.ClusterCIDR)
		if err != nil {
			return nil, fmt.Errorf("cluster CIDR: %w", err)
		}
		var svc *net.IPNet
		if c.cfg.ServiceCIDR != "" {
			if _, svc, err = net.ParseCIDR(c.cfg.ServiceCIDR); err != nil {
				return nil, fmt.Errorf("service CIDR: %w", err)
			}
		}
		mask := c.cfg.NodeCIDRMaskSize
		if mask == 0 {
			mask = 24
		}
		client, err := c.clients.Client("node-controller")
		if err != nil {
			return nil, err
		}
		nc, err := nodeipam.NewNodeIpamController(ctx, c.informers.Core().V1().Nodes(), nil, client,
			[]*net.IPNet{cluster}, svc, nil, []int{mask}, ipam.RangeAllocatorType)
		if err != nil {
			return nil, err
		}
		return nc.Run, nil
	},
}

// gcSyncPeriod is how often the garbage collector re-reads discovery to watch
// new resources (kube-controller-manager: 30 s).
const gcSyncPeriod = 30 * time.Second

func newGarbageCollector(ctx context.Context, c *controllerContext) (runFunc, error) {
	const name = "generic-garbage-collector"
	client, err := c.clients.Client(name)
	if err != nil {
		return nil, err
	}
	disco, err := c.clients.Discovery(name)
	if err != nil {
		return nil, fmt.Errorf("garbage collector discovery client: %w", err)
	}
	md, err := c.clients.Metadata(name)
	if err != nil {
		return nil, err
	}
	gb := garbagecollector.NewDependencyGraphBuilder(ctx, c.metadataClient, c.restMapper,
		garbagecollector.DefaultIgnoredResources(), c.objectOrMetadata, c.informersStarted)
	gc, err := garbagecollector.NewComposedGarbageCollector(ctx, client, md, c.restMapper, gb)
	if err != nil {
		return nil, fmt.Errorf("garbage collector: %w", err)
	}
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); gc.Run(ctx, 20, gcSyncPeriod) }() // ConcurrentGCSyncs
		go func() { defer wg.Done(); gc.Sync(ctx, disco, gcSyncPeriod) }()
		wg.Wait()
	}, nil
}
