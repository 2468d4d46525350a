package dns

import (
	"sync"

	mdns "github.com/miekg/dns"
)

// RcodeCounter counts answered queries by response code; its Observe is
// an Options.Observe.
type RcodeCounter struct {
	mu     sync.Mutex
	counts map[string]uint64
}

// Observe counts q.
func (c *RcodeCounter) Observe(q Query) {
	name, ok := mdns.RcodeToString[q.Rcode]
	if !ok {
		name = "OTHER"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]uint64{}
	}
	c.counts[name]++
}

// Counts returns the counts so far, keyed by rcode name ("NOERROR",
// "NXDOMAIN", "SERVFAIL", ...).
func (c *RcodeCounter) Counts() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}
