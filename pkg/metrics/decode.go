package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The series of the kubelet's /metrics/resource that metrics-server reads.
const (
	seriesNodeCPU          = "node_cpu_usage_seconds_total"
	seriesNodeMemory       = "node_memory_working_set_bytes"
	seriesContainerCPU     = "container_cpu_usage_seconds_total"
	seriesContainerMemory  = "container_memory_working_set_bytes"
	seriesContainerStarted = "container_start_time_seconds"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
	// ts is the sample's timestamp; zero when the line has none.
	ts time.Time
}

// parseSample parses `name{k="v",...} value [timestamp-ms]`.
func parseSample(line string) (sample, error) {
	var s sample
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		labels, rest, err := parseLabels(line[1:])
		if err != nil {
			return s, fmt.Errorf("%s: %w", s.name, err)
		}
		s.labels, line = labels, rest
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || len(fields) > 2 {
		return s, fmt.Errorf("%s: want a value and an optional timestamp, got %q", s.name, line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("%s: value: %w", s.name, err)
	}
	s.value = v
	if len(fields) == 2 {
		ms, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: timestamp: %w", s.name, err)
		}
		s.ts = time.UnixMilli(ms)
	}
	return s, nil
}

// parseLabels parses `k="v",...}` and returns what follows the brace.
func parseLabels(in string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		in = strings.TrimLeft(in, " \t,")
		if strings.HasPrefix(in, "}") {
			return labels, in[1:], nil
		}
		eq := strings.IndexByte(in, '=')
		if eq <= 0 || eq+1 >= len(in) || in[eq+1] != '"' {
			return nil, "", fmt.Errorf("malformed labels %q", in)
		}
		key := strings.TrimSpace(in[:eq])
		in = in[eq+2:]
		var val strings.Builder
		closed := false
		for i := 0; i < len(in); i++ {
			c := in[i]
			if c == '\\' && i+1 < len(in) {
				i++
				switch in[i] {
				case 'n':
					val.WriteByte('\n')
				default: // \\ and \"
					val.WriteByte(in[i])
				}
				continue
			}
			if c == '"' {
				in, closed = in[i+1:], true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return nil, "", fmt.Errorf("unterminated value of label %q", key)
		}
		labels[key] = val.String()
	}
}

// partial collects a node's or container's series before they make a Point.
type partial struct {
	point          Point
	hasCPU, hasMem bool
}

func (p *partial) complete() (Point, bool) {
	if !p.hasCPU || !p.hasMem {
		return Point{}, false
	}
	return p.point, true
}

// DecodeResourceMetrics reads the kubelet's /metrics/resource text (the
// Prometheus text format) into the points of one node and its containers,
// as metrics-server does. Samples without a timestamp get scrapeTime.
// A node or container lacking its CPU or memory series is left out, and
// so is a pod one of whose containers is incomplete.
func DecodeResourceMetrics(text []byte, nodeName string, scrapeTime time.Time) (*Batch, error) {
	b := NewBatch()
	b.Time = scrapeTime
	var node partial
	containers := map[types.NamespacedName]map[string]*partial{}
	container := func(l map[string]string) *partial {
		ref := types.NamespacedName{Namespace: l["namespace"], Name: l["pod"]}
		cs := containers[ref]
		if cs == nil {
			cs = map[string]*partial{}
			containers[ref] = cs
		}
		c := cs[l["container"]]
		if c == nil {
			c = &partial{}
			cs[l["container"]] = c
		}
		return c
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("parsing metrics of node %s: %w", nodeName, err)
		}
		if s.ts.IsZero() {
			s.ts = scrapeTime
		}
		if math.IsNaN(s.value) || math.IsInf(s.value, 0) || s.value < 0 {
			continue
		}
		switch s.name {
		case seriesNodeCPU:
			node.point.CPU, node.point.Timestamp, node.hasCPU = uint64(math.Round(s.value*1e9)), s.ts, true
		case seriesNodeMemory:
			node.point.Memory, node.hasMem = uint64(s.value), true
		case seriesContainerCPU, seriesContainerMemory, seriesContainerStarted:
			if s.labels["pod"] == "" || s.labels["container"] == "" {
				continue
			}
			c := container(s.labels)
			switch s.name {
			case seriesContainerCPU:
				c.point.CPU, c.point.Timestamp, c.hasCPU = uint64(math.Round(s.value*1e9)), s.ts, true
			case seriesContainerMemory:
				c.point.Memory, c.hasMem = uint64(s.value), true
			default:
				c.point.StartTime = time.Unix(0, int64(s.value*1e9))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if p, ok := node.complete(); ok {
		b.Nodes[nodeName] = p
	}
	for ref, cs := range containers {
		points := make(map[string]Point, len(cs))
		for name, c := range cs {
			p, ok := c.complete()
			if !ok {
				points = nil
				break
			}
			points[name] = p
		}
		if len(points) > 0 {
			b.Pods[ref] = points
			b.PodNodes[ref] = nodeName
		}
	}
	return b, nil
}
