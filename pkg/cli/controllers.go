package cli

import (
	"context"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/controller/manager"
	"k1s.dev/k1s/pkg/proxy/servicelb"
	"k1s.dev/k1s/pkg/scheduler"
	"k1s.dev/k1s/pkg/server"
)

func controllerComponents() []server.Component {
	return []server.Component{{Name: "controllers and scheduler", Run: runControllers}}
}

// runControllers runs kube-controller-manager's controllers and our
// scheduler on one informer factory, so pods and nodes are cached once.
func runControllers(ctx context.Context, env *server.Env) error {
	cfg := rest.CopyConfig(env.AdminREST)
	cfg.UserAgent = "kube-scheduler"
	// bindings and events of a 1,000-pod burst: no client-side throttle
	cfg.QPS, cfg.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// The API server's informer factory: what it already watches for
	// admission and authorization (namespaces, service accounts, RBAC,
	// admission policies, ~35 resources) is watched and cached once.
	factory := env.Informers
	if factory == nil {
		factory = manager.NewInformerFactory(client)
	}
	sched, err := scheduler.New(client, factory, clock.RealClock{}, scheduler.Options{})
	if err != nil {
		return err
	}
	go sched.Run(ctx)
	// LoadBalancer Services get the nodes' addresses as their ingress
	// (k3s's ServiceLB); the service proxy serves the ports there.
	if !env.Options.DisableServiceLB {
		lb, err := servicelb.New(servicelb.Options{Client: client, Informers: factory})
		if err != nil {
			return err
		}
		go func() {
			if err := lb.Run(ctx); err != nil {
				klog.ErrorS(err, "servicelb stopped")
			}
		}()
	}
	return manager.Run(ctx, manager.Config{
		KubeConfig: env.AdminREST,
		Informers:  factory,
		Clock:      clock.RealClock{},
		RootCA:     env.CAPEM,
		// --allocate-node-cidrs: every Node gets a spec.podCIDR.
		ClusterCIDR: env.Options.ClusterCIDR,
		ServiceCIDR: env.Options.ServiceCIDR,
		NodeLifecycle: manager.NodeLifecycleOptions{
			NodeMonitorGracePeriod: env.Options.NodeMonitorGracePeriod,
		},
	})
}
