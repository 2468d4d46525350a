package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	kubeletserver "k1s.dev/k1s/pkg/kubelet/server"
)

func TestParseSample(t *testing.T) {
	tests := []struct {
		line   string
		name   string
		labels map[string]string
		value  float64
		ts     time.Time
		err    bool
	}{
		{line: `node_cpu_usage_seconds_total 123.5 1764151200000`, name: "node_cpu_usage_seconds_total", value: 123.5, ts: time.UnixMilli(1764151200000)},
		{line: `resource_scrape_error 0`, name: "resource_scrape_error"},
		{
			line:   `container_memory_working_set_bytes{container="c",namespace="ns",pod="p"} 4.194304e+06 1764151200123`,
			name:   "container_memory_working_set_bytes",
			labels: map[string]string{"container": "c", "namespace": "ns", "pod": "p"},
			value:  4194304, ts: time.UnixMilli(1764151200123),
		},
		{
			line:   `x{a="with \"quotes\" and \\ and \n", b="}{,"} 1`,
			name:   "x",
			labels: map[string]string{"a": "with \"quotes\" and \\ and \n", "b": "}{,"},
			value:  1,
		},
		{line: `x{} 2`, name: "x", labels: map[string]string{}, value: 2},
		{line: `x{a="b",} 2`, name: "x", labels: map[string]string{"a": "b"}, value: 2},
		{line: `x`, err: true},
		{line: `x{a="b"`, err: true},
		{line: `x{a=b} 1`, err: true},
		{line: `x one`, err: true},
		{line: `x 1 later`, err: true},
		{line: `x 1 2 3`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s, err := parseSample(tt.line)
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if s.name != tt.name || s.value != tt.value || !s.ts.Equal(tt.ts) || len(s.labels) != len(tt.labels) {
				t.Errorf("got %+v", s)
			}
			for k, v := range tt.labels {
				if s.labels[k] != v {
					t.Errorf("label %s=%q, want %q", k, s.labels[k], v)
				}
			}
		})
	}
}

func TestDecodeResourceMetrics(t *testing.T) {
	scrape := time.UnixMilli(1764151209000)
	text := `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="burn",namespace="default",pod="burner"} 12.34 1764151200000
container_cpu_usage_seconds_total{container="idle",namespace="default",pod="burner"} 0 1764151200000
container_cpu_usage_seconds_total{container="main",namespace="other",pod="half"} 1 1764151200000
container_cpu_usage_seconds_total{container="main",namespace="other",pod="notime"} 2
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="burn",namespace="default",pod="burner"} 1048576 1764151200000
container_memory_working_set_bytes{container="idle",namespace="default",pod="burner"} 3.3136640e+06 1764151200000
container_memory_working_set_bytes{container="main",namespace="other",pod="notime"} 2048
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="burn",namespace="default",pod="burner"} 1764151100 1764151100000
container_start_time_seconds{container="main",namespace="other",pod="half"} 1764151100 1764151100000
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 5000.5 1764151200500
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 3.370864e+09 1764151200500
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="burner"} 12.34 1764151200000
# TYPE resource_scrape_error gauge
resource_scrape_error 0
`
	b, err := DecodeResourceMetrics([]byte(text), "vm", scrape)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := b.Nodes["vm"]
	if !ok || n.CPU != 5000500000000 || n.Memory != 3370864000 || !n.Timestamp.Equal(time.UnixMilli(1764151200500)) {
		t.Errorf("node %+v", n)
	}
	burner := b.Pods[ref("default", "burner")]
	if len(burner) != 2 {
		t.Fatalf("burner %+v", burner)
	}
	if c := burner["burn"]; c.CPU != 12340000000 || c.Memory != 1<<20 || !c.StartTime.Equal(time.Unix(1764151100, 0)) || !c.Timestamp.Equal(time.UnixMilli(1764151200000)) {
		t.Errorf("burn %+v", c)
	}
	if c := burner["idle"]; c.CPU != 0 || c.Memory != 3313664 || !c.StartTime.IsZero() {
		t.Errorf("idle %+v", c)
	}
	if _, ok := b.Pods[ref("other", "half")]; ok {
		t.Errorf("a pod whose container has no memory series is dropped")
	}
	if c := b.Pods[ref("other", "notime")]["main"]; !c.Timestamp.Equal(scrape) || c.Memory != 2048 {
		t.Errorf("samples without timestamps get the scrape time: %+v", c)
	}
	if len(b.Pods) != 2 {
		t.Errorf("pods %v", b.Pods)
	}

	if _, err := DecodeResourceMetrics([]byte("node_cpu_usage_seconds_total{\n"), "vm", scrape); err == nil || !strings.Contains(err.Error(), "vm") {
		t.Errorf("malformed text: %v", err)
	}
	empty, err := DecodeResourceMetrics([]byte("resource_scrape_error 1\n"), "vm", scrape)
	if err != nil || len(empty.Nodes) != 0 || len(empty.Pods) != 0 {
		t.Errorf("empty: %+v %v", empty, err)
	}
}

// kubeletHost is a kubelet whose stats are fixed.
type kubeletHost struct{ sum *statsapi.Summary }

func (kubeletHost) GetPod(string, string) (*v1.Pod, bool) { return nil, false }
func (kubeletHost) ListPods() []*v1.Pod                   { return nil }
func (kubeletHost) ContainerLogs(context.Context, *v1.Pod, string, *v1.PodLogOptions, io.Writer, io.Writer) error {
	return nil
}
func (kubeletHost) CheckRunning(context.Context, *v1.Pod, string) error { return nil }
func (kubeletHost) Exec(context.Context, *v1.Pod, string, []string, runtime.Streams) error {
	return nil
}
func (kubeletHost) Attach(context.Context, *v1.Pod, string, runtime.Streams) error { return nil }
func (kubeletHost) PortForward(context.Context, *v1.Pod, int32, io.ReadWriteCloser) error {
	return nil
}
func (h kubeletHost) Summary(context.Context) (*statsapi.Summary, error) { return h.sum, nil }

// TestDecodesOurKubelet pins the contract with pkg/kubelet/server: what
// its /metrics/resource writes is what the store gets.
func TestDecodesOurKubelet(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	now := metav1.NewTime(time.UnixMilli(1764151200123))
	started := metav1.NewTime(time.Unix(1764151100, 0))
	sum := &statsapi.Summary{
		Node: statsapi.NodeStats{
			NodeName: "vm",
			CPU:      &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u(987654321000)},
			Memory:   &statsapi.MemoryStats{Time: now, WorkingSetBytes: u(2 << 30)},
		},
		Pods: []statsapi.PodStats{{
			PodRef: statsapi.PodReference{Namespace: "ns", Name: "web"},
			Containers: []statsapi.ContainerStats{
				{Name: "app", StartTime: started, CPU: &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u(1230000000)}, Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u(4096 * 1024)}},
				{Name: "sidecar", StartTime: started, CPU: &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u(0)}, Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u(1024 * 1024)}},
			},
		}},
	}
	srv := kubeletserver.New(kubeletHost{sum}, kubeletserver.Options{})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/resource", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics/resource: %d %s", rec.Code, rec.Body)
	}
	b, err := DecodeResourceMetrics(rec.Body.Bytes(), "vm", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Nodes["vm"]; n.CPU != 987654321000 || n.Memory != 2<<30 || !n.Timestamp.Equal(now.Time) {
		t.Errorf("node %+v", n)
	}
	web := b.Pods[ref("ns", "web")]
	if c := web["app"]; c.CPU != 1230000000 || c.Memory != 4096*1024 || !c.StartTime.Equal(started.Time) || !c.Timestamp.Equal(now.Time) {
		t.Errorf("app %+v", c)
	}
	if c, ok := web["sidecar"]; !ok || c.CPU != 0 {
		t.Errorf("sidecar %+v", c)
	}
}
