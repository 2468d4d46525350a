package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"k1s.dev/k1s/bench/internal/harness"
)

const (
	lostNode = "bench-n2"
	lostPod  = "bench-nodeloss"
)

// nodeLoss joins a second agent, runs a pod on it tolerating
// unreachable / not-ready for b.toleration seconds, SIGKILLs the agent and
// times kill → node Ready=Unknown → NoExecute taint → eviction start
// (TaintManagerEviction event, pod deletionTimestamp). Then it starts the
// agent again (with --stop-pods-on-exit) so that it stops the pod's
// container, and stops it.
func (b *bench) nodeLoss(ctx context.Context) error {
	label := fmt.Sprintf("node loss (2nd agent SIGKILLed; --node-monitor-grace-period %s, default 50 s)", b.grace)
	rows := []string{
		label + ": kill → node Ready=Unknown",
		"… kill → NoExecute taint node.kubernetes.io/unreachable on the node",
		"… kill → pod Ready=False",
		fmt.Sprintf("… kill → eviction start (tolerationSeconds %d): TaintManagerEviction event / pod deletionTimestamp", b.toleration),
	}
	fail := func(msg string) error {
		for _, r := range rows {
			b.table.Add(r, "n/a: "+msg, "")
		}
		return nil
	}
	agentDir := filepath.Join(b.srv.Work, "agent-n2")
	agent, err := harness.StartAgent(b.binary, b.srv.Server, agentDir, lostNode)
	if err != nil {
		return err
	}
	b.log("agent pid %d joining as %s", agent.PID(), lostNode)
	killed := false
	defer func() {
		if !killed {
			agent.Stop()
		}
		if n := harness.KillLeftoverContainers(agentDir); n > 0 {
			b.log("killed %d container processes left by the agent", n)
		}
	}()
	if !harness.WaitEvery(ctx, 100*time.Millisecond, b.nodeWait, func() bool { return b.nodeReady(ctx, lostNode) == corev1.ConditionTrue }) {
		return fail(fmt.Sprintf("node %s not Ready within %s (log %s)", lostNode, b.nodeWait, agent.LogPath))
	}

	// Watches opened before the kill.
	var nodeExp harness.Expect[*corev1.Node]
	var podExp harness.Expect[*corev1.Pod]
	var evExp harness.Expect[*corev1.Event]
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.watchNode(wctx, &nodeExp); err != nil {
		return err
	}
	if err := b.watchPod(wctx, &podExp); err != nil {
		return err
	}
	if err := b.watchEvents(wctx, &evExp); err != nil {
		return err
	}
	running := podExp.Add(func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && podReady(p) })
	if _, err := b.c.CoreV1().Pods(ns).Create(ctx, lostNodePod(b.toleration), metav1.CreateOptions{}); err != nil {
		return err
	}
	if !running.Wait(ctx, 30*time.Second) {
		return fail(fmt.Sprintf("pod not Running on %s within 30s", lostNode))
	}
	unknown := nodeExp.Add(func(n *corev1.Node) bool { return nodeCondition(n) == corev1.ConditionUnknown })
	tainted := nodeExp.Add(func(n *corev1.Node) bool {
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeUnreachable && t.Effect == corev1.TaintEffectNoExecute {
				return true
			}
		}
		return false
	})
	notReady := podExp.Add(func(p *corev1.Pod) bool { return !podReady(p) })
	deleting := podExp.Add(func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
	evicted := evExp.Add(func(e *corev1.Event) bool { return e.Reason == "TaintManagerEviction" })

	lastRenew := "?"
	if l, err := b.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, lostNode, metav1.GetOptions{}); err == nil && l.Spec.RenewTime != nil {
		lastRenew = harness.Ms(time.Since(l.Spec.RenewTime.Time))
	}
	tKill := time.Now()
	if err := agent.Kill(); err != nil {
		return err
	}
	killed = true
	b.log("agent pid %d SIGKILLed (its lease renewed %s before)", agent.PID(), lastRenew)
	wait := b.grace + 10*time.Second + time.Duration(b.toleration)*time.Second + 30*time.Second
	since := func(c interface {
		Wait(context.Context, time.Duration) bool
	}, at func() time.Time) string {
		if !c.Wait(ctx, time.Until(tKill.Add(wait))) {
			return fmt.Sprintf("n/a: not within %s", wait)
		}
		return harness.Ms(at().Sub(tKill))
	}
	b.table.Add(rows[0], fmt.Sprintf("%s (last lease renewal %s before the kill)", since(unknown, func() time.Time { return unknown.At }), lastRenew), "")
	b.table.Add(rows[1], since(tainted, func() time.Time { return tainted.At }), "")
	b.table.Add(rows[2], since(notReady, func() time.Time { return notReady.At }), "")
	b.table.Add(rows[3], since(evicted, func() time.Time { return evicted.At })+" / "+since(deleting, func() time.Time { return deleting.At }), "")

	// Bring the node back so that its agent stops the evicted pod's
	// container (it survived the agent, held by its shim), then stop it.
	agent, err = harness.StartAgent(b.binary, b.srv.Server, agentDir, lostNode, "--stop-pods-on-exit")
	if err != nil {
		return err
	}
	killed = false
	gone := harness.WaitEvery(ctx, 100*time.Millisecond, 60*time.Second, func() bool {
		_, err := b.c.CoreV1().Pods(ns).Get(ctx, lostPod, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if !gone {
		b.log("pod %s still there 60s after its node came back", lostPod)
	}
	return nil
}

func (b *bench) nodeReady(ctx context.Context, name string) corev1.ConditionStatus {
	n, err := b.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return nodeCondition(n)
}

func nodeCondition(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func (b *bench) watchNode(ctx context.Context, exp *harness.Expect[*corev1.Node]) error {
	sel := fields.OneTermEqualSelector("metadata.name", lostNode).String()
	l, err := b.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return err
	}
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return b.c.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if n, ok := ev.Object.(*corev1.Node); ok {
			exp.Observe(n, at)
		}
	})
	return nil
}

func (b *bench) watchPod(ctx context.Context, exp *harness.Expect[*corev1.Pod]) error {
	sel := fields.OneTermEqualSelector("metadata.name", lostPod).String()
	l, err := b.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return err
	}
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return b.c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted {
			exp.Observe(p, at)
		}
	})
	return nil
}

func (b *bench) watchEvents(ctx context.Context, exp *harness.Expect[*corev1.Event]) error {
	sel := fields.OneTermEqualSelector("involvedObject.name", lostPod).String()
	l, err := b.c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return err
	}
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return b.c.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		if e, ok := ev.Object.(*corev1.Event); ok {
			exp.Observe(e, at)
		}
	})
	return nil
}

func lostNodePod(toleration int64) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: lostPod, Labels: map[string]string{"app": "bench-nodeloss"}},
		Spec: corev1.PodSpec{
			NodeName:                      lostNode,
			TerminationGracePeriodSeconds: &grace,
			Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &toleration},
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &toleration},
			},
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   "busybox",
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}
