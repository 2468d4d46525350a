package proxy

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Builders of the API objects the tests feed the proxy.

func service(name, clusterIP string, ports ...v1.ServicePort) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{
			Type:      v1.ServiceTypeClusterIP,
			ClusterIP: clusterIP,
			Ports:     ports,
		},
	}
	if clusterIP != "" {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func svcPort(name string, port, target int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: port, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(target)}
}

func nodePortService(name, clusterIP string, port, target, nodePort int32) *v1.Service {
	p := svcPort("", port, target)
	p.NodePort = nodePort
	s := service(name, clusterIP, p)
	s.Spec.Type = v1.ServiceTypeNodePort
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	return s
}

func withAffinity(s *v1.Service, seconds int32) *v1.Service {
	s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
	return s
}

func loadBalancer(s *v1.Service, ingress ...string) *v1.Service {
	s.Spec.Type = v1.ServiceTypeLoadBalancer
	for _, ip := range ingress {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
	}
	return s
}

func epPort(name string, port int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(v1.ProtocolTCP)}
}

func endpointSlice(service, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
			Labels: map[string]string{discovery.LabelServiceName: service}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func readyEP(ip, node string) discovery.Endpoint {
	return discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(node),
		Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}
}

func unreadyEP(ip, node string) discovery.Endpoint {
	e := readyEP(ip, node)
	e.Conditions.Ready, e.Conditions.Serving = ptr.To(false), ptr.To(false)
	return e
}

func terminatingEP(ip, node string) discovery.Endpoint {
	e := readyEP(ip, node)
	e.Conditions.Ready, e.Conditions.Terminating = ptr.To(false), ptr.To(true)
	return e
}
