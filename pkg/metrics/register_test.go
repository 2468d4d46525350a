package metrics

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	aggregatorfake "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset/fake"
)

func TestRegistrationEndpoints(t *testing.T) {
	tests := []struct {
		address   string
		addrType  discoveryv1.AddressType
		addr      string
		endpoints bool
	}{
		{"192.0.2.2", discoveryv1.AddressTypeIPv4, "192.0.2.2", true},
		{"fd00::2", discoveryv1.AddressTypeIPv6, "fd00::2", true},
		// endpoints refuse loopback addresses: a machine without another
		// one is named by host name, and has no v1 Endpoints
		{"127.0.0.1", discoveryv1.AddressTypeFQDN, "localhost", false},
		{"metrics.example", discoveryv1.AddressTypeFQDN, "metrics.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			r := Registration{Address: tt.address, Port: 40233, NodeName: "vm"}
			es := r.EndpointSlice()
			if *es.AddressType != tt.addrType || len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != tt.addr {
				t.Errorf("endpointslice %s %+v", *es.AddressType, es.Endpoints)
			}
			if *es.Endpoints[0].Conditions.Ready != true || *es.Endpoints[0].NodeName != "vm" {
				t.Errorf("endpoint %+v", es.Endpoints[0])
			}
			if es.Labels[discoveryv1.LabelServiceName] != ServiceName || es.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
				t.Errorf("labels %v", es.Labels)
			}
			if p := es.Ports[0]; *p.Name != PortName || *p.Port != 40233 || *p.Protocol != corev1.ProtocolTCP {
				t.Errorf("port %+v", p)
			}
			ep := r.Endpoints()
			if (ep != nil) != tt.endpoints {
				t.Fatalf("endpoints %+v", ep)
			}
			if ep != nil && (*ep.Subsets[0].Addresses[0].IP != tt.addr || *ep.Subsets[0].Ports[0].Port != 40233 || ep.Labels[discoveryv1.LabelSkipMirror] != "true") {
				t.Errorf("endpoints %+v", ep)
			}
		})
	}
}

func TestAPIServiceTrust(t *testing.T) {
	withCA := Registration{CABundle: []byte("PEM")}.APIService()
	if string(withCA.Spec.CABundle) != "PEM" || withCA.Spec.InsecureSkipTLSVerify != nil {
		t.Errorf("with a CA bundle: %+v", withCA.Spec)
	}
	without := Registration{}.APIService()
	if without.Spec.CABundle != nil || !*without.Spec.InsecureSkipTLSVerify {
		t.Errorf("without a CA bundle: %+v", without.Spec)
	}
}

func TestRegistrarEnsure(t *testing.T) {
	kube := fake.NewClientset()
	agg := aggregatorfake.NewClientset()
	r := &Registrar{Kube: kube, Aggregator: agg, Registration: Registration{Address: "192.0.2.2", Port: 40233, CABundle: []byte("PEM"), NodeName: "vm"}}
	ctx := context.Background()
	for range 2 { // applying again changes nothing and does not fail
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
	}

	svc, err := kube.CoreV1().Services(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].Name != "https" || svc.Spec.Selector != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("service %+v", svc.Spec)
	}
	if _, err := kube.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, ServiceName, metav1.GetOptions{}); err != nil {
		t.Errorf("endpointslice: %v", err)
	}
	if _, err := kube.CoreV1().Endpoints(Namespace).Get(ctx, ServiceName, metav1.GetOptions{}); err != nil {
		t.Errorf("endpoints: %v", err)
	}
	role, err := kube.RbacV1().ClusterRoles().Get(ctx, AggregatedReaderRole, metav1.GetOptions{})
	if err != nil || role.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "true" || role.Rules[0].APIGroups[0] != "metrics.k8s.io" {
		t.Errorf("cluster role %+v %v", role, err)
	}
	as, err := agg.ApiregistrationV1().APIServices().Get(ctx, APIServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if as.Spec.Group != "metrics.k8s.io" || as.Spec.Version != "v1beta1" || as.Spec.GroupPriorityMinimum != 100 || as.Spec.VersionPriority != 100 ||
		as.Spec.Service == nil || as.Spec.Service.Namespace != "kube-system" || as.Spec.Service.Name != "metrics-server" || *as.Spec.Service.Port != 443 {
		t.Errorf("apiservice %+v", as.Spec)
	}

	// A restart on another port moves the endpoints.
	r.Registration.Port = 41000
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	es, _ := kube.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if *es.Ports[0].Port != 41000 {
		t.Errorf("endpointslice port %d", *es.Ports[0].Port)
	}
	if got := previousPort(ctx, kube); got != 41000 {
		t.Errorf("previousPort %d", got)
	}
	if got := previousPort(ctx, fake.NewClientset()); got != 0 {
		t.Errorf("previousPort without a registration %d", got)
	}
}
