package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	discoveryv1ac "k8s.io/client-go/applyconfigurations/discovery/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"
	apiregistrationv1ac "k8s.io/kube-aggregator/pkg/client/applyconfiguration/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// The names metrics-server's manifests use.
const (
	Namespace      = "kube-system"
	ServiceName    = "metrics-server"
	APIServiceName = "v1beta1.metrics.k8s.io"
	PortName       = "https"
	ServicePort    = 443
	// FieldManager owns the registration objects (server-side apply).
	FieldManager = "metrics-server"
	// ManagedBy marks the EndpointSlice as ours, not the EndpointSlice
	// controller's.
	ManagedBy = "metrics-server.k1s.dev"
	// AggregatedReaderRole lets view, edit and admin read metrics.
	AggregatedReaderRole = "system:aggregated-metrics-reader"
)

var appLabels = map[string]string{"k8s-app": "metrics-server"}

// Registration is where the metrics API is served, and the objects that
// tell kube-apiserver's aggregator so.
type Registration struct {
	// Address is this server's IP address; a host name (FQDN endpoint)
	// when the node has no address but loopback, which endpoints refuse.
	Address  string
	Port     int32
	CABundle []byte
	NodeName string
}

func (r Registration) ip() net.IP {
	ip := net.ParseIP(r.Address)
	if ip == nil || ip.IsLoopback() {
		return nil
	}
	return ip
}

// Service is kube-system/metrics-server: port 443 named https, no
// selector (its endpoints are ours).
func (r Registration) Service() *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(ServiceName, Namespace).
		WithLabels(appLabels).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithPorts(corev1ac.ServicePort().
				WithName(PortName).
				WithProtocol(corev1.ProtocolTCP).
				WithPort(ServicePort).
				WithTargetPort(intstr.FromInt32(r.Port))))
}

// EndpointSlice points the Service at Address:Port.
func (r Registration) EndpointSlice() *discoveryv1ac.EndpointSliceApplyConfiguration {
	addrType, addr := discoveryv1.AddressTypeFQDN, r.Address
	if ip := r.ip(); ip != nil {
		addrType, addr = discoveryv1.AddressTypeIPv6, ip.String()
		if ip.To4() != nil {
			addrType = discoveryv1.AddressTypeIPv4
		}
	}
	if addrType == discoveryv1.AddressTypeFQDN && net.ParseIP(addr) != nil {
		addr = "localhost"
	}
	ep := discoveryv1ac.Endpoint().
		WithAddresses(addr).
		WithConditions(discoveryv1ac.EndpointConditions().WithReady(true).WithServing(true).WithTerminating(false))
	if r.NodeName != "" {
		ep.WithNodeName(r.NodeName)
	}
	return discoveryv1ac.EndpointSlice(ServiceName, Namespace).
		WithLabels(appLabels).
		WithLabels(map[string]string{
			discoveryv1.LabelServiceName: ServiceName,
			discoveryv1.LabelManagedBy:   ManagedBy,
		}).
		WithAddressType(addrType).
		WithEndpoints(ep).
		WithPorts(discoveryv1ac.EndpointPort().WithName(PortName).WithProtocol(corev1.ProtocolTCP).WithPort(r.Port))
}

// Endpoints mirrors the EndpointSlice for clients that still read
// Endpoints (kubectl describe service before 1.33); nil when Address is
// not an IP. It is marked so that the EndpointSlice mirroring controller
// leaves it alone.
func (r Registration) Endpoints() *corev1ac.EndpointsApplyConfiguration {
	ip := r.ip()
	if ip == nil {
		return nil
	}
	addr := corev1ac.EndpointAddress().WithIP(ip.String())
	if r.NodeName != "" {
		addr.WithNodeName(r.NodeName)
	}
	return corev1ac.Endpoints(ServiceName, Namespace).
		WithLabels(appLabels).
		WithLabels(map[string]string{discoveryv1.LabelSkipMirror: "true"}).
		WithSubsets(corev1ac.EndpointSubset().
			WithAddresses(addr).
			WithPorts(corev1ac.EndpointPort().WithName(PortName).WithProtocol(corev1.ProtocolTCP).WithPort(r.Port)))
}

// APIService is v1beta1.metrics.k8s.io, served by the Service and
// verified against the cluster CA.
func (r Registration) APIService() *apiregistrationv1ac.APIServiceApplyConfiguration {
	spec := apiregistrationv1ac.APIServiceSpec().
		WithService(apiregistrationv1ac.ServiceReference().WithNamespace(Namespace).WithName(ServiceName).WithPort(ServicePort)).
		WithGroup(metricsv1beta1.GroupName).
		WithVersion(metricsv1beta1.SchemeGroupVersion.Version).
		WithGroupPriorityMinimum(100).
		WithVersionPriority(100)
	if len(r.CABundle) > 0 {
		spec.WithCABundle(r.CABundle...)
	} else {
		spec.WithInsecureSkipTLSVerify(true)
	}
	return apiregistrationv1ac.APIService(APIServiceName).WithLabels(appLabels).WithSpec(spec)
}

// ReaderRole is metrics-server's system:aggregated-metrics-reader,
// aggregated into the view, edit and admin roles.
func ReaderRole() *rbacv1ac.ClusterRoleApplyConfiguration {
	return rbacv1ac.ClusterRole(AggregatedReaderRole).
		WithLabels(appLabels).
		WithLabels(map[string]string{
			"rbac.authorization.k8s.io/aggregate-to-admin": "true",
			"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
			"rbac.authorization.k8s.io/aggregate-to-view":  "true",
		}).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups(metricsv1beta1.GroupName).
			WithResources("pods", "nodes").
			WithVerbs("get", "list", "watch"))
}

// Registrar keeps the registration objects as Registration says.
type Registrar struct {
	Kube         kubernetes.Interface
	Aggregator   aggregator.Interface
	Registration Registration
}

// Ensure applies every object (server-side apply, so an unchanged
// object is not rewritten).
func (r *Registrar) Ensure(ctx context.Context) error {
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	reg := r.Registration
	var errs []error
	if _, err := r.Kube.CoreV1().Services(Namespace).Apply(ctx, reg.Service(), opts); err != nil {
		errs = append(errs, fmt.Errorf("service: %w", err))
	}
	if _, err := r.Kube.DiscoveryV1().EndpointSlices(Namespace).Apply(ctx, reg.EndpointSlice(), opts); err != nil {
		errs = append(errs, fmt.Errorf("endpointslice: %w", err))
	}
	if ep := reg.Endpoints(); ep != nil {
		if _, err := r.Kube.CoreV1().Endpoints(Namespace).Apply(ctx, ep, opts); err != nil {
			errs = append(errs, fmt.Errorf("endpoints: %w", err))
		}
	}
	if _, err := r.Kube.RbacV1().ClusterRoles().Apply(ctx, ReaderRole(), opts); err != nil {
		errs = append(errs, fmt.Errorf("clusterrole: %w", err))
	}
	if _, err := r.Aggregator.ApiregistrationV1().APIServices().Apply(ctx, reg.APIService(), opts); err != nil {
		errs = append(errs, fmt.Errorf("apiservice: %w", err))
	}
	return errors.Join(errs...)
}
