package metrics

import (
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		prev, last Point
		cpu, mem   string
		window     time.Duration
		err        error
	}{
		{
			name: "one core over ten seconds",
			prev: Point{Timestamp: at(0), CPU: 5e9},
			last: Point{Timestamp: at(10), CPU: 15e9, Memory: 10 << 20},
			cpu:  "1", mem: "10Mi", window: 10 * time.Second,
		},
		{
			name: "nanocores and Ki as metrics-server prints them",
			prev: Point{Timestamp: at(0), CPU: 1_000_000},
			last: Point{Timestamp: at(10.002), CPU: 13_345_670, Memory: 4916 * 1024},
			cpu:  "1234320n", mem: "4916Ki", window: 10002 * time.Millisecond,
		},
		{
			name: "idle",
			prev: Point{Timestamp: at(0), CPU: 7e6},
			last: Point{Timestamp: at(15), CPU: 7e6, Memory: 3236 * 1024},
			cpu:  "0", mem: "3236Ki", window: 15 * time.Second,
		},
		{
			name: "memory not a multiple of 1024 stays in bytes",
			prev: Point{Timestamp: at(0)},
			last: Point{Timestamp: at(1), Memory: 1000},
			cpu:  "0", mem: "1k", window: time.Second,
		},
		{
			name: "cpu went backwards",
			prev: Point{Timestamp: at(0), CPU: 10},
			last: Point{Timestamp: at(10), CPU: 5},
			err:  errCPUDecreased,
		},
		{
			name: "restarted between the points",
			prev: Point{StartTime: at(5), Timestamp: at(10)},
			last: Point{StartTime: at(1), Timestamp: at(20)},
			err:  errStartTimeDecreased,
		},
		{
			name: "same timestamp",
			prev: Point{Timestamp: at(10)},
			last: Point{Timestamp: at(10)},
			err:  errNoWindow,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ts, window, err := usage(tt.last, tt.prev)
			if err != tt.err {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			cpu, mem := u[corev1.ResourceCPU], u[corev1.ResourceMemory]
			if cpu.String() != tt.cpu || mem.String() != tt.mem {
				t.Errorf("usage cpu=%s memory=%s, want %s %s", cpu.String(), mem.String(), tt.cpu, tt.mem)
			}
			if window.Duration != tt.window || !ts.Time.Equal(tt.last.Timestamp) {
				t.Errorf("window %s at %s, want %s at %s", window.Duration, ts.Time, tt.window, tt.last.Timestamp)
			}
		})
	}
}

func TestQuantityOverflow(t *testing.T) {
	q := quantity(math.MaxUint64, resource.DecimalSI, resource.Nano)
	if q.Sign() <= 0 || q.Value() != 18446744074 { // ≈ MaxUint64 ns, one digit less precise
		t.Errorf("quantity %s (%d)", q.String(), q.Value())
	}
}

func node(name string, ready bool, labels map[string]string) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}},
	}
}

func pod(ns, name string, labels map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
}

func ref(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// nodeCPU is the node CPU usage the store reports, "" when none.
func nodeUsage(s *Store, name string) (string, time.Duration) {
	ms := s.NodeMetrics(t0, node(name, true, nil))
	if len(ms) == 0 {
		return "", 0
	}
	q := ms[0].Usage[corev1.ResourceCPU]
	return q.String(), ms[0].Window.Duration
}

func TestStoreNodes(t *testing.T) {
	tests := []struct {
		name    string
		batches []map[string]Point
		cpu     string
		window  time.Duration
	}{
		{
			name:    "one scrape: nothing yet",
			batches: []map[string]Point{{"n1": {Timestamp: at(0), CPU: 1e9, Memory: 1024}}},
		},
		{
			name: "two scrapes: the rate between them",
			batches: []map[string]Point{
				{"n1": {Timestamp: at(0), CPU: 1e9, Memory: 1024}},
				{"n1": {Timestamp: at(2), CPU: 2e9, Memory: 1024}},
			},
			cpu: "500m", window: 2 * time.Second,
		},
		{
			name: "three scrapes: the last two",
			batches: []map[string]Point{
				{"n1": {Timestamp: at(0), CPU: 1e9, Memory: 1024}},
				{"n1": {Timestamp: at(2), CPU: 2e9, Memory: 1024}},
				{"n1": {Timestamp: at(12), CPU: 12e9, Memory: 1024}},
			},
			cpu: "1", window: 10 * time.Second,
		},
		{
			name: "a repeated point keeps the previous one",
			batches: []map[string]Point{
				{"n1": {Timestamp: at(0), CPU: 1e9, Memory: 1024}},
				{"n1": {Timestamp: at(10), CPU: 3e9, Memory: 1024}},
				{"n1": {Timestamp: at(10), CPU: 3e9, Memory: 1024}},
			},
			cpu: "200m", window: 10 * time.Second,
		},
		{
			name: "a failed scrape forgets the node",
			batches: []map[string]Point{
				{"n1": {Timestamp: at(0), CPU: 1e9, Memory: 1024}},
				{"n1": {Timestamp: at(10), CPU: 3e9, Memory: 1024}},
				{},
				{"n1": {Timestamp: at(30), CPU: 5e9, Memory: 1024}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Resolution: Resolution}
			for _, nodes := range tt.batches {
				b := NewBatch()
				b.Nodes = nodes
				s.Add(b)
			}
			cpu, window := nodeUsage(s, "n1")
			if cpu != tt.cpu || window != tt.window {
				t.Errorf("cpu %q window %s, want %q %s", cpu, window, tt.cpu, tt.window)
			}
			if got := s.HasNodeMetrics("n1"); got != (tt.cpu != "") {
				t.Errorf("HasNodeMetrics %v", got)
			}
		})
	}
}

func TestStoreNodeMetricsObject(t *testing.T) {
	s := &Store{Resolution: Resolution}
	for i, cpu := range []uint64{1e9, 3e9} {
		b := NewBatch()
		b.Nodes["b"] = Point{Timestamp: at(float64(10 * i)), CPU: cpu, Memory: 2 << 30}
		b.Nodes["a"] = Point{Timestamp: at(float64(10 * i)), CPU: cpu, Memory: 1 << 30}
		s.Add(b)
	}
	now := at(30)
	ms := s.NodeMetrics(now, node("b", true, map[string]string{"k": "v"}), node("a", true, nil), node("gone", true, nil))
	if len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" {
		t.Fatalf("nodes %v", ms)
	}
	m := ms[1]
	mem := m.Usage[corev1.ResourceMemory]
	if m.Labels["k"] != "v" || !m.CreationTimestamp.Time.Equal(now) || !m.Timestamp.Time.Equal(at(10)) || mem.String() != "2Gi" {
		t.Errorf("node metrics %+v", m)
	}
}

func TestStorePods(t *testing.T) {
	c := func(start, ts float64, cpu uint64) Point {
		p := Point{Timestamp: at(ts), CPU: cpu, Memory: 1 << 20}
		if start >= 0 {
			p.StartTime = at(start)
		}
		return p
	}
	type podPoints = map[string]Point
	tests := []struct {
		name    string
		batches []podPoints
		want    map[string]string // container → cpu
		window  time.Duration
	}{
		{
			name:    "one scrape of an old container: nothing yet",
			batches: []podPoints{{"a": c(-100, 0, 1e9)}},
		},
		{
			name:    "two scrapes",
			batches: []podPoints{{"a": c(-100, 0, 1e9), "b": c(-100, 0, 0)}, {"a": c(-100, 10, 6e9), "b": c(-100, 10, 0)}},
			want:    map[string]string{"a": "500m", "b": "0"},
			window:  10 * time.Second,
		},
		{
			name:    "unknown start time",
			batches: []podPoints{{"a": c(-1, 0, 1e9)}, {"a": c(-1, 10, 2e9)}},
			want:    map[string]string{"a": "100m"},
			window:  10 * time.Second,
		},
		{
			name:    "fresh container is measured from its start",
			batches: []podPoints{{"a": c(0, 12, 6e9)}},
			want:    map[string]string{"a": "500m"},
			window:  12 * time.Second,
		},
		{
			name:    "too fresh a container waits for a second point",
			batches: []podPoints{{"a": c(0, 5, 1e9)}},
		},
		{
			name:    "too fresh, then scraped again",
			batches: []podPoints{{"a": c(0, 5, 1e9)}, {"a": c(0, 25, 3e9)}},
			want:    map[string]string{"a": "100m"},
			window:  20 * time.Second,
		},
		{
			name:    "restarted container starts over",
			batches: []podPoints{{"a": c(-100, 0, 9e9)}, {"a": c(5, 30, 1e9)}},
		},
		{
			name:    "a container without a previous point hides the pod",
			batches: []podPoints{{"a": c(-100, 0, 1e9)}, {"a": c(-100, 10, 2e9), "b": c(-100, 10, 1e9)}},
		},
		{
			name:    "the pod's window is its oldest container point's",
			batches: []podPoints{{"a": c(-100, 0, 1e9), "b": c(-100, 1, 1e9)}, {"a": c(-100, 10, 2e9), "b": c(-100, 10, 1e9)}},
			want:    map[string]string{"a": "100m", "b": "0"},
			window:  10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Resolution: Resolution}
			for _, pts := range tt.batches {
				b := NewBatch()
				b.Pods[ref("ns", "p")] = pts
				s.Add(b)
			}
			ms := s.PodMetrics(t0, pod("ns", "p", nil))
			if tt.want == nil {
				if len(ms) != 0 {
					t.Fatalf("want no metrics, got %+v", ms)
				}
				return
			}
			if len(ms) != 1 {
				t.Fatalf("want metrics, got none")
			}
			got := map[string]string{}
			var names []string
			for _, cm := range ms[0].Containers {
				q := cm.Usage[corev1.ResourceCPU]
				got[cm.Name] = q.String()
				names = append(names, cm.Name)
			}
			if len(got) != len(tt.want) {
				t.Errorf("containers %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("container %s cpu %s, want %s", k, got[k], v)
				}
			}
			for i := 1; i < len(names); i++ {
				if names[i-1] > names[i] {
					t.Errorf("containers not sorted: %v", names)
				}
			}
			if ms[0].Window.Duration != tt.window {
				t.Errorf("window %s, want %s", ms[0].Window.Duration, tt.window)
			}
		})
	}
}

func TestStorePodsSortedAndFiltered(t *testing.T) {
	s := &Store{Resolution: Resolution}
	for i := range 2 {
		b := NewBatch()
		for _, r := range []types.NamespacedName{ref("b", "x"), ref("a", "y"), ref("a", "x")} {
			b.Pods[r] = map[string]Point{"c": {Timestamp: at(float64(10 * i)), CPU: uint64(i) * 1e9, Memory: 1024}}
		}
		s.Add(b)
	}
	ms := s.PodMetrics(t0, pod("b", "x", map[string]string{"app": "web"}), pod("a", "y", nil), pod("a", "x", nil), pod("a", "none", nil))
	var got []string
	for _, m := range ms {
		got = append(got, m.Namespace+"/"+m.Name)
	}
	if want := []string{"a/x", "a/y", "b/x"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("pods %v, want %v", got, want)
	}
	if ms[2].Labels["app"] != "web" {
		t.Errorf("labels %v", ms[2].Labels)
	}
}

func TestStoreKeepsAFailedNodeForAWhile(t *testing.T) {
	scrape := func(sec float64, failed ...string) *Batch {
		b := NewBatch()
		b.Time, b.Failed = at(sec), failed
		for _, n := range []string{"n1", "n2"} {
			if len(failed) > 0 && failed[0] == n {
				continue
			}
			b.Nodes[n] = Point{Timestamp: at(sec), CPU: uint64(sec) * 1e9, Memory: 1024}
			r := ref("ns", "p-"+n)
			b.Pods[r] = map[string]Point{"c": {Timestamp: at(sec), CPU: uint64(sec) * 1e8, Memory: 1024}}
			b.PodNodes[r] = n
		}
		return b
	}
	has := func(s *Store) (nodes, pods int) {
		return len(s.NodeMetrics(t0, node("n1", true, nil), node("n2", true, nil))),
			len(s.PodMetrics(t0, pod("ns", "p-n1", nil), pod("ns", "p-n2", nil)))
	}
	tests := []struct {
		name      string
		maxStale  time.Duration
		batches   []*Batch
		nodes     int
		pods      int
		n1Window  time.Duration
		n1Present bool
	}{
		{"both scraped", 30 * time.Second, []*Batch{scrape(0), scrape(10)}, 2, 2, 10 * time.Second, true},
		{"n1 failed once: kept", 30 * time.Second, []*Batch{scrape(0), scrape(10), scrape(20, "n1")}, 2, 2, 10 * time.Second, true},
		{"n1 back after a failure", 30 * time.Second, []*Batch{scrape(0), scrape(10), scrape(20, "n1"), scrape(25)}, 2, 2, 15 * time.Second, true},
		{"n1 failing too long: forgotten", 30 * time.Second, []*Batch{scrape(0), scrape(10), scrape(20, "n1"), scrape(40, "n1")}, 1, 1, 0, false},
		{"no staleness allowed, as metrics-server", 0, []*Batch{scrape(0), scrape(10), scrape(20, "n1")}, 1, 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Resolution: Resolution, MaxStale: tt.maxStale}
			for _, b := range tt.batches {
				s.Add(b)
			}
			if nodes, pods := has(s); nodes != tt.nodes || pods != tt.pods {
				t.Errorf("%d nodes and %d pods with metrics, want %d and %d", nodes, pods, tt.nodes, tt.pods)
			}
			ms := s.NodeMetrics(t0, node("n1", true, nil))
			if (len(ms) == 1) != tt.n1Present {
				t.Fatalf("n1 metrics %v", ms)
			}
			if tt.n1Present && ms[0].Window.Duration != tt.n1Window {
				t.Errorf("n1 window %s, want %s", ms[0].Window.Duration, tt.n1Window)
			}
		})
	}
}
