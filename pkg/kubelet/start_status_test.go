package kubelet

import (
	"strings"
	"testing"
	"time"

	fakeruntime "k1s.dev/k1s/pkg/kubelet/runtime/fake"
	v1 "k8s.io/api/core/v1"
)

// A container that exits as it starts is still shown running once per
// attempt, then terminated (trace 03: init-failed-test, `hello.sh` not
// found, is running/ for each attempt on the reference cluster).
func TestStartShownRunningBeforeExit(t *testing.T) {
	h := newHarness(t)
	h.rt.SetBehavior("init", fakeruntime.Behavior{ExitOnStart: true, ExitCode: 127})
	h.create(podWith("fast", v1.RestartPolicyAlways, []string{"init"}, "app"))
	h.waitStatus("fast", "init:init=terminated/Error:127 ready=false started=false restarts=1")
	h.step(10 * time.Second)
	h.waitStatus("fast", "init:init=terminated/Error:127 ready=false started=false restarts=2")
	// the watch that records the history may trail the status
	h.eventually("history of attempt 2", func() bool {
		return h.historyHas("fast", "init:init=terminated/Error:127 ready=false started=false restarts=2")
	})
	for r := 0; r <= 2; r++ {
		running := "init:init=running/ ready=false started=true restarts=" + string(rune('0'+r))
		terminated := "init:init=terminated/Error:127 ready=false started=false restarts=" + string(rune('0'+r))
		ri, ti := -1, -1
		for i, s := range h.history("fast") {
			if ri < 0 && strings.Contains(s, running) {
				ri = i
			}
			if ti < 0 && strings.Contains(s, terminated) {
				ti = i
			}
		}
		if ri < 0 || ti < 0 || ri > ti {
			t.Errorf("attempt %d: running at %d, terminated at %d:\n  %s", r, ri, ti, strings.Join(h.history("fast"), "\n  "))
		}
	}
}
