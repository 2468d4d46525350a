package main

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"k1s.dev/k1s/bench/internal/harness"
)

const deployName = "bench"

// deployment creates a Deployment of b.replicas `sleep 3600` pods and times
// it to availableReplicas = replicas, then (with -only rollout) changes an
// env var and times the rolling update to its end, then deletes it.
func (b *bench) deployment(ctx context.Context) error {
	n := b.replicas
	rowDeploy := fmt.Sprintf("Deployment of %d replicas (`sleep 3600`), create → availableReplicas=%d", n, n)
	rowCreated := fmt.Sprintf("… of which create → all %d pods created / Running (pod watch)", n)
	rowRollout := fmt.Sprintf("rolling update of %d replicas (maxSurge 25%%, maxUnavailable 25%%, env change) → complete (updated = available = %d, old RS 0)", n, n)
	rowOldGone := "… of which update → last old pod deleted (grace 1 s)"

	tr, err := watchPods(ctx, b.c, ns, "app=bench-deploy")
	if err != nil {
		return err
	}
	defer tr.stop()
	var exp harness.Expect[*appsv1.Deployment]
	l, err := b.c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go harness.WatchLoop(wctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return b.c.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if d, ok := ev.Object.(*appsv1.Deployment); ok && d.Name == deployName {
			exp.Observe(d, at)
		}
	})

	available := exp.Add(func(d *appsv1.Deployment) bool {
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == int32(n)
	})
	t0 := time.Now()
	d, err := b.c.AppsV1().Deployments(ns).Create(ctx, deployment(n), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	defer b.deleteDeployment(ctx, tr)
	if !available.Wait(ctx, b.waitTimeout) {
		b.table.Add(rowDeploy, na("not available within %s (%s)", b.waitTimeout, b.deployState(ctx)), "< 5 s")
		b.table.Add(rowCreated, "n/a", "")
		if b.only["rollout"] {
			b.table.Add(rowRollout, "n/a (skipped)", "")
			b.table.Add(rowOldGone, "n/a (skipped)", "")
		}
		return nil
	}
	all := tr.snapshot(nil)
	created, nc := latest(all, func(t podTimes) time.Time { return t.added })
	running, nr := latest(all, func(t podTimes) time.Time { return t.running })
	b.table.Add(rowDeploy, harness.Ms(available.At.Sub(t0)), "< 5 s")
	b.table.Add(rowCreated, fmt.Sprintf("%s / %s (%d / %d pods seen)", harness.Ms(created.Sub(t0)), harness.Ms(running.Sub(t0)), nc, nr), "")
	b.log("deployment available after %s", available.At.Sub(t0))
	if !b.only["rollout"] {
		return nil
	}

	oldHashes := map[string]bool{}
	for _, t := range all {
		oldHashes[t.hash] = true
	}
	isOld := func(_ string, t podTimes) bool { return oldHashes[t.hash] }
	complete := exp.Add(func(d *appsv1.Deployment) bool {
		s := d.Status
		return s.ObservedGeneration >= d.Generation && d.Generation > 1 &&
			s.UpdatedReplicas == int32(n) && s.Replicas == int32(n) && s.AvailableReplicas == int32(n) && s.UnavailableReplicas == 0
	})
	if d, err = b.c.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
		return err
	}
	d.Spec.Template.Spec.Containers[0].Env[0].Value = "2"
	t1 := time.Now()
	if _, err := b.c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if !complete.Wait(ctx, b.waitTimeout) {
		b.table.Add(rowRollout, na("not complete within %s (%s)", b.waitTimeout, b.deployState(ctx)), "")
		b.table.Add(rowOldGone, "n/a", "")
		return nil
	}
	// Deployment status.replicas is the sum of its ReplicaSets' replicas;
	// check the old ones directly too.
	oldRS := "old RS replicas 0"
	rsl, err := b.c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, rs := range rsl.Items {
			if oldHashes[rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] && (rs.Status.Replicas != 0 || *rs.Spec.Replicas != 0) {
				oldRS = fmt.Sprintf("old RS %s at rollout end: spec %d, status %d", rs.Name, *rs.Spec.Replicas, rs.Status.Replicas)
			}
		}
	}
	b.table.Add(rowRollout, fmt.Sprintf("%s (%s)", harness.Ms(complete.At.Sub(t1)), oldRS), "")
	b.log("rollout complete after %s", complete.At.Sub(t1))
	if !harness.WaitFor(ctx, b.waitTimeout, func() bool { return tr.live(isOld) == 0 }) {
		b.table.Add(rowOldGone, na("%d old pods left after %s", tr.live(isOld), b.waitTimeout), "")
		return nil
	}
	gone, _ := latest(tr.snapshot(isOld), func(t podTimes) time.Time { return t.deleted })
	b.table.Add(rowOldGone, harness.Ms(gone.Sub(t1)), "")
	return nil
}

// deleteDeployment deletes the Deployment (background propagation) and
// waits until its pods are gone.
func (b *bench) deleteDeployment(ctx context.Context, tr *pods) {
	bg := metav1.DeletePropagationBackground
	if err := b.c.AppsV1().Deployments(ns).Delete(ctx, deployName, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		b.log("deleting the deployment: %v", err)
	}
	t0 := time.Now()
	if harness.WaitFor(ctx, b.waitTimeout, func() bool { return tr.live(nil) == 0 }) {
		b.log("deployment's pods gone %s after its delete", time.Since(t0).Round(time.Millisecond))
	} else {
		b.log("%d pods of the deployment still there %s after its delete", tr.live(nil), b.waitTimeout)
	}
}

func (b *bench) deployState(ctx context.Context) string {
	d, err := b.c.AppsV1().Deployments(ns).Get(ctx, deployName, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	s := d.Status
	return fmt.Sprintf("replicas %d, updated %d, ready %d, available %d", s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
}

func deployment(n int) *appsv1.Deployment {
	replicas := int32(n)
	grace := int64(1)
	quarter := intstr.FromString("25%")
	labels := map[string]string{"app": "bench-deploy"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deployName},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &quarter, MaxUnavailable: &quarter},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:    "sleep",
						Image:   "busybox",
						Command: []string{"sleep", "3600"},
						Env:     []corev1.EnvVar{{Name: "BENCH_REVISION", Value: "1"}},
					}},
				},
			},
		},
	}
}
