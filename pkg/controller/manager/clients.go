package manager

import (
	"fmt"
	"runtime"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/scale"
)

// ClientBuilder hands each controller its own clients, named after the
// controller the way kube-controller-manager names them (the name ends the
// User-Agent, so audit logs and managedFields tell controllers apart).
// Tests implement it with fake clientsets.
type ClientBuilder interface {
	Client(name string) (kubernetes.Interface, error)
	Metadata(name string) (metadata.Interface, error)
	Discovery(name string) (discovery.DiscoveryInterface, error)
	// Scales returns a client for the scale subresource of any resource
	// (the disruption controller reads replicas of arbitrary owners).
	Scales(name string, mapper meta.RESTMapper, resolver scale.ScaleKindResolver) (scale.ScalesGetter, error)
}

// userAgentPrefix is what kube-controller-manager's clients send before the
// controller name; the API server's field manager takes the part before the
// first "/" as the manager name, so managedFields read "kube-controller-manager".
var userAgentPrefix = fmt.Sprintf("kube-controller-manager/v1.37.2 (%s/%s) kubernetes", runtime.GOOS, runtime.GOARCH)

// qpsScale lists the clients kube-controller-manager gives a larger rate
// budget (cmd/kube-controller-manager/app/core.go).
var qpsScale = map[string]struct{ qps, burst float32 }{
	"namespace-controller":      {20, 100},
	"generic-garbage-collector": {2, 1},
}

// RESTClientBuilder builds clients from one rest.Config (the loopback admin
// config in the server).
type RESTClientBuilder struct {
	Config *rest.Config
}

var _ ClientBuilder = RESTClientBuilder{}

func (b RESTClientBuilder) config(name string) (*rest.Config, error) {
	if b.Config == nil {
		return nil, fmt.Errorf("controller manager: no kubeconfig")
	}
	c := rest.CopyConfig(b.Config)
	c.UserAgent = userAgentPrefix + "/" + name
	if s, ok := qpsScale[name]; ok && c.QPS > 0 {
		c.QPS *= s.qps
		c.Burst = int(float32(c.Burst) * s.burst)
	}
	return c, nil
}

func (b RESTClientBuilder) Client(name string) (kubernetes.Interface, error) {
	c, err := b.config(name)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(c)
}

func (b RESTClientBuilder) Metadata(name string) (metadata.Interface, error) {
	c, err := b.config(name)
	if err != nil {
		return nil, err
	}
	return metadata.NewForConfig(c)
}

func (b RESTClientBuilder) Discovery(name string) (discovery.DiscoveryInterface, error) {
	c, err := b.config(name)
	if err != nil {
		return nil, err
	}
	// Discovery makes many requests at once, rarely (upstream's
	// clientbuilder gives discovery clients the same budget).
	if c.QPS >= 0 {
		c.QPS, c.Burst = 20, 200
	}
	return discovery.NewDiscoveryClientForConfig(c)
}

func (b RESTClientBuilder) Scales(name string, mapper meta.RESTMapper, resolver scale.ScaleKindResolver) (scale.ScalesGetter, error) {
	c, err := b.config(name)
	if err != nil {
		return nil, err
	}
	return scale.NewForConfig(c, mapper, dynamic.LegacyAPIPathResolverFunc, resolver)
}
