package metrics

import (
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Point is one measurement of a node or a container.
type Point struct {
	// StartTime is when the node or container started (its cumulative CPU
	// was zero then); zero when unknown.
	StartTime time.Time
	// Timestamp is when CPU was measured.
	Timestamp time.Time
	// CPU is the cumulative CPU time used since StartTime, in core-nanoseconds.
	CPU uint64
	// Memory is the working set, in bytes.
	Memory uint64
}

// Batch is what one scrape of all nodes returned.
type Batch struct {
	// Time is when the scrape started.
	Time  time.Time
	Nodes map[string]Point
	// Pods: the points of each pod's containers, by container name.
	Pods map[types.NamespacedName]map[string]Point
	// PodNodes: the node each pod was scraped from.
	PodNodes map[types.NamespacedName]string
	// Failed are the nodes whose scrape failed.
	Failed []string
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	return &Batch{
		Nodes:    map[string]Point{},
		Pods:     map[types.NamespacedName]map[string]Point{},
		PodNodes: map[types.NamespacedName]string{},
	}
}

// Merge adds b2's points to b; a node or pod already in b keeps its points.
func (b *Batch) Merge(b2 *Batch) {
	for n, p := range b2.Nodes {
		if _, dup := b.Nodes[n]; !dup {
			b.Nodes[n] = p
		}
	}
	for ref, cs := range b2.Pods {
		if _, dup := b.Pods[ref]; !dup {
			b.Pods[ref] = cs
			b.PodNodes[ref] = b2.PodNodes[ref]
		}
	}
	b.Failed = append(b.Failed, b2.Failed...)
}

// freshContainerMinAge: metrics-server's rule for new containers. A
// container that started at least this long before its first point, but
// less than one resolution ago, gets its usage measured from its start
// (cumulative CPU zero) instead of waiting for a second point; younger
// ones would give inaccurate rates.
const freshContainerMinAge = 10 * time.Second

var (
	errStartTimeDecreased = errors.New("unexpected decrease in start time of node/container")
	errCPUDecreased       = errors.New("unexpected decrease in cumulative CPU usage value")
	errNoWindow           = errors.New("points are not apart in time")
)

// usage is the CPU rate between two points of one node or container and
// the last working set, with the timestamp and window they describe.
func usage(last, prev Point) (corev1.ResourceList, metav1.Time, metav1.Duration, error) {
	if last.StartTime.Before(prev.StartTime) {
		return nil, metav1.Time{}, metav1.Duration{}, errStartTimeDecreased
	}
	if last.CPU < prev.CPU {
		return nil, metav1.Time{}, metav1.Duration{}, errCPUDecreased
	}
	window := last.Timestamp.Sub(prev.Timestamp)
	if window <= 0 {
		return nil, metav1.Time{}, metav1.Duration{}, errNoWindow
	}
	nanoCores := float64(last.CPU-prev.CPU) / window.Seconds()
	return corev1.ResourceList{
		corev1.ResourceCPU:    quantity(uint64(nanoCores), resource.DecimalSI, resource.Nano),
		corev1.ResourceMemory: quantity(last.Memory, resource.BinarySI, 0),
	}, metav1.NewTime(last.Timestamp), metav1.Duration{Duration: window}, nil
}

// quantity is val×10^scale as a Quantity (e.g. 1234567n, 10240Ki),
// dropping a digit of precision when val does not fit an int64.
func quantity(val uint64, format resource.Format, scale resource.Scale) resource.Quantity {
	var q resource.Quantity
	if val > math.MaxInt64 {
		q = *resource.NewScaledQuantity(int64(val/10), scale+1)
	} else {
		q = *resource.NewScaledQuantity(int64(val), scale)
	}
	q.Format = format
	return q
}

// Store keeps the last two points of every node and container and turns
// them into NodeMetrics and PodMetrics. Safe for concurrent use.
type Store struct {
	// Resolution is the scrape interval; containers younger than it get
	// a first point at their start (see freshContainerMinAge).
	Resolution time.Duration
	// MaxStale: the points of a node whose scrape failed, and of its pods,
	// are kept while its last point is younger than this, so that one
	// slow scrape on a busy machine does not make `kubectl top` answer
	// "metrics not available yet". Zero forgets them at once, as
	// metrics-server does.
	MaxStale time.Duration

	mu        sync.RWMutex
	lastNodes map[string]Point
	prevNodes map[string]Point
	lastPods  map[types.NamespacedName]map[string]Point
	prevPods  map[types.NamespacedName]map[string]Point
	podNodes  map[types.NamespacedName]string
}

// Add stores a new batch. Nodes and pods missing from it are forgotten
// (after MaxStale for a node whose scrape failed), as metrics-server does:
// a node that went away has no metrics until it has been scraped twice
// again.
func (s *Store) Add(b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()

	lastNodes := make(map[string]Point, len(b.Nodes))
	prevNodes := make(map[string]Point, len(b.Nodes))
	for name, p := range b.Nodes {
		lastNodes[name] = p
		if prev, ok := s.previous(s.lastNodes[name], s.prevNodes[name], p); ok {
			prevNodes[name] = prev
		}
	}

	lastPods := make(map[types.NamespacedName]map[string]Point, len(b.Pods))
	prevPods := make(map[types.NamespacedName]map[string]Point, len(b.Pods))
	for ref, containers := range b.Pods {
		last := make(map[string]Point, len(containers))
		prev := make(map[string]Point, len(containers))
		for name, p := range containers {
			last[name] = p
			if age := p.Timestamp.Sub(p.StartTime); !p.StartTime.IsZero() && age >= freshContainerMinAge && age < s.Resolution {
				prev[name] = Point{StartTime: p.StartTime, Timestamp: p.StartTime}
				continue
			}
			stored, ok := s.lastPods[ref][name]
			if !ok || (!p.StartTime.IsZero() && !p.StartTime.Before(stored.Timestamp)) {
				continue // new, or restarted since the stored point
			}
			if pp, ok := s.previous(stored, s.prevPods[ref][name], p); ok {
				prev[name] = pp
			}
		}
		lastPods[ref] = last
		if len(prev) > 0 {
			prevPods[ref] = prev
		}
	}
	podNodes := make(map[types.NamespacedName]string, len(b.PodNodes))
	for ref, n := range b.PodNodes {
		podNodes[ref] = n
	}

	for _, name := range b.Failed {
		last, ok := s.lastNodes[name]
		if _, scraped := b.Nodes[name]; scraped || !ok || b.Time.Sub(last.Timestamp) >= s.MaxStale {
			continue
		}
		lastNodes[name] = last
		if prev, ok := s.prevNodes[name]; ok {
			prevNodes[name] = prev
		}
		for ref, n := range s.podNodes {
			if _, scraped := b.Pods[ref]; n != name || scraped {
				continue
			}
			lastPods[ref], podNodes[ref] = s.lastPods[ref], n
			if prev, ok := s.prevPods[ref]; ok {
				prevPods[ref] = prev
			}
		}
	}
	s.lastNodes, s.prevNodes, s.lastPods, s.prevPods, s.podNodes = lastNodes, prevNodes, lastPods, prevPods, podNodes
}

// previous picks the point to measure p against: the stored last point
// when p is newer, else the stored previous one when that is older than p.
func (s *Store) previous(last, prev, p Point) (Point, bool) {
	switch {
	case last.Timestamp.IsZero():
		return Point{}, false
	case p.Timestamp.After(last.Timestamp):
		return last, true
	case !prev.Timestamp.IsZero() && prev.Timestamp.Before(p.Timestamp):
		return prev, true
	}
	return Point{}, false
}

// NodeReady reports whether any node has metrics to serve.
func (s *Store) NodeReady() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.prevNodes) > 0
}

// HasNodeMetrics reports whether the node has two points.
func (s *Store) HasNodeMetrics(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.prevNodes[name]
	return ok
}

// NodeMetrics returns the metrics of those nodes that have them, by name.
func (s *Store) NodeMetrics(now time.Time, nodes ...*corev1.Node) []metricsv1beta1.NodeMetrics {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]metricsv1beta1.NodeMetrics, 0, len(nodes))
	for _, n := range nodes {
		last, ok := s.lastNodes[n.Name]
		if !ok {
			continue
		}
		prev, ok := s.prevNodes[n.Name]
		if !ok {
			continue
		}
		u, ts, window, err := usage(last, prev)
		if err != nil {
			continue
		}
		out = append(out, metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.NewTime(now)},
			Timestamp:  ts,
			Window:     window,
			Usage:      u,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PodMetrics returns the metrics of those pods that have them for every
// container, by namespace and name; containers are sorted by name. The
// pod's timestamp and window are those of its oldest container point.
func (s *Store) PodMetrics(now time.Time, pods ...*metav1.PartialObjectMetadata) []metricsv1beta1.PodMetrics {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]metricsv1beta1.PodMetrics, 0, len(pods))
	for _, pod := range pods {
		ref := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		last, ok := s.lastPods[ref]
		if !ok {
			continue
		}
		prev, ok := s.prevPods[ref]
		if !ok {
			continue
		}
		pm := metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, CreationTimestamp: metav1.NewTime(now)},
			Containers: make([]metricsv1beta1.ContainerMetrics, 0, len(last)),
		}
		complete := true
		for name, l := range last {
			p, ok := prev[name]
			if !ok {
				complete = false
				break
			}
			u, ts, window, err := usage(l, p)
			if err != nil {
				continue
			}
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: name, Usage: u})
			// oldest point wins; on a tie the longest window (the oldest
			// previous point), whatever the map's order
			if pm.Timestamp.IsZero() || ts.Before(&pm.Timestamp) || (ts.Equal(&pm.Timestamp) && window.Duration > pm.Window.Duration) {
				pm.Timestamp, pm.Window = ts, window
			}
		}
		if !complete || len(pm.Containers) == 0 {
			continue
		}
		sort.Slice(pm.Containers, func(i, j int) bool { return pm.Containers[i].Name < pm.Containers[j].Name })
		out = append(out, pm)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
