package kubelet

import (
	"context"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// relistPeriod: how often the runtimes are listed to catch changes their
// events missed (upstream's generic PLEG relists every second).
const relistPeriod = time.Second

// pleg turns container state changes into pod syncs (upstream's pod
// lifecycle event generator): runtime events wake a pod at once, and a
// periodic relist catches anything an event missed. Both record the last
// state seen per container, so one change wakes its pod once.
type pleg struct {
	k *Kubelet

	mu         sync.Mutex
	sandboxes  map[string]types.UID
	containers map[string]plegRecord
}

type plegRecord struct {
	uid   types.UID
	state runtime.ContainerState
}

func newPLEG(k *Kubelet) *pleg {
	return &pleg{k: k, sandboxes: map[string]types.UID{}, containers: map[string]plegRecord{}}
}

func (p *pleg) knowSandbox(id string, uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sandboxes[id] = uid
}

// knowContainer records a container the kubelet just created.
func (p *pleg) knowContainer(id string, uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.containers[id]; !ok {
		p.containers[id] = plegRecord{uid: uid, state: runtime.ContainerCreated}
	}
}

// forgetContainer drops a container the kubelet removed itself (no wake).
func (p *pleg) forgetContainer(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.containers, id)
}

func (p *pleg) forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, u := range p.sandboxes {
		if u == uid {
			delete(p.sandboxes, id)
		}
	}
	for id, r := range p.containers {
		if r.uid == uid {
			delete(p.containers, id)
		}
	}
}

// observe records a container's state and reports whether it changed.
func (p *pleg) observe(id string, uid types.UID, st runtime.ContainerState) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.containers[id]
	if ok && r.state == st {
		return false
	}
	p.containers[id] = plegRecord{uid: uid, state: st}
	return true
}

func (p *pleg) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, rt := range p.k.runtimes.all() {
		wg.Add(1)
		go func(rt runtime.Runtime) {
			defer wg.Done()
			p.watch(ctx, rt)
		}(rt)
	}
	t := p.k.clock.NewTicker(relistPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C():
			p.relist(ctx)
		}
	}
}

func (p *pleg) watch(ctx context.Context, rt runtime.Runtime) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-rt.Events():
			p.handle(ctx, rt, ev)
		}
	}
}

func (p *pleg) handle(ctx context.Context, rt runtime.Runtime, ev runtime.ContainerEvent) {
	c, err := rt.ContainerStatus(ctx, ev.ContainerID)
	if err != nil {
		// Removed. As upstream's ContainerRemoved, not a reason to sync:
		// the kubelet removed it itself (pruning old instances), and a
		// sync now would write a crash-looping container's
		// CrashLoopBackOff at once instead of when its back-off ends.
		p.mu.Lock()
		delete(p.containers, ev.ContainerID)
		p.mu.Unlock()
		return
	}
	uid := types.UID(c.Labels[podstate.LabelPodUID])
	if uid == "" {
		p.mu.Lock()
		uid = p.sandboxes[c.SandboxID]
		p.mu.Unlock()
	}
	if uid != "" && p.observe(c.ID, uid, c.State) {
		p.k.workers.wake(uid)
	}
}

func (p *pleg) relist(ctx context.Context) {
	seen := map[string]bool{}
	for _, rt := range p.k.runtimes.all() {
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{})
		if err != nil {
			continue
		}
		for _, c := range cs {
			uid := types.UID(c.Labels[podstate.LabelPodUID])
			if uid == "" {
				continue
			}
			seen[c.ID] = true
			if p.observe(c.ID, uid, c.State) {
				p.k.workers.wake(uid)
			}
		}
	}
	// containers gone since the last relist are forgotten without a sync
	// (upstream's ContainerRemoved is not sync-worthy)
	p.mu.Lock()
	for id := range p.containers {
		if !seen[id] {
			delete(p.containers, id)
		}
	}
	p.mu.Unlock()
}
