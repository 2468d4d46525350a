package scheduler

import (
	"sort"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// nodeCache holds every node and the pods bound or assumed to each, fed by the
// informers and by the scheduler's own assumptions. Callers hold mu (read)
// while scheduling one pod; informer handlers take it for writing.
type nodeCache struct {
	mu    sync.RWMutex
	nodes map[string]*NodeInfo
	// list is the nodes that exist, sorted by name; rebuilt when nodes come or go.
	list []*NodeInfo
	pods map[types.UID]*cachedPod
}

type cachedPod struct {
	info    *podInfo
	node    string
	assumed bool
}

func newNodeCache() *nodeCache {
	return &nodeCache{nodes: map[string]*NodeInfo{}, pods: map[types.UID]*cachedPod{}}
}

func (c *nodeCache) nodeInfo(name string) *NodeInfo {
	n, ok := c.nodes[name]
	if !ok {
		n = newNodeInfo()
		c.nodes[name] = n
	}
	return n
}

func (c *nodeCache) relist() {
	c.list = c.list[:0]
	for _, n := range c.nodes {
		if n.node != nil {
			c.list = append(c.list, n)
		}
	}
	sort.Slice(c.list, func(i, j int) bool { return c.list[i].node.Name < c.list[j].node.Name })
}

func (c *nodeCache) setNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeInfo(node.Name)
	had := n.node != nil
	n.setNode(node)
	if !had {
		c.relist()
	}
}

func (c *nodeCache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[name]
	if !ok {
		return
	}
	// Pods may still point at a deleted node until pod GC removes them;
	// keep their accounting (upstream keeps such a node info too).
	n.node = nil
	if len(n.pods) == 0 {
		delete(c.nodes, name)
	}
	c.relist()
}

// setPod records an assigned pod as the informer shows it (confirming an
// assumption, or moving it if it landed elsewhere).
func (c *nodeCache) setPod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePodLocked(pod.UID)
	pi := newPodInfo(pod)
	c.nodeInfo(pod.Spec.NodeName).addPod(pi)
	c.pods[pod.UID] = &cachedPod{info: pi, node: pod.Spec.NodeName}
}

func (c *nodeCache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePodLocked(uid)
}

func (c *nodeCache) removePodLocked(uid types.UID) {
	cp, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	if n, ok := c.nodes[cp.node]; ok {
		n.removePod(uid)
		if n.node == nil && len(n.pods) == 0 {
			delete(c.nodes, cp.node)
		}
	}
}

// assume counts pod on node before the binding is confirmed, so the next
// pods see its resources taken. Called with no lock held.
func (c *nodeCache) assume(pi *podInfo, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.pod.UID]; ok {
		return
	}
	c.nodeInfo(node).addPod(pi)
	c.pods[pi.pod.UID] = &cachedPod{info: pi, node: node, assumed: true}
}

// forget drops an assumption whose binding failed.
func (c *nodeCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.pods[uid]; ok && cp.assumed {
		c.removePodLocked(uid)
	}
}

func (c *nodeCache) isAssumed(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp, ok := c.pods[uid]
	return ok && cp.assumed
}
