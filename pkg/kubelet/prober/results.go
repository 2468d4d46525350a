package prober

import (
	"sync"

	v1 "k8s.io/api/core/v1"
)

// updateBuffer is upstream's channel size; a full channel blocks the worker
// until the kubelet reads, so the kubelet must drain all three channels.
const updateBuffer = 20

// resultsCache holds the latest result of one probe type per container
// (keyed by the v1 container ID) and announces changes on one channel.
type resultsCache struct {
	probeType ProbeType
	mu        sync.RWMutex
	cache     map[string]Result
	updates   chan Update
}

func newResultsCache(t ProbeType) *resultsCache {
	return &resultsCache{probeType: t, cache: map[string]Result{}, updates: make(chan Update, updateBuffer)}
}

func (r *resultsCache) get(id string) (Result, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res, ok := r.cache[id]
	return res, ok
}

// set stores result and, when it changed, sends an Update. The send gives up
// when abort is closed (the worker was stopped) so a stopped worker never
// hangs on a kubelet that stopped reading.
func (r *resultsCache) set(id string, result Result, pod *v1.Pod, abort <-chan struct{}) {
	r.mu.Lock()
	prev, ok := r.cache[id]
	changed := !ok || prev != result
	r.cache[id] = result
	r.mu.Unlock()
	if !changed {
		return
	}
	select {
	case r.updates <- Update{ContainerID: id, PodUID: pod.UID, Type: r.probeType, Result: result}:
	case <-abort:
	}
}

func (r *resultsCache) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, id)
}
