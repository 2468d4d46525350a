package main

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

const (
	ns = "bench-oci"
	// podImage is imported before the server starts (IfNotPresent: no pull).
	podImage = "busybox"
)

// sleepPod is an oci pod running `sleep 3600` from the imported busybox
// image, left to the scheduler.
func sleepPod(name string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "ocibench"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "sleep",
				Image:           podImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"sleep", "3600"},
			}},
		},
	}
}

// tracker watches the namespace's pods and notes, per name, when a watch
// event first showed the pod bound to a node and first showed it Running.
type tracker struct {
	cancel  context.CancelFunc
	mu      sync.Mutex
	bound   map[string]time.Time
	running map[string]time.Time
	gone    map[string]bool
	last    map[string]*corev1.Pod
}

func newTrackerState() *tracker {
	return &tracker{bound: map[string]time.Time{}, running: map[string]time.Time{},
		gone: map[string]bool{}, last: map[string]*corev1.Pod{}}
}

func newTracker(ctx context.Context, c kubernetes.Interface) (*tracker, error) {
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	t := newTrackerState()
	t.cancel = cancel
	go harness.WatchLoop(ctx, l.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	}, func(ev watch.Event, at time.Time) {
		if p, ok := ev.Object.(*corev1.Pod); ok {
			t.observe(ev.Type, p, at)
		}
	})
	return t, nil
}

func (t *tracker) stop() { t.cancel() }

func (t *tracker) observe(typ watch.EventType, p *corev1.Pod, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if typ == watch.Deleted {
		t.gone[p.Name] = true
		return
	}
	if typ == watch.Added {
		delete(t.bound, p.Name)
		delete(t.running, p.Name)
		delete(t.gone, p.Name)
	}
	t.last[p.Name] = p
	if _, ok := t.bound[p.Name]; !ok && p.Spec.NodeName != "" {
		t.bound[p.Name] = at
	}
	if _, ok := t.running[p.Name]; !ok && p.Status.Phase == corev1.PodRunning {
		t.running[p.Name] = at
	}
}

// times returns when each pod was first seen bound and Running (zero: not yet).
func (t *tracker) times(names []string) (bound, running []time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		bound = append(bound, t.bound[n])
		running = append(running, t.running[n])
	}
	return bound, running
}

// describe says where a pod is: phase, node, the container's waiting reason.
func (t *tracker) describe(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.last[name]
	if p == nil {
		return "not seen"
	}
	s := string(p.Status.Phase)
	if s == "" {
		s = "no phase"
	}
	if p.Spec.NodeName == "" {
		s += ", not scheduled"
	}
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil {
			s += ", waiting: " + w.Reason
			if w.Message != "" {
				s += " (" + w.Message + ")"
			}
			break
		}
		if x := c.State.Terminated; x != nil {
			s += fmt.Sprintf(", terminated: %s %d", x.Reason, x.ExitCode)
			break
		}
	}
	return s
}

// waitRunning waits until every name was seen Running (or timeout) and
// returns how many were.
func (t *tracker) waitRunning(ctx context.Context, names []string, timeout time.Duration) int {
	n := 0
	harness.WaitFor(ctx, timeout, func() bool {
		_, run := t.times(names)
		n = 0
		for _, r := range run {
			if !r.IsZero() {
				n++
			}
		}
		return n == len(names)
	})
	return n
}

func (t *tracker) waitGone(ctx context.Context, names []string, timeout time.Duration) bool {
	return harness.WaitFor(ctx, timeout, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, n := range names {
			if !t.gone[n] {
				return false
			}
		}
		return true
	})
}

// burstResult of pods created at once by several clients.
type burstResult struct {
	names     []string
	starts    []time.Time // start of each pod's create request
	first     time.Time   // first create request
	created   time.Time   // all create requests done
	bound     []time.Time
	running   []time.Time
	allOK     bool
	failure   string
	createErr error
	cpu       cpuUse // from before the creates until all were Running
}

// cpuUse is CPU time (user + system) of the server process (with the
// children it reaped: runc state/kill/delete, mount helpers) and of the
// processes below it (shims, runc run, containers, with what they reaped).
type cpuUse struct{ server, below time.Duration }

func (c cpuUse) sub(d cpuUse) cpuUse  { return cpuUse{c.server - d.server, c.below - d.below} }
func (c cpuUse) total() time.Duration { return c.server + c.below }
func (c cpuUse) per(n int) (s, b, t string) {
	d := time.Duration(n)
	return harness.Ms(c.server / d), harness.Ms(c.below / d), harness.Ms(c.total() / d)
}

// latencies from each pod's create to its Running event, and to its binding.
func (r *burstResult) latencies() (running, bound []time.Duration, last time.Time) {
	for i := range r.names {
		if r.running[i].IsZero() {
			continue
		}
		running = append(running, r.running[i].Sub(r.starts[i]))
		bound = append(bound, r.bound[i].Sub(r.starts[i]))
		if r.running[i].After(last) {
			last = r.running[i]
		}
	}
	return running, bound, last
}

// createAtOnce creates n pods named prefix-NNN with the clients (one
// worker each) and waits until they are all Running or timeout.
func (r *podRun) createAtOnce(ctx context.Context, prefix string, n int) *burstResult {
	res := &burstResult{names: make([]string, n), starts: make([]time.Time, n)}
	for i := range res.names {
		res.names[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	cpu0 := r.cpuNow()
	res.first = time.Now()
	for _, cc := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				res.starts[i] = time.Now()
				if _, err := cc.CoreV1().Pods(ns).Create(ctx, sleepPod(res.names[i]), metav1.CreateOptions{}); err != nil {
					mu.Lock()
					if res.createErr == nil {
						res.createErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	res.created = time.Now()
	if res.createErr != nil {
		res.failure = "create: " + res.createErr.Error()
		res.bound, res.running = r.tr.times(res.names)
		return res
	}
	got := r.tr.waitRunning(ctx, res.names, r.podTimeout)
	res.cpu = r.cpuNow().sub(cpu0)
	res.bound, res.running = r.tr.times(res.names)
	res.allOK = got == n
	if !res.allOK {
		for i, at := range res.running {
			if at.IsZero() {
				res.failure = fmt.Sprintf("%d of %d Running within %s (%s: %s)", got, n, r.podTimeout, res.names[i], r.tr.describe(res.names[i]))
				break
			}
		}
	}
	return res
}

// deleteAll deletes the pods (their 1 s grace period applies: `sleep` as
// PID 1 ignores SIGTERM) and waits until the API has them gone and no
// shim of theirs is left on the node. It returns how long the API took.
func (r *podRun) deleteAll(ctx context.Context, names []string) time.Duration {
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, cc := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				if err := cc.CoreV1().Pods(ns).Delete(ctx, names[i], metav1.DeleteOptions{}); err != nil {
					r.log("deleting %s: %v", names[i], err)
				}
			}
		}()
	}
	wg.Wait()
	if !r.tr.waitGone(ctx, names, r.podTimeout) {
		r.log("pods not gone within %s", r.podTimeout)
	}
	took := time.Since(t0)
	// The next measure starts on an empty node.
	if !harness.WaitEvery(ctx, 100*time.Millisecond, 60*time.Second, func() bool {
		return r.snapshotShims() == 0
	}) {
		r.log("shims still running 60s after the pods were deleted")
	}
	return took
}

// singles starts pods one at a time, each deleted (and its shim gone)
// before the next.
func (r *podRun) singles(ctx context.Context) {
	rows := r.section("single")
	label := fmt.Sprintf("oci pod create → Running, 1 pod at a time (x%d), via scheduler, image present: p50 / p99", r.single)
	var run, bound, cpu, cpuServer, cpuBelow []time.Duration
	var st []stages
	for i := 0; i < r.single; i++ {
		name := fmt.Sprintf("single-%03d", i)
		cpu0 := r.cpuNow()
		t0 := time.Now()
		if _, err := r.c.CoreV1().Pods(ns).Create(ctx, sleepPod(name), metav1.CreateOptions{}); err != nil {
			rows.Add(label, "n/a: create: "+err.Error(), "p50 < 300 ms")
			return
		}
		if r.tr.waitRunning(ctx, []string{name}, r.podTimeout) != 1 {
			rows.Add(label, fmt.Sprintf("n/a: %s not Running within %s (%s)", name, r.podTimeout, r.tr.describe(name)), "p50 < 300 ms")
			r.deleteAll(ctx, []string{name})
			return
		}
		used := r.cpuNow().sub(cpu0)
		cpu = append(cpu, used.total())
		cpuServer = append(cpuServer, used.server)
		cpuBelow = append(cpuBelow, used.below)
		st = append(st, r.stagesOf([]string{name})...)
		b, y := r.tr.times([]string{name})
		run = append(run, y[0].Sub(t0))
		bound = append(bound, b[0].Sub(t0))
		r.deleteAll(ctx, []string{name})
	}
	var agent []time.Duration
	for i := range run {
		agent = append(agent, run[i]-bound[i])
	}
	r.log("single pods: Running %s (bound %s)", p50p99(run), p50p99(bound))
	rows.Add(label, p50p99(run)+fmt.Sprintf(" (min %s, max %s)", harness.Ms(harness.Quantile(run, 0)), harness.Ms(harness.Quantile(run, 1))), "p50 < 300 ms")
	rows.Add("… of which create → bound (API + scheduler) / bound → Running (node agent, oci runtime): p50 / p99",
		p50p99(bound)+"; "+p50p99(agent), "")
	rows.Add(fmt.Sprintf("… node side, step by step from the binding (oci runtime's files: sandbox.json, container.json, the shim's and runc's state.json; %d pods): p50 / p99", len(st)),
		stagesValue(st), "")
	rows.Add("… CPU used from create to Running: total; server process (API, scheduler, agent, the runc commands it ran); shim + `runc run` + container: p50 / p99",
		p50p99(cpu)+"; "+p50p99(cpuServer)+"; "+p50p99(cpuBelow), "")
}

// burstRun creates r.burst pods at once and reports per-pod latencies and
// the wall time until all are Running, then deletes them.
func (r *podRun) burstRun(ctx context.Context) {
	rows := r.section("burst")
	label := fmt.Sprintf("oci pods created at once (%d, %d clients) → all Running: wall time (first create → last Running); per pod p50 / p99", r.burst, r.bench.clients)
	res := r.createAtOnce(ctx, "burst", r.burst)
	defer func() {
		took := r.deleteAll(ctx, res.names)
		rows.Add(fmt.Sprintf("… delete the %d pods (grace period 1 s) → all gone from the API", r.burst), harness.Ms(took), "")
	}()
	if !res.allOK {
		rows.Add(label, "n/a: "+res.failure, "")
		return
	}
	run, bound, last := res.latencies()
	var agent []time.Duration
	for i := range run {
		agent = append(agent, run[i]-bound[i])
	}
	r.log("burst of %d: all Running in %s, per pod %s", r.burst, harness.Ms(last.Sub(res.first)), p50p99(run))
	rows.Add(label, fmt.Sprintf("%s; %s", harness.Ms(last.Sub(res.first)), p50p99(run)), "")
	rows.Add("… of which the creates (all requests done) / per pod create → bound, bound → Running: p50 / p99",
		fmt.Sprintf("%s / %s, %s", harness.Ms(res.created.Sub(res.first)), p50p99(bound), p50p99(agent)), "")
	st := r.stagesOf(res.names)
	rows.Add(fmt.Sprintf("… node side, step by step from the binding (%d pods): p50 / p99", len(st)), stagesValue(st), "")
	wall := last.Sub(res.first)
	sv, bl, tot := res.cpu.per(r.burst)
	rows.Add("… CPU used until all were Running, per pod: total (server process + shim, `runc run`, container); average cores busy over the wall time",
		fmt.Sprintf("%s (%s + %s); %.2f cores of %d", tot, sv, bl, res.cpu.total().Seconds()/wall.Seconds(), goruntime.NumCPU()), "")
}

// cpuNow is the CPU the server process and every process below it have
// used so far.
func (r *podRun) cpuNow() cpuUse {
	var u cpuUse
	if c, err := harness.ReadCPU(r.server.PID()); err == nil {
		u.server = c.Self + c.Children
	}
	procs, err := readProcs()
	if err != nil {
		return u
	}
	for _, pid := range descendants(procs, r.server.PID()) {
		if c, err := harness.ReadCPU(pid); err == nil {
			u.below += c.Self + c.Children
		}
	}
	return u
}

func p50p99(d []time.Duration) string {
	return harness.Ms(harness.Median(d)) + " / " + harness.Ms(harness.Quantile(d, 0.99))
}
