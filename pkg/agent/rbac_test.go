package agent

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func writes(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if a.GetVerb() != "get" {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	c.ClearActions()
	return out
}

func TestEnsureJoinPolicy(t *testing.T) {
	ctx := context.Background()
	c := fake.NewSimpleClientset()
	if err := ensureJoinPolicy(ctx, c); err != nil {
		t.Fatal(err)
	}
	p := desiredJoinPolicy()
	if got, want := len(writes(c)), len(p.ClusterRoles)+len(p.ClusterRoleBindings)+len(p.Roles)+len(p.RoleBindings); got != want {
		t.Errorf("%d creates, want %d", got, want)
	}
	b, err := c.RbacV1().ClusterRoleBindings().Get(ctx, "k1s:kubelet-bootstrap", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.RoleRef.Name != "system:node-bootstrapper" || b.Subjects[0].Name != BootstrappersGroup || b.Subjects[0].Kind != rbacv1.GroupKind {
		t.Errorf("bootstrap binding %+v", b)
	}

	// deciding again after acting changes nothing
	if err := ensureJoinPolicy(ctx, c); err != nil {
		t.Fatal(err)
	}
	if w := writes(c); len(w) != 0 {
		t.Errorf("second run wrote %v", w)
	}

	// a binding edited by hand is put back; roleRef is immutable, so replaced
	b.RoleRef.Name = "cluster-admin"
	c.Tracker().Update(rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"), b, "")
	r, _ := c.RbacV1().Roles("kube-public").Get(ctx, "k1s:bootstrap-root-ca", metav1.GetOptions{})
	r.Rules[0].ResourceNames = nil
	c.Tracker().Update(rbacv1.SchemeGroupVersion.WithResource("roles"), r, "kube-public")
	c.ClearActions()
	if err := ensureJoinPolicy(ctx, c); err != nil {
		t.Fatal(err)
	}
	got := writes(c)
	want := []string{"delete clusterrolebindings", "create clusterrolebindings", "update roles"}
	if len(got) != len(want) {
		t.Fatalf("repair wrote %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("repair wrote %v, want %v", got, want)
		}
	}
	b, _ = c.RbacV1().ClusterRoleBindings().Get(ctx, "k1s:kubelet-bootstrap", metav1.GetOptions{})
	if b.RoleRef.Name != "system:node-bootstrapper" {
		t.Errorf("roleRef not repaired: %v", b.RoleRef)
	}
}
