package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

// appMemory is what one `k1s app` pod is assumed to cost (its RssAnon is
// ~16 MB, plus its shim and page tables) when deciding how many pods the
// machine can take.
const appMemory = 24 << 20

// step is one level of the probe load: what was measured with n pods.
type step struct {
	n, ready            int
	readyIn             time.Duration
	allReady            bool
	agent, self, probes time.Duration // CPU per second of wall time
	rss                 int64         // RSS minus before any probe pod
	rssTotal            int64
	rssAnon, rssFile    int64
	execDrift           []time.Duration
	httpDrift           []time.Duration
	noData              int
	restarts            int
}

// probeLoad adds probe pods b.step at a time (each step created at once by
// b.clients clients) up to b.pods, and measures the agent (the server
// process) and the probes' period drift over b.window at each step. It stops
// early when a step's pods are not all Ready within b.stepTimeout or when
// b.startBudget has passed since the first step began.
func (b *bench) probeLoad(ctx context.Context, idle harness.CPU) error {
	max := b.pods
	if avail := memAvailable(); avail > 0 && int64(max)*appMemory+(2<<30) > avail {
		fit := int((avail - 2<<30) / appMemory)
		if fit < 1 {
			fit = 1
		}
		b.log("MemAvailable %s: at most %d probe pods instead of %d", harness.MB(avail), fit, max)
		max = fit
	}
	dir := filepath.Join(b.srv.Work, "probes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pid := b.pid
	mem0, err := harness.ReadMemory(pid)
	if err != nil {
		return err
	}
	tr, err := watchReady(ctx, b.c)
	if err != nil {
		return err
	}
	defer tr.stop()
	clients := make([]kubernetes.Interface, b.clients)
	for i := range clients {
		if clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(b.srv.Config)); err != nil {
			return err
		}
	}
	defer b.deletePods(ctx, "app=bench-probe", 45*time.Second)

	var steps []step
	var names []string
	begin := time.Now()
	for len(names) < max && ctx.Err() == nil {
		if len(steps) > 0 && time.Since(begin) > b.startBudget {
			b.log("%s since the first step: no more steps", b.startBudget)
			break
		}
		var batch []string
		var ports []int
		for len(batch) < b.step && len(names)+len(batch) < max {
			port, err := b.ports.pick()
			if err != nil {
				return err
			}
			batch = append(batch, fmt.Sprintf("probe-%03d", len(names)+len(batch)))
			ports = append(ports, port)
		}
		names = append(names, batch...)
		st := step{n: len(names)}
		t0 := time.Now()
		if err := b.createProbePods(ctx, clients, batch, ports, dir); err != nil {
			return err
		}
		st.allReady = harness.WaitEvery(ctx, 100*time.Millisecond, b.stepTimeout, func() bool { return tr.count() >= len(names) })
		var last time.Time
		last, st.ready = tr.last()
		st.readyIn = last.Sub(t0)
		b.log("step %d pods: %d Ready, the last %s after the step's first create", st.n, st.ready, st.readyIn.Round(time.Millisecond))

		harness.Sleep(ctx, b.settle)
		c0, err := harness.ReadCPU(pid)
		if err != nil {
			return err
		}
		ws := time.Now()
		harness.Sleep(ctx, b.window)
		c1, err := harness.ReadCPU(pid)
		if err != nil {
			return err
		}
		we := time.Now()
		mem, err := harness.ReadMemory(pid)
		if err != nil {
			return err
		}
		load := perWall(c1, c0, we.Sub(ws))
		st.self, st.probes, st.agent = load.Self, load.Children, load.Self-idle.Self
		st.rss, st.rssAnon, st.rssFile, st.rssTotal = mem.RSS-mem0.RSS, mem.RSSAnon-mem0.RSSAnon, mem.RSSFile-mem0.RSSFile, mem.RSS
		for _, name := range tr.readyNames() {
			execTimes, err1 := readNanos(filepath.Join(dir, name+".exec"))
			httpTimes, err2 := b.requestTimes(name)
			if err1 != nil || err2 != nil {
				st.noData++
				continue
			}
			st.execDrift = append(st.execDrift, drift(execTimes, ws, we, time.Second)...)
			st.httpDrift = append(st.httpDrift, drift(httpTimes, ws, we, time.Second)...)
		}
		st.restarts = b.restarts(ctx)
		b.log("step %d pods: agent CPU %s, RSS %+.1f MB, exec drift p99 %s, HTTP drift p99 %s, restarts %d", st.n,
			harness.Percent(st.agent, time.Second), float64(st.rss)/(1<<20),
			harness.Ms(harness.Quantile(st.execDrift, 0.99)), harness.Ms(harness.Quantile(st.httpDrift, 0.99)), st.restarts)
		steps = append(steps, st)
		if !st.allReady {
			b.log("not all %d pods Ready within %s: no more steps", st.n, b.stepTimeout)
			break
		}
	}
	b.report(steps, idle, mem0)
	return nil
}

// report adds one row per measure, with the value of every step.
func (b *bench) report(steps []step, idle harness.CPU, mem0 harness.Memory) {
	if len(steps) == 0 {
		return
	}
	top := steps[len(steps)-1]
	each := func(f func(step) string) string {
		var parts []string
		for _, st := range steps {
			parts = append(parts, fmt.Sprintf("%d: %s", st.n, f(st)))
		}
		return strings.Join(parts, " · ")
	}
	target := func(t string) string { return t + " at 500 pods" }
	program := "`k1s app`"
	if b.appBinary != "" {
		program = "`" + filepath.Base(b.appBinary) + "` (the static k1s app)"
	}
	b.table.Add(fmt.Sprintf("probe pods (%s, exec readiness + HTTP liveness probe, period 1 s), added %d at a time (%d clients): pods Ready, time to Ready from the step's first create", program, b.step, b.clients),
		each(func(st step) string {
			if st.allReady {
				return fmt.Sprintf("all in %s", harness.Ms(st.readyIn))
			}
			return fmt.Sprintf("%d Ready after %s", st.ready, b.stepTimeout)
		})+fmt.Sprintf(" — largest measured: **%d pods**", top.ready), "500 pods")
	b.table.Add(fmt.Sprintf("agent CPU, %% of one core: %s CPU over %s minus its idle baseline (%s idle over %s before any pod)", b.what, b.window, harness.Percent(idle.Self, time.Second), b.baseline),
		each(func(st step) string { return harness.Percent(st.agent, time.Second) }), "")
	b.table.Add(fmt.Sprintf("… CPU of the exec probes' processes (%s, children reaped by the %s), same window", b.execProbeProcesses(), b.what),
		each(func(st step) string { return harness.Percent(st.probes, time.Second) }), "")
	before := fmt.Sprintf("%s: anon %s + file %s", harness.MB(mem0.RSS), harness.MB(mem0.RSSAnon), harness.MB(mem0.RSSFile))
	rssLabel := fmt.Sprintf("server RSS minus before the probe pods (%s; agent + API objects): total (anon) = RSS", before)
	if b.ownAgent {
		rssLabel = fmt.Sprintf("%s RSS minus before the probe pods (idle agent %s): total (anon) = RSS", b.what, before)
	}
	b.table.Add(rssLabel,
		each(func(st step) string {
			return fmt.Sprintf("%+.0f MB (%+.0f) = %.0f MB", float64(st.rss)/(1<<20), float64(st.rssAnon)/(1<<20), float64(st.rssTotal)/(1<<20))
		}), target("agent RSS < 100 MB"))
	b.table.Add(fmt.Sprintf("exec probe period drift |interval − 1 s|, container side (time in ns appended by the probe: %s), over %s: p50 / p99 / max", b.execProbeProcesses(), b.window),
		each(func(st step) string { return driftValue(st.execDrift) }), target("p99 < 20 ms"))
	b.table.Add("HTTP probe period drift, container side (CRI log time of k1s app's request line): p50 / p99 / max",
		each(func(st step) string { return driftValue(st.httpDrift) }), target("p99 < 20 ms"))
	b.table.Add("… intervals measured (exec / HTTP); probe pods restarted by a failed liveness probe",
		each(func(st step) string {
			s := fmt.Sprintf("%d / %d; %d restarts", len(st.execDrift), len(st.httpDrift), st.restarts)
			if st.noData > 0 {
				s += fmt.Sprintf("; %d pods without data", st.noData)
			}
			return s
		}), "")
}

func (b *bench) createProbePods(ctx context.Context, clients []kubernetes.Interface, names []string, ports []int, dir string) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var createErr error
	for _, cc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				if _, err := cc.CoreV1().Pods(ns).Create(ctx, b.probePod(names[i], ports[i], dir), metav1.CreateOptions{}); err != nil {
					errOnce.Do(func() { createErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if createErr != nil {
		return fmt.Errorf("creating probe pods: %w", createErr)
	}
	return nil
}

// restarts sums the restart counts of the probe pods.
func (b *bench) restarts(ctx context.Context) int {
	n := 0
	l, err := b.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench-probe"})
	if err != nil {
		return -1
	}
	for _, p := range l.Items {
		for _, s := range p.Status.ContainerStatuses {
			n += int(s.RestartCount)
		}
	}
	return n
}

// drift returns |interval − period| for consecutive times both within
// [from, to].
func drift(ts []time.Time, from, to time.Time, period time.Duration) []time.Duration {
	var out []time.Duration
	var prev time.Time
	for _, t := range ts {
		if t.Before(from) || t.After(to) {
			continue
		}
		if !prev.IsZero() {
			d := t.Sub(prev) - period
			if d < 0 {
				d = -d
			}
			out = append(out, d)
		}
		prev = t
	}
	return out
}

func driftValue(d []time.Duration) string {
	if len(d) == 0 {
		return "n/a"
	}
	return p50p99max(d)
}

// requestTimes reads the pod's container logs from the node's log
// directory (b.logDir/<ns>_<pod>_<uid>/app/<attempt>.log, CRI
// format: the time the runtime read each line) and returns the times of its
// GET /healthz lines. Read as files, not through the API: the agent under
// load must not also serve hundreds of log requests.
func (b *bench) requestTimes(name string) ([]time.Time, error) {
	files, _ := filepath.Glob(filepath.Join(b.logDir, ns+"_"+name+"_*", "app", "*.log"))
	if len(files) == 0 {
		return nil, fmt.Errorf("no log file for %s", name)
	}
	var out []time.Time
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, healthzTimes(raw)...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out, nil
}

// healthzTimes parses CRI log lines (`<RFC3339Nano> stdout F <line>`) and
// returns the times of those logging a GET /healthz.
func healthzTimes(raw []byte) []time.Time {
	var out []time.Time
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		ts, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.Contains(rest, " GET /healthz ") {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		out = append(out, t)
	}
	return out
}

// probePod runs `k1s app --port PORT` with an exec readiness probe that
// appends the time to DIR/NAME.exec and an HTTP liveness probe on /healthz,
// both every second.
func (b *bench) probePod(name string, port int, dir string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench-probe"}},
		Spec: corev1.PodSpec{
			NodeName:                      b.node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "app",
				Image:   "busybox",
				Command: b.appCommand("--port", strconv.Itoa(port)),
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: b.stampCommand(filepath.Join(dir, name+".exec"))}},
					PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3,
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(int32(port))}},
					PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3,
				},
			}},
		},
	}
}

// stampCommand is the exec probe's command line: it appends the time in
// nanoseconds to file.
func (b *bench) stampCommand(file string) []string {
	if b.stampBinary != "" {
		return []string{b.stampBinary, file}
	}
	return []string{"sh", "-c", "date +%s%N >> " + file}
}

// execProbeProcesses names the exec probe's processes for the table.
func (b *bench) execProbeProcesses() string {
	if b.stampBinary != "" {
		return "`stamp`, one static process"
	}
	return "`sh` + `date`"
}

// appCommand is the command line of k1s app with args: the -app program,
// or `k1s app`.
func (b *bench) appCommand(args ...string) []string {
	if b.appBinary != "" {
		return append([]string{b.appBinary}, args...)
	}
	return append([]string{b.binary, "app"}, args...)
}

// readyTracker notes when each probe pod was first seen Ready.
type readyTracker struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	ready  map[string]time.Time
}

func watchReady(ctx context.Context, c kubernetes.Interface) (*readyTracker, error) {
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench-probe"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &readyTracker{cancel: cancel, ready: map[string]time.Time{}}
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=bench-probe", ResourceVersion: rv})
	}, func(ev watch.Event, at time.Time) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted || !podReady(p) {
			return
		}
		t.mu.Lock()
		if _, seen := t.ready[p.Name]; !seen {
			t.ready[p.Name] = at
		}
		t.mu.Unlock()
	})
	return t, nil
}

func (t *readyTracker) stop() { t.cancel() }

func (t *readyTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ready)
}

func (t *readyTracker) last() (time.Time, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for _, at := range t.ready {
		if at.After(last) {
			last = at
		}
	}
	return last, len(t.ready)
}

func (t *readyTracker) readyNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for n := range t.ready {
		out = append(out, n)
	}
	return out
}
