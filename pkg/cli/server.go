package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"k1s.dev/k1s/pkg/server"
)

// Server is `k1s server`.
func Server(args []string) int {
	var o server.Options
	var etcd string
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for etcd data, certificates, kubeconfig.yaml and node-token (default $HOME/.k1s)")
	fs.IntVar(&o.HTTPSPort, "https-port", 6443, "port of the Kubernetes API (0 picks a free one)")
	fs.StringVar(&o.BindAddress, "bind-address", "127.0.0.1", "address the API listens on")
	fs.StringVar(&o.NodeName, "node-name", "", "name of this machine's node (default the hostname)")
	fs.StringVar(&etcd, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd)")
	fs.StringVar(&o.ServiceCIDR, "service-cidr", "10.43.0.0/16", "range of Service cluster IPs")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", "10.42.0.0/16", "range of pod IPs (each node gets a /24 of it)")
	fs.StringVar(&o.DefaultRuntime, "default-runtime", "", "runtime of pods that name no RuntimeClass: oci or host (default oci when running as root with runc installed, else host)")
	fs.StringVar(&o.RegistryConfig, "registry-config", "", "registries.yaml with registry mirrors, rewrites, auth and TLS (k3s format)")
	fs.BoolVar(&o.DisableAgent, "disable-agent", false, "run no node agent in the server")
	fs.BoolVar(&o.DisableServiceLB, "disable-servicelb", false, "leave LoadBalancer Services <pending> instead of giving them the nodes' addresses (k3s's --disable servicelb)")
	fs.BoolVar(&o.DisableControllers, "disable-controllers", false, "run neither controllers nor the scheduler")
	fs.DurationVar(&o.NodeMonitorGracePeriod, "node-monitor-grace-period", 0, "how long a node may miss status updates before it is marked NotReady (default 50s, as kube-controller-manager)")
	fs.BoolVar(&o.StopPodsOnExit, "stop-pods-on-exit", true, "stop this node's pods gracefully when the server stops (--stop-pods-on-exit=false leaves them running for the next start to adopt)")
	klogFlags := klogFlagSet()
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if etcd != "" {
		o.EtcdEndpoints = strings.Split(etcd, ",")
	}
	o.Components = ServerComponents(&o)
	exposeSelfOnPath()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o, nil); err != nil && ctx.Err() == nil {
		klog.ErrorS(err, "k1s server failed")
		return 1
	}
	return 0
}

// exposeSelfOnPath puts this binary's directory first on PATH, so host-runtime
// containers can run `k1s app` (the examples' workload) wherever k1s lives.
func exposeSelfOnPath() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	os.Setenv("PATH", filepath.Dir(exe)+string(os.PathListSeparator)+os.Getenv("PATH"))
}
