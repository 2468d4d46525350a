package kubelet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestCrashLoopStatusDuringBackOff: upstream 1.37 writes CrashLoopBackOff
// only at the sync before the restart (traces 06 and 03: Error, then
// CrashLoopBackOff about one back-off later, 0.6–1.3 s before the
// restart; we write it crashLoopNotice before the back-off ends). No
// sync may run in between, in the first back-off as in the later ones,
// when a third exited instance gets pruned (its ContainerDeletedEvent is
// not a reason to sync, as upstream's PLEG ContainerRemoved).
func TestCrashLoopStatusDuringBackOff(t *testing.T) {
	tests := []struct {
		name      string
		pod       *v1.Pod
		container string
		code      int32
	}{
		{"regular container", fidelityPod("crasher", v1.RestartPolicyAlways, "busybox", nil, "crasher"), "crasher", 3},
		{"init container", podWith("myapp-pod", v1.RestartPolicyAlways, []string{"init-failed-test"}, "myapp-container"), "init-failed-test", 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(tt.pod)
			name := tt.pod.Name
			h.exitRunning(name, tt.container, 0, tt.code)
			for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
				restarts := i + 1
				h.exitRunning(name, tt.container, restarts, tt.code)
				errored := fmt.Sprintf("%s=terminated/Error:%d ready=false started=false restarts=%d", tt.container, tt.code, restarts)
				if !h.historyHas(name, errored) {
					t.Fatalf("no %q:\n  %s", errored, strings.Join(h.history(name), "\n  "))
				}
				// the whole back-off but its last notice: still Error
				h.step(d - crashLoopNotice - time.Millisecond)
				h.settle()
				if st := h.status(name); !strings.Contains(st, errored) {
					t.Fatalf("back-off %s: status left Error before the back-off ended: %s", d, st)
				}
				for _, s := range h.history(name) {
					if strings.Contains(s, "waiting/CrashLoopBackOff") && strings.Contains(s, fmt.Sprintf("restarts=%d", restarts)) {
						t.Fatalf("back-off %s: CrashLoopBackOff written before the back-off ended:\n  %s", d, strings.Join(h.history(name), "\n  "))
					}
				}
				// a second before it ends: CrashLoopBackOff, no restart yet
				h.step(time.Millisecond)
				h.waitStatus(name, fmt.Sprintf("%s=waiting/CrashLoopBackOff (back-off %s ", tt.container, d))
				if h.callCount("StartContainer "+tt.container) != restarts+1 {
					t.Fatalf("back-off %s: restarted before it ended", d)
				}
				// the back-off ends: the restart
				h.step(crashLoopNotice)
				h.waitStatus(name, fmt.Sprintf("%s=running/", tt.container))
				if !h.historyHas(name, fmt.Sprintf("%s=waiting/CrashLoopBackOff (back-off %s ", tt.container, d), fmt.Sprintf("restarts=%d", restarts)) {
					t.Fatalf("back-off %s: no CrashLoopBackOff at its end:\n  %s", d, strings.Join(h.history(name), "\n  "))
				}
			}
			// A back-off longer than the resync period: the pod is synced
			// a resync period after the exit (no jitter delays it) and
			// shows CrashLoopBackOff until the back-off ends (trace 12:
			// 70 s after the exit, restart at 84 s).
			h.exitRunning(name, tt.container, 4, tt.code)
			h.waitStatus(name, fmt.Sprintf("%s=terminated/Error:%d ready=false started=false restarts=4", tt.container, tt.code))
			h.step(resyncInterval)
			h.waitStatus(name, fmt.Sprintf("%s=waiting/CrashLoopBackOff (back-off 1m20s ", tt.container))
			h.step(80*time.Second - resyncInterval)
			h.waitStatus(name, fmt.Sprintf("%s=running/ ready=", tt.container))
		})
	}
}
