package kubelet

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/kubelet/runner"
)

// stage of a pod in its worker (upstream's syncing → terminating →
// terminated, plus finished: nothing left to do until the pod is removed).
type stage int

const (
	stageSync stage = iota
	stageTerminating
	stageTerminated
	stageFinished
)

func (s stage) String() string {
	return [...]string{"sync", "terminating", "terminated", "finished"}[s]
}

// Step results that are not a requeue delay.
const (
	waitForWake time.Duration = -1 // no timer: sleep until woken
	workerDone  time.Duration = -2 // the pod is cleaned up: exit
)

// podWorker owns one pod: a goroutine running level-triggered steps, woken
// by pod updates, runtime events, probe results and its own timer.
type podWorker struct {
	uid  types.UID
	wake chan struct{}

	mu      sync.Mutex
	pod     *v1.Pod
	gone    bool // deleted from the API server
	stage   stage
	stopped bool // all containers stopped: a terminal phase may be written
	// termCancel interrupts a termination in progress (grace shortened).
	termCancel context.CancelFunc
	termGrace  *int64
}

func (w *podWorker) snapshot() (*v1.Pod, bool, stage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone, w.stage
}

func (w *podWorker) setStage(s stage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stage = s
}

func (w *podWorker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// podWorkers is the set of pod workers.
type podWorkers struct {
	k *Kubelet
	// runners run the sync steps: workers park with small stacks.
	runners runner.Pool

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ctx     context.Context
	wg      sync.WaitGroup
}

func newPodWorkers(k *Kubelet) *podWorkers {
	return &podWorkers{k: k, workers: map[types.UID]*podWorker{}}
}

// start runs the workers of the pods seen so far and of every pod to come.
func (p *podWorkers) start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	for _, w := range p.workers {
		p.launch(w)
	}
}

func (p *podWorkers) launch(w *podWorker) {
	p.wg.Add(1)
	go p.run(w)
}

// wait returns once every worker goroutine exited (after ctx is done).
func (p *podWorkers) wait() { p.wg.Wait() }

// update records the latest pod object and wakes its worker.
func (p *podWorkers) update(pod *v1.Pod) { p.set(pod, true) }

// updateQuiet records the latest pod object (a status-only change) without
// a sync.
func (p *podWorkers) updateQuiet(pod *v1.Pod) { p.set(pod, false) }

func (p *podWorkers) set(pod *v1.Pod, wake bool) {
	p.mu.Lock()
	w, ok := p.workers[pod.UID]
	if !ok {
		if !wake {
			p.mu.Unlock()
			return
		}
		w = &podWorker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod}
		p.workers[pod.UID] = w
		if p.ctx != nil {
			p.launch(w)
		}
		p.mu.Unlock()
		w.signal()
		return
	}
	p.mu.Unlock()

	w.mu.Lock()
	old := w.pod
	w.pod = pod
	// A shorter grace period interrupts a termination in progress.
	if w.termCancel != nil && w.termGrace != nil && pod.DeletionGracePeriodSeconds != nil &&
		*pod.DeletionGracePeriodSeconds < *w.termGrace {
		w.termCancel()
	}
	w.mu.Unlock()
	if wake || (old.DeletionTimestamp == nil && pod.DeletionTimestamp != nil) {
		w.signal()
	}
}

// remove marks the pod deleted from the API server.
func (p *podWorkers) remove(pod *v1.Pod) {
	p.mu.Lock()
	w, ok := p.workers[pod.UID]
	p.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.gone = true
	if pod.DeletionGracePeriodSeconds != nil || w.pod.DeletionTimestamp == nil {
		w.pod = pod
	}
	if w.termCancel != nil {
		w.termCancel()
	}
	w.mu.Unlock()
	w.signal()
}

// wake makes the pod's worker sync now.
func (p *podWorkers) wake(uid types.UID) {
	p.mu.Lock()
	w, ok := p.workers[uid]
	p.mu.Unlock()
	if ok {
		w.signal()
	}
}

func (p *podWorkers) get(uid types.UID) (*podWorker, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.workers[uid]
	return w, ok
}

// known reports the pods that have a worker.
func (p *podWorkers) known() map[types.UID]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[types.UID]struct{}, len(p.workers))
	for uid := range p.workers {
		out[uid] = struct{}{}
	}
	return out
}

// couldHaveRunningContainers: false once the pod's termination stopped its
// containers (the status manager then writes a terminal phase).
func (p *podWorkers) couldHaveRunningContainers(uid types.UID) bool {
	w, ok := p.get(uid)
	if !ok {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.stopped
}

// podStage tells a pod's stage (tests, server).
func (p *podWorkers) podStage(uid types.UID) (stage, bool) {
	w, ok := p.get(uid)
	if !ok {
		return 0, false
	}
	_, _, s := w.snapshot()
	return s, true
}

// stepOnRunner runs one step of the pod's sync on a runner goroutine (see
// package runner): a sync grows a stack to tens of kB, which a parked
// worker would otherwise keep between syncs (one per pod).
func (p *podWorkers) stepOnRunner(ctx context.Context, w *podWorker) (d time.Duration) {
	p.runners.Do(func() { d = p.k.step(ctx, w) })
	return d
}

func (p *podWorkers) run(w *podWorker) {
	defer p.wg.Done()
	ctx := p.ctx
	clk := p.k.clock
	for {
		// drain a pending wake: this step sees the latest state anyway
		select {
		case <-w.wake:
		default:
		}
		d := p.stepOnRunner(ctx, w)
		if d == workerDone {
			p.mu.Lock()
			delete(p.workers, w.uid)
			p.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		if d == 0 {
			continue
		}
		var timer clock.Timer
		var tc <-chan time.Time
		if d > 0 {
			timer = clk.NewTimer(d)
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}
