package servicelb

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func lbService(name string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, ClusterIP: "10.43.0.10",
			Ports: []v1.ServicePort{{Port: 80, NodePort: 30080, Protocol: v1.ProtocolTCP}}},
	}
}

func testNode(name string, ready bool, addrs ...v1.NodeAddress) *v1.Node {
	st := v1.ConditionFalse
	if ready {
		st = v1.ConditionTrue
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: st}},
			Addresses:  addrs,
		},
	}
}

func internal(ip string) v1.NodeAddress { return v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip} }
func external(ip string) v1.NodeAddress { return v1.NodeAddress{Type: v1.NodeExternalIP, Address: ip} }

func ingress(ips ...string) v1.LoadBalancerStatus {
	var st v1.LoadBalancerStatus
	for _, ip := range ips {
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
	}
	return st
}

// start runs a controller on a fake clientset holding objects.
func start(t *testing.T, o Options, objects ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objects...)
	o.Client = cs
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		for _, a := range cs.Actions() {
			if a.GetResource().Resource == "events" {
				t.Errorf("the controller recorded an event: %v", a)
			}
		}
	})
	return cs
}

// eventuallyStatus waits until the Service's load-balancer status is want.
func eventuallyStatus(t *testing.T, cs *fake.Clientset, name string, want v1.LoadBalancerStatus) {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		svc, err := cs.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff = cmp.Diff(want, svc.Status.LoadBalancer); diff == "" {
			return
		}
	}
	t.Fatalf("service %s status.loadBalancer (-want +got):\n%s", name, diff)
}

func statusUpdates(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func TestServiceLB(t *testing.T) {
	t.Run("ingress is the Ready nodes' addresses, a node's ExternalIP when it has one", func(t *testing.T) {
		cs := start(t, Options{},
			testNode("a", true, internal("192.0.2.2")),
			testNode("b", true, internal("192.0.2.3"), external("198.51.100.3")),
			testNode("c", false, internal("192.0.2.4")),
			lbService("web"))
		eventuallyStatus(t, cs, "web", ingress("192.0.2.2", "198.51.100.3"))
	})
	t.Run("a node's address change and readiness are followed", func(t *testing.T) {
		cs := start(t, Options{}, testNode("a", true, internal("192.0.2.2")), lbService("web"))
		eventuallyStatus(t, cs, "web", ingress("192.0.2.2"))
		if _, err := cs.CoreV1().Nodes().UpdateStatus(context.Background(), testNode("a", true, internal("192.0.2.9")), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventuallyStatus(t, cs, "web", ingress("192.0.2.9"))
		if _, err := cs.CoreV1().Nodes().UpdateStatus(context.Background(), testNode("a", false, internal("192.0.2.9")), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventuallyStatus(t, cs, "web", v1.LoadBalancerStatus{})
	})
	t.Run("static NodeIPs; other types and load-balancer classes are left alone", func(t *testing.T) {
		classed := lbService("classed")
		classed.Spec.LoadBalancerClass = ptr.To("example.com/lb")
		plain := lbService("plain")
		plain.Spec.Type = v1.ServiceTypeClusterIP
		cs := start(t, Options{NodeIPs: []net.IP{net.ParseIP("192.0.2.2")}}, lbService("web"), classed, plain)
		eventuallyStatus(t, cs, "web", ingress("192.0.2.2"))
		time.Sleep(50 * time.Millisecond)
		for _, a := range cs.Actions() {
			if a.GetVerb() == "update" {
				if u, ok := a.(interface{ GetObject() runtime.Object }); ok {
					if s := u.GetObject().(*v1.Service); s.Name != "web" {
						t.Errorf("updated %s", s.Name)
					}
				}
			}
		}
	})
	t.Run("a Service that is no longer a LoadBalancer loses its ingress", func(t *testing.T) {
		cs := start(t, Options{NodeIPs: []net.IP{net.ParseIP("192.0.2.2")}}, lbService("web"))
		eventuallyStatus(t, cs, "web", ingress("192.0.2.2"))
		svc, _ := cs.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
		svc.Spec.Type = v1.ServiceTypeClusterIP // the fake API keeps the status
		if _, err := cs.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventuallyStatus(t, cs, "web", v1.LoadBalancerStatus{})
	})
	t.Run("once set, the status is not written again", func(t *testing.T) {
		cs := start(t, Options{NodeIPs: []net.IP{net.ParseIP("192.0.2.2")}}, lbService("web"))
		eventuallyStatus(t, cs, "web", ingress("192.0.2.2"))
		// Touch the Service: the controller looks again and finds nothing to do.
		svc, _ := cs.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
		svc.Labels = map[string]string{"touched": "yes"}
		if _, err := cs.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := statusUpdates(cs); n != 1 {
			t.Errorf("%d status updates, want 1", n)
		}
	})
}

func TestDesiredIsStable(t *testing.T) {
	c := &Controller{static: []string{"192.0.2.2"}}
	svc := lbService("web")
	want, manage := c.desired(svc)
	if !manage {
		t.Fatal("not managed")
	}
	svc.Status.LoadBalancer = want
	again, _ := c.desired(svc)
	if diff := cmp.Diff(want, again); diff != "" {
		t.Fatal(diff)
	}
}
