package kubelet

import (
	"sync"

	"k1s.dev/k1s/pkg/kubelet/status"
	"k8s.io/apimachinery/pkg/types"
)

// reasonCache remembers why each container failed to start at its pod's
// last sync (upstream's ReasonCache); the next status shows it as the
// container's waiting reason and message.
type reasonCache struct {
	mu sync.Mutex
	m  map[types.UID]map[string]status.Reason
}

func newReasonCache() *reasonCache {
	return &reasonCache{m: map[types.UID]map[string]status.Reason{}}
}

// get returns a copy of the pod's reasons.
func (c *reasonCache) get(uid types.UID) map[string]status.Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]status.Reason, len(c.m[uid]))
	for k, v := range c.m[uid] {
		out[k] = v
	}
	return out
}

// update records the start results of a sync: a failure sets the reason, a
// success clears it.
func (c *reasonCache) update(uid types.UID, results []startResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range results {
		if r.reason == "" {
			if m := c.m[uid]; m != nil {
				delete(m, r.name)
			}
			continue
		}
		if c.m[uid] == nil {
			c.m[uid] = map[string]status.Reason{}
		}
		c.m[uid][r.name] = status.Reason{Reason: r.reason, Message: r.message}
	}
}

func (c *reasonCache) remove(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}
