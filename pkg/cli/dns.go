package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"k1s.dev/k1s/pkg/dns"
	"k1s.dev/k1s/pkg/server"
)

// dnsPort is where the cluster DNS listens on the node's address; the
// kube-dns Service (the cluster DNS IP) forwards its port 53 there.
const dnsPort = 53

// kubeDNSManagedBy marks the kube-dns EndpointSlice as k1s's: the Service
// has no selector (the DNS server is not a pod), so no controller owns it.
const kubeDNSManagedBy = "k1s-cluster-dns"

// dnsComponent serves cluster DNS (pkg/dns) on the node's address and
// publishes it as the kube-dns Service in kube-system at --cluster-dns,
// which the service proxy makes reachable from pods and the host.
func dnsComponent() server.Component {
	return server.Component{Name: "cluster DNS", Run: runDNS}
}

func runDNS(ctx context.Context, env *server.Env) error {
	if os.Geteuid() != 0 {
		klog.InfoS("cluster DNS needs root (port 53 and the service proxy); not started")
		<-ctx.Done()
		return nil
	}
	cfg := rest.CopyConfig(env.AdminREST)
	cfg.UserAgent = "k1s-dns"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	addr := env.NodeIP.String()
	// Port 53 of the node address, or any free port when another cluster
	// on this machine has it: the kube-dns Service's endpoint says which.
	listen := net.JoinHostPort(addr, strconv.Itoa(dnsPort))
	if !canBindUDPAndTCP(listen) {
		klog.InfoS("cluster DNS: port 53 is taken on the node address; serving on a free port behind the kube-dns Service", "address", addr)
		listen = net.JoinHostPort(addr, "0")
	}
	srv, err := dns.New(dns.Options{
		Client: client,
		Domain: "cluster.local",
		Listen: []string{listen},
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		// cluster DNS is not worth stopping the server for
		klog.ErrorS(err, "cluster DNS not started")
		<-ctx.Done()
		return nil
	}
	port := dnsPort
	if addrs := srv.Addrs(); len(addrs) > 0 {
		if _, p, err := net.SplitHostPort(addrs[0]); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	if err := publishKubeDNS(ctx, client, env.Options.ClusterDNS, addr, env.Options.NodeName, int32(port)); err != nil {
		klog.ErrorS(err, "publishing the kube-dns Service")
	}
	if err := <-errc; err != nil {
		klog.ErrorS(err, "cluster DNS stopped")
	}
	return nil
}

// canBindUDPAndTCP says whether addr is free for both protocols.
func canBindUDPAndTCP(addr string) bool {
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	defer u.Close()
	t, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	t.Close()
	return true
}

// publishKubeDNS makes kube-system/kube-dns (clusterIP ip, CoreDNS's ports
// and labels) with an Endpoints and an EndpointSlice naming addr.
func publishKubeDNS(ctx context.Context, client kubernetes.Interface, ip, addr, node string, port int32) error {
	labels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem, Labels: labels},
		Spec: v1.ServiceSpec{
			ClusterIP: ip,
			Ports: []v1.ServicePort{
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(dnsPort)},
				{Name: "dns-tcp", Protocol: v1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(dnsPort)},
			},
		},
	}
	if _, err := client.CoreV1().Services(metav1.NamespaceSystem).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kube-dns Service: %w", err)
	}
	eps := &v1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem, Labels: labels},
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{{IP: addr, NodeName: ptr.To(node)}},
			Ports: []v1.EndpointPort{
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: port},
				{Name: "dns-tcp", Protocol: v1.ProtocolTCP, Port: port},
			},
		}},
	}
	if err := upsert(
		func() error {
			_, err := client.CoreV1().Endpoints(eps.Namespace).Create(ctx, eps, metav1.CreateOptions{})
			return err
		},
		func() error {
			have, err := client.CoreV1().Endpoints(eps.Namespace).Get(ctx, eps.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			have.Subsets = eps.Subsets
			_, err = client.CoreV1().Endpoints(eps.Namespace).Update(ctx, have, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return fmt.Errorf("kube-dns Endpoints: %w", err)
	}
	sliceLabels := map[string]string{
		discoveryv1.LabelServiceName: "kube-dns",
		discoveryv1.LabelManagedBy:   kubeDNSManagedBy,
	}
	for k, v := range labels {
		sliceLabels[k] = v
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kube-dns-" + node, Namespace: metav1.NamespaceSystem, Labels: sliceLabels},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(node),
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To(port)},
			{Name: ptr.To("dns-tcp"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(port)},
		},
	}
	slices := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	return upsert(
		func() error { _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); return err },
		func() error {
			have, err := slices.Get(ctx, slice.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			have.Labels, have.Endpoints, have.Ports = slice.Labels, slice.Endpoints, slice.Ports
			_, err = slices.Update(ctx, have, metav1.UpdateOptions{})
			return err
		})
}

// upsert creates, or updates what exists.
func upsert(create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		return update()
	}
	return err
}
