package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"k1s.dev/k1s/bench/internal/harness"
)

// tableAccept is what `kubectl get` sends.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

// kubectlChunkSize is kubectl get's default --chunk-size.
const kubectlChunkSize = 500

// noSuchNode binds the listed pods to a node that does not exist, so neither
// the scheduler nor any node agent acts on them.
const noSuchNode = "k1s-bench-no-such-node"

// load runs one server (default flags plus -server-args) and puts objects
// into it: ConfigMaps sequentially and in parallel, Pods for the lists, then
// ConfigMaps timed to their watch event; memory idle before and after.
func (b *bench) load(ctx context.Context) error {
	s, err := harness.Start(b.binary, b.newDir(), b.serverArgs...)
	if err != nil {
		return err
	}
	defer s.Stop()
	d, err := s.WaitReadyz(readyTimeout)
	if err != nil {
		return fmt.Errorf("load server: %w", err)
	}
	readyAt := s.Started.Add(d)
	if err := s.WaitLogReady(10 * time.Second); err != nil {
		return err
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		return err
	}
	flags := "default flags"
	if len(b.serverArgs) > 0 {
		flags = strings.Join(b.serverArgs, " ")
	}
	b.log("load server pid %d (%s) at %s", s.PID(), flags, s.URL)

	if b.only["rss"] {
		harness.Sleep(ctx, time.Until(readyAt.Add(5*time.Second)))
		if err := b.memory(s, fmt.Sprintf("server memory idle 5 s after ready, fresh load server (%s)", flags)); err != nil {
			return err
		}
	}

	// One client (own connection) per concurrent worker.
	clients := make([]kubernetes.Interface, b.clients)
	for i := range clients {
		if clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(cfg)); err != nil {
			return err
		}
	}
	c := clients[0]
	for _, ns := range []string{"bench-pods", "bench-watch"} {
		if err := harness.EnsureNamespace(ctx, c, ns); err != nil {
			return err
		}
	}

	// The first create run goes before the other loads (so the memory
	// "after load" has its objects), the others after.
	var objects []string
	var runs []createRun
	createAt := len(b.table.Rows)
	if b.only["create"] && b.createRuns > 0 {
		r, err := b.createRun(ctx, clients, 1)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		objects = append(objects, fmt.Sprintf("%d ConfigMaps", 2*b.objects))
	}
	if b.only["list"] {
		if err := b.listPods(ctx, clients); err != nil {
			return err
		}
		objects = append(objects, fmt.Sprintf("%d Pods", b.objects))
	}
	if b.only["watch"] {
		if err := b.watchLatency(ctx, c, harness.OwnConnection(cfg)); err != nil {
			return err
		}
		objects = append(objects, fmt.Sprintf("%d ConfigMaps", b.watchEvents))
	}
	if b.only["rss"] && len(objects) > 0 {
		what := "server memory right after load (" + strings.Join(objects, " + ") + ")"
		if err := b.memory(s, what); err != nil {
			return err
		}
		loaded := time.Now()
		harness.Sleep(ctx, 5*time.Second)
		if err := b.memory(s, "server memory 5 s after load"); err != nil {
			return err
		}
		// The server collects at a lower target once it has been idle
		// for 15 s (procmem.IdleGC): what it holds with the objects.
		harness.Sleep(ctx, time.Until(loaded.Add(30*time.Second)))
		if err := b.memory(s, "server memory idle 30 s after load"); err != nil {
			return err
		}
	}
	for i := 2; b.only["create"] && i <= b.createRuns; i++ {
		r, err := b.createRun(ctx, clients, i)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	if len(runs) > 0 {
		b.createRows(createAt, runs, len(clients))
	}
	_, err = s.Stop()
	return err
}

// parallel runs do(client, i) for i in [0, n) on len(clients) workers,
// worker w using clients[w]; it returns the wall time and each call's
// latency.
func parallel(n int, clients []kubernetes.Interface, do func(c kubernetes.Interface, i int) error) (time.Duration, []time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := do(c, i); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return time.Since(start), lat, firstErr
}

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Data:       map[string]string{"key": "value", "config.yaml": "a: 1\nb: two\n"},
	}
}

// createRun is one repetition of the create measures: b.objects
// ConfigMaps from one client, then from all clients, each in a namespace of
// its own.
type createRun struct {
	seqWall, parWall time.Duration
	seqLat, parLat   []time.Duration
}

func (b *bench) createRun(ctx context.Context, clients []kubernetes.Interface, run int) (createRun, error) {
	var r createRun
	seqNS, parNS := fmt.Sprintf("bench-seq-%d", run), fmt.Sprintf("bench-par-%d", run)
	for _, ns := range []string{seqNS, parNS} {
		if err := harness.EnsureNamespace(ctx, clients[0], ns); err != nil {
			return r, err
		}
	}
	create := func(ns string) func(c kubernetes.Interface, i int) error {
		return func(c kubernetes.Interface, i int) error {
			_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("cm-%05d", i)), metav1.CreateOptions{})
			return err
		}
	}
	var err error
	if r.seqWall, r.seqLat, err = parallel(b.objects, clients[:1], create(seqNS)); err != nil {
		return r, fmt.Errorf("sequential create: %w", err)
	}
	if r.parWall, r.parLat, err = parallel(b.objects, clients, create(parNS)); err != nil {
		return r, fmt.Errorf("parallel create: %w", err)
	}
	b.log("create run %d: %d ConfigMaps sequentially %s, with %d clients %s", run, b.objects,
		harness.Rate(b.objects, r.seqWall), len(clients), harness.Rate(b.objects, r.parWall))
	return r, nil
}

// createRows inserts the create rows at index at: the median run's rate
// (and the range), and per-request p50 / p99 over all runs.
func (b *bench) createRows(at int, runs []createRun, clients int) {
	row := func(wall func(createRun) time.Duration, lat func(createRun) []time.Duration) string {
		var walls, lats []time.Duration
		for _, r := range runs {
			walls = append(walls, wall(r))
			lats = append(lats, lat(r)...)
		}
		// The median rate is the rate of the median wall time.
		v := harness.Rate(b.objects, harness.Median(walls))
		if len(runs) > 1 {
			v += fmt.Sprintf(" (range %s–%s)", harness.Rate(b.objects, harness.Quantile(walls, 1)), harness.Rate(b.objects, harness.Quantile(walls, 0)))
		}
		return v + fmt.Sprintf("; per request p50 %s, p99 %s", harness.Ms(harness.Median(lats)), harness.Ms(harness.Quantile(lats, 0.99)))
	}
	b.table.Insert(at, fmt.Sprintf("create %d ConfigMaps, 1 client (sequential; median of %d runs)", b.objects, len(runs)),
		row(func(r createRun) time.Duration { return r.seqWall }, func(r createRun) []time.Duration { return r.seqLat }), "")
	b.table.Insert(at+1, fmt.Sprintf("create %d ConfigMaps, %d concurrent clients (median of %d runs)", b.objects, clients, len(runs)),
		row(func(r createRun) time.Duration { return r.parWall }, func(r createRun) []time.Duration { return r.parLat }), "≥ 1,000 /s")
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			NodeName: noSuchNode,
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   "busybox",
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// tablePage is the part of a meta.k8s.io Table the benchmark checks.
type tablePage struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Continue string `json:"continue"`
	} `json:"metadata"`
	Rows  []json.RawMessage `json:"rows"`
	Items []json.RawMessage `json:"items"`
}

func (b *bench) listPods(ctx context.Context, clients []kubernetes.Interface) error {
	const ns = "bench-pods"
	wall, _, err := parallel(b.objects, clients, func(c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("pod-%05d", i)), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("creating pods: %w", err)
	}
	b.log("create %d Pods with %d clients: %s", b.objects, len(clients), harness.Rate(b.objects, wall))
	b.table.Add(fmt.Sprintf("create %d Pods, %d concurrent clients", b.objects, len(clients)), harness.Rate(b.objects, wall), "")

	rc := clients[0].CoreV1().RESTClient()
	// get fetches one page; limit 0 means all.
	get := func(accept string, limit int, cont string) (time.Duration, tablePage, error) {
		req := rc.Get().Namespace(ns).Resource("pods").SetHeader("Accept", accept)
		if limit > 0 {
			req = req.Param("limit", fmt.Sprint(limit))
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		t0 := time.Now()
		body, err := req.DoRaw(ctx)
		d := time.Since(t0)
		var page tablePage
		if err == nil {
			err = json.Unmarshal(body, &page)
		}
		return d, page, err
	}
	// list returns the time of all the requests of one (paged) list and the
	// number of rows or items seen.
	list := func(accept string, limit int) (time.Duration, int, string, error) {
		var total time.Duration
		var n int
		cont := ""
		for {
			d, page, err := get(accept, limit, cont)
			if err != nil {
				return 0, 0, "", err
			}
			total += d
			n += len(page.Rows) + len(page.Items)
			if cont = page.Metadata.Continue; cont == "" {
				return total, n, page.Kind, nil
			}
		}
	}
	measure := func(label, accept string, limit int, target string) error {
		var samples []time.Duration
		var n int
		var kind string
		for i := 0; i < b.lists; i++ {
			d, rows, k, err := list(accept, limit)
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			samples = append(samples, d)
			n, kind = rows, k
		}
		b.log("%s: median %s (%d rows/items of a %s)", label, harness.Ms(harness.Median(samples)), n, kind)
		b.table.Add(fmt.Sprintf("%s (median of %d)", label, len(samples)),
			fmt.Sprintf("%s (%d rows, p99 %s)", harness.Ms(harness.Median(samples)), n, harness.Ms(harness.Quantile(samples, 0.99))), target)
		return nil
	}
	if err := measure(fmt.Sprintf("list %d Pods as Table, one request", b.objects), tableAccept, 0, ""); err != nil {
		return err
	}
	if err := measure(fmt.Sprintf("list %d Pods as Table, kubectl paging (limit=%d)", b.objects, kubectlChunkSize), tableAccept, kubectlChunkSize, ""); err != nil {
		return err
	}
	return measure(fmt.Sprintf("list %d Pods as JSON PodList, one request", b.objects), "application/json", 0, "")
}

type seen struct {
	name string
	at   time.Time
}

// watchLatency creates ConfigMaps one at a time and times each from the
// start of its create request to its ADDED event on a watch opened on its
// own connection beforehand.
func (b *bench) watchLatency(ctx context.Context, c kubernetes.Interface, watchCfg *rest.Config) error {
	const ns = "bench-watch"
	wc, err := kubernetes.NewForConfig(watchCfg)
	if err != nil {
		return err
	}
	l, err := wc.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := wc.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		return err
	}
	defer w.Stop()
	events := make(chan seen, b.watchEvents+16)
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			if ev.Type != watch.Added {
				continue
			}
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok && strings.HasPrefix(cm.Name, "w-") {
				events <- seen{cm.Name, at}
			}
		}
		close(events)
	}()

	var lat []time.Duration
	for i := 0; i < b.watchEvents; i++ {
		name := fmt.Sprintf("w-%05d", i)
		t0 := time.Now()
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(name), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("watch create: %w", err)
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case e, ok := <-events:
				if !ok {
					return fmt.Errorf("watch closed after %d events", i)
				}
				if e.name == name {
					lat = append(lat, e.at.Sub(t0))
					break wait
				}
			case <-timeout:
				return fmt.Errorf("no ADDED event for %s within 10s", name)
			}
		}
	}
	b.log("watch latency over %d creates: p50 %s p99 %s", len(lat), harness.Ms(harness.Median(lat)), harness.Ms(harness.Quantile(lat, 0.99)))
	b.table.Add(fmt.Sprintf("watch latency, create → ADDED event seen (%d creates): p50 / p99", len(lat)),
		harness.Ms(harness.Median(lat))+" / "+harness.Ms(harness.Quantile(lat, 0.99)), "")
	return nil
}
