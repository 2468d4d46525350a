package apiserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/component-helpers/auth/rbac/reconciliation"
	"k8s.io/klog/v2"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
	rbacrest "k8s.io/kubernetes/pkg/registry/rbac/rest"
	schedulingrest "k8s.io/kubernetes/pkg/registry/scheduling/rest"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// Upstream's post-start hooks that create the bootstrap RBAC policy
// (rbac/bootstrap-roles) and the system PriorityClasses
// (scheduling/bootstrap-system-priority-classes) retry with
// wait.Poll(1s, …), whose first try comes a full second after the server
// starts serving; /readyz waits for both, so every start of kube-apiserver
// idles for that second. k1s disables those two hooks and registers these,
// which do the same work with the same data (bootstrappolicy's roles and
// bindings reconciled by component-helpers' reconciliation, as upstream;
// SystemPriorityClasses) at once, retrying every 100 ms.
const (
	BootstrapRolesHook           = "k1s/bootstrap-roles"
	BootstrapPriorityClassesHook = "k1s/bootstrap-system-priority-classes"
)

// replaceBootstrapHooks swaps upstream's two polling hooks for k1s's.
func replaceBootstrapHooks(g *genericapiserver.Config) error {
	g.DisabledPostStartHooks.Insert(rbacrest.PostStartHookName, schedulingrest.PostStartHookName)
	if err := g.AddPostStartHook(BootstrapRolesHook, retryHook(ensureRBACPolicy)); err != nil {
		return err
	}
	return g.AddPostStartHook(BootstrapPriorityClassesHook, retryHook(ensurePriorityClasses))
}

// retryHook runs step at once and then every 100 ms until it reports done
// (30 s at most, as upstream's hooks: then the server fails to start).
func retryHook(step func(context.Context, kubernetes.Interface) (bool, error)) genericapiserver.PostStartHookFunc {
	return func(hc genericapiserver.PostStartHookContext) error {
		client, err := kubernetes.NewForConfig(hc.LoopbackClientConfig)
		if err != nil {
			return err
		}
		return wait.PollUntilContextTimeout(hc, 100*time.Millisecond, 30*time.Second, true,
			func(ctx context.Context) (bool, error) { return step(ctx, client) })
	}
}

// reconcile runs one reconciliation, retried on conflicts and while the
// server answers 503 (storage version updates), as upstream's hook does.
func reconcile(what string, run func() error) bool {
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsServiceUnavailable(err)
	}, run)
	if err != nil {
		klog.ErrorS(err, "Unable to reconcile a bootstrap RBAC object, will retry", "object", what)
		return false
	}
	return true
}

// ensureRBACPolicy creates or completes bootstrappolicy's cluster roles,
// cluster role bindings and namespaced roles and bindings, several at a
// time (each is its own object; ~150 one after the other took 0.4 s of a
// start). It reports done once all of them reconciled; a failed one is
// retried on the next step, the others still attempted.
func ensureRBACPolicy(ctx context.Context, client kubernetes.Interface) (bool, error) {
	rbac := client.RbacV1()
	namespaces := client.CoreV1().Namespaces()
	var steps []func() bool
	for _, r := range append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...) {
		steps = append(steps, roleStep("clusterrole/"+r.Name, reconciliation.ReconcileRoleOptions{
			Role:   reconciliation.ClusterRoleRuleOwner{ClusterRole: &r},
			Client: reconciliation.ClusterRoleModifier{Client: rbac.ClusterRoles()},
		}))
	}
	for _, b := range append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...) {
		steps = append(steps, bindingStep("clusterrolebinding/"+b.Name, reconciliation.ReconcileRoleBindingOptions{
			RoleBinding: reconciliation.ClusterRoleBindingAdapter{ClusterRoleBinding: &b},
			Client:      reconciliation.ClusterRoleBindingClientAdapter{Client: rbac.ClusterRoleBindings()},
		}))
	}
	for ns, roles := range bootstrappolicy.NamespaceRoles() {
		for _, r := range roles {
			steps = append(steps, roleStep("role/"+ns+"/"+r.Name, reconciliation.ReconcileRoleOptions{
				Role:   reconciliation.RoleRuleOwner{Role: &r},
				Client: reconciliation.RoleModifier{Client: rbac, NamespaceClient: namespaces},
			}))
		}
	}
	for ns, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for _, b := range bindings {
			steps = append(steps, bindingStep("rolebinding/"+ns+"/"+b.Name, reconciliation.ReconcileRoleBindingOptions{
				RoleBinding: reconciliation.RoleBindingAdapter{RoleBinding: &b},
				Client:      reconciliation.RoleBindingClientAdapter{Client: rbac, NamespaceClient: namespaces},
			}))
		}
	}
	return runAll(steps, bootstrapParallelism), nil
}

// roleStep reconciles one (cluster) role, confirmed, as a runAll step.
func roleStep(what string, opts reconciliation.ReconcileRoleOptions) func() bool {
	opts.Confirm = true
	return func() bool { return reconcile(what, func() error { return logResult(opts.Run()) }) }
}

// bindingStep reconciles one (cluster) role binding, confirmed, as a
// runAll step.
func bindingStep(what string, opts reconciliation.ReconcileRoleBindingOptions) func() bool {
	opts.Confirm = true
	return func() bool { return reconcile(what, func() error { return logBindingResult(opts.Run()) }) }
}

// bootstrapParallelism is how many bootstrap objects are reconciled at once.
const bootstrapParallelism = 8

// runAll runs every step, n at a time, and reports whether all succeeded.
func runAll(steps []func() bool, n int) bool {
	next := make(chan func() bool)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for step := range next {
				if !step() {
					failed.Store(true)
				}
			}
		}()
	}
	for _, step := range steps {
		next <- step
	}
	close(next)
	wg.Wait()
	return !failed.Load()
}

func logResult(r *reconciliation.ReconcileClusterRoleResult, err error) error {
	if err == nil {
		logReconcile("role", r.Role.GetNamespace(), r.Role.GetName(), r.Operation, r.Protected, r.MissingRules)
	}
	return err
}

func logBindingResult(r *reconciliation.ReconcileClusterRoleBindingResult, err error) error {
	if err == nil {
		logReconcile("role binding", r.RoleBinding.GetNamespace(), r.RoleBinding.GetName(), r.Operation, r.Protected, r.MissingSubjects)
	}
	return err
}

// logReconcile logs what a reconciliation did, as upstream's hook: a
// protected object lacking what the policy grants is left alone, loudly.
func logReconcile(kind, ns, name string, op reconciliation.ReconcileOperation, protected bool, missing any) {
	switch {
	case protected && op != reconciliation.ReconcileNone:
		klog.InfoS("Skipped a reconcile-protected bootstrap object missing what the bootstrap policy grants", "kind", kind, "name", name, "namespace", ns, "missing", missing)
	case op != reconciliation.ReconcileNone:
		klog.V(2).InfoS("Reconciled a bootstrap object", "kind", kind, "operation", op, "name", name, "namespace", ns)
	}
}

// ensurePriorityClasses creates system-node-critical and
// system-cluster-critical when missing, as upstream's hook.
func ensurePriorityClasses(ctx context.Context, client kubernetes.Interface) (bool, error) {
	pcs := client.SchedulingV1().PriorityClasses()
	for _, pc := range schedulingapiv1.SystemPriorityClasses() {
		_, err := pcs.Get(ctx, pc.Name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			klog.InfoS("Unable to get a system PriorityClass, will retry", "priorityClass", pc.Name, "err", err)
			return false, nil
		}
		if _, err := pcs.Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			if apierrors.IsServiceUnavailable(err) {
				return false, nil
			}
			return false, fmt.Errorf("unable to add default system priority classes: %w", err)
		}
		klog.V(2).InfoS("Created a system PriorityClass", "priorityClass", pc.Name, "value", pc.Value)
	}
	return true, nil
}
