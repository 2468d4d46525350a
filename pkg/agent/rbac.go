package agent

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Groups of the identities that join nodes.
const (
	// BootstrappersGroup holds the node token's user (server/tokens.csv).
	BootstrappersGroup = "system:bootstrappers"
	nodesGroup         = "system:nodes"
)

// joinPolicy is the RBAC that lets agents join, as kubeadm sets it up
// (kubeadm:kubelet-bootstrap, kubeadm:node-autoapprove-bootstrap,
// kubeadm:node-autoapprove-certificate-rotation), plus two k1s needs:
// reading the cluster CA with the token (trust on first use, see
// discoverCA), registering the node's RuntimeClasses and running the
// service proxy as the node.
type joinPolicy struct {
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	Roles               []rbacv1.Role
	RoleBindings        []rbacv1.RoleBinding
}

func desiredJoinPolicy() joinPolicy {
	group := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}}
	}
	crb := func(name, role, subject string) rbacv1.ClusterRoleBinding {
		return rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   group(subject),
		}
	}
	return joinPolicy{
		ClusterRoles: []rbacv1.ClusterRole{{
			ObjectMeta: metav1.ObjectMeta{Name: "k1s:node-runtimeclasses"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{"node.k8s.io"}, Resources: []string{"runtimeclasses"}, Verbs: []string{"create"},
			}},
		}},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{
			crb("k1s:kubelet-bootstrap", "system:node-bootstrapper", BootstrappersGroup),
			crb("k1s:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", BootstrappersGroup),
			crb("k1s:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nodesGroup),
			crb("k1s:node-runtimeclasses", "k1s:node-runtimeclasses", nodesGroup),
			// every node runs the service proxy with its own identity
			// (kube-proxy's role: services, endpointslices, nodes, events)
			crb("k1s:node-proxier", "system:node-proxier", nodesGroup),
		},
		Roles: []rbacv1.Role{{
			ObjectMeta: metav1.ObjectMeta{Name: "k1s:bootstrap-root-ca", Namespace: metav1.NamespacePublic},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"},
				ResourceNames: []string{"kube-root-ca.crt"},
			}},
		}},
		RoleBindings: []rbacv1.RoleBinding{{
			ObjectMeta: metav1.ObjectMeta{Name: "k1s:bootstrap-root-ca", Namespace: metav1.NamespacePublic},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "k1s:bootstrap-root-ca"},
			Subjects:   group(BootstrappersGroup),
		}},
	}
}

// ensureJoinPolicy creates what is missing and puts back what was changed.
func ensureJoinPolicy(ctx context.Context, client kubernetes.Interface) error {
	p := desiredJoinPolicy()
	rbac := client.RbacV1()
	for _, want := range p.ClusterRoles {
		err := ensure(want.Name,
			func() (*rbacv1.ClusterRole, error) {
				return rbac.ClusterRoles().Get(ctx, want.Name, metav1.GetOptions{})
			},
			func() error { _, err := rbac.ClusterRoles().Create(ctx, &want, metav1.CreateOptions{}); return err },
			func(have *rbacv1.ClusterRole) error {
				if equality.Semantic.DeepEqual(have.Rules, want.Rules) {
					return nil
				}
				have.Rules = want.Rules
				_, err := rbac.ClusterRoles().Update(ctx, have, metav1.UpdateOptions{})
				return err
			})
		if err != nil {
			return err
		}
	}
	for _, want := range p.ClusterRoleBindings {
		err := ensure(want.Name,
			func() (*rbacv1.ClusterRoleBinding, error) {
				return rbac.ClusterRoleBindings().Get(ctx, want.Name, metav1.GetOptions{})
			},
			func() error {
				_, err := rbac.ClusterRoleBindings().Create(ctx, &want, metav1.CreateOptions{})
				return err
			},
			func(have *rbacv1.ClusterRoleBinding) error {
				if have.RoleRef == want.RoleRef && equality.Semantic.DeepEqual(have.Subjects, want.Subjects) {
					return nil
				}
				// roleRef is immutable: replace the binding
				if err := rbac.ClusterRoleBindings().Delete(ctx, want.Name, metav1.DeleteOptions{}); err != nil {
					return err
				}
				_, err := rbac.ClusterRoleBindings().Create(ctx, &want, metav1.CreateOptions{})
				return err
			})
		if err != nil {
			return err
		}
	}
	for _, want := range p.Roles {
		roles := rbac.Roles(want.Namespace)
		err := ensure(want.Name,
			func() (*rbacv1.Role, error) { return roles.Get(ctx, want.Name, metav1.GetOptions{}) },
			func() error { _, err := roles.Create(ctx, &want, metav1.CreateOptions{}); return err },
			func(have *rbacv1.Role) error {
				if equality.Semantic.DeepEqual(have.Rules, want.Rules) {
					return nil
				}
				have.Rules = want.Rules
				_, err := roles.Update(ctx, have, metav1.UpdateOptions{})
				return err
			})
		if err != nil {
			return err
		}
	}
	for _, want := range p.RoleBindings {
		bindings := rbac.RoleBindings(want.Namespace)
		err := ensure(want.Name,
			func() (*rbacv1.RoleBinding, error) { return bindings.Get(ctx, want.Name, metav1.GetOptions{}) },
			func() error { _, err := bindings.Create(ctx, &want, metav1.CreateOptions{}); return err },
			func(have *rbacv1.RoleBinding) error {
				if have.RoleRef == want.RoleRef && equality.Semantic.DeepEqual(have.Subjects, want.Subjects) {
					return nil
				}
				if err := bindings.Delete(ctx, want.Name, metav1.DeleteOptions{}); err != nil {
					return err
				}
				_, err := bindings.Create(ctx, &want, metav1.CreateOptions{})
				return err
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// ensure gets an object, creates it when absent, else lets fix repair it.
func ensure[T any](name string, get func() (T, error), create func() error, fix func(T) error) error {
	have, err := get()
	switch {
	case apierrors.IsNotFound(err):
		if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if err := fix(have); err != nil {
		return fmt.Errorf("updating %s: %w", name, err)
	}
	return nil
}
