package kubelet

import (
	"context"
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
)

// The stats summary lists each runtime once and asks for all its running
// containers' stats in one call; neither it nor exec's container lookup
// counts as a sync: the PLEG still sees the changes they saw.
func TestSummaryAndLookupsLeavePLEGAlone(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"one", "two", "three"} {
		h.create(podWith(name, v1.RestartPolicyAlways, nil, "main", "side"))
		h.waitStatus(name, "phase=Running")
	}
	ids := h.rt.Running("main")
	if len(ids) != 3 {
		t.Fatalf("running: %v", ids)
	}
	// as if the PLEG had not yet seen the container start
	h.k.pleg.mu.Lock()
	rec := h.k.pleg.containers[ids[0]]
	rec.state = runtime.ContainerCreated
	h.k.pleg.containers[ids[0]] = rec
	h.k.pleg.mu.Unlock()

	before := h.callCount("ListContainerStats")
	sum, err := h.k.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := h.callCount("ListContainerStats") - before; n != 1 {
		t.Errorf("%d ListContainerStats calls for one summary, want 1", n)
	}
	if len(sum.Pods) != 3 {
		t.Fatalf("%d pods in the summary", len(sum.Pods))
	}
	for _, p := range sum.Pods {
		if len(p.Containers) != 2 || p.CPU == nil || *p.CPU.UsageCoreNanoSeconds != 2e6 || *p.Memory.WorkingSetBytes != 2<<20 {
			t.Errorf("pod %s: %d containers, cpu %+v", p.PodRef.Name, len(p.Containers), p.CPU)
		}
	}
	for _, name := range []string{"one", "two", "three"} {
		if err := h.k.CheckRunning(context.Background(), h.get(name), "main"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	h.k.pleg.mu.Lock()
	got := h.k.pleg.containers[ids[0]].state
	h.k.pleg.mu.Unlock()
	if got != runtime.ContainerCreated {
		t.Errorf("the PLEG's record became %s: a change seen by the summary or a lookup would never wake the pod", got)
	}
}
