// Package fidelity runs every scenario of ../shared/fidelity/scenarios on
// a real k1s server and compares what it showed with what a real
// Kubernetes 1.37 cluster showed (../shared/reference/traces).
//
//	make fidelity
//	K1S_BINARY=bin/k1s go test ./test/fidelity -run TestFidelity -v -timeout 60m
//
// The node is set up as the reference's was: the seed images' stand-ins
// (package seedimages) are served by a registry on loopback that a
// registries.yaml mirrors docker.io, gcr.io and registry.k8s.io to; the
// tagged ones (busybox:1.28, the terrycho-sandbox images) are imported
// onto the node before the server starts, the `latest` ones are pulled
// from the mirror each time. Scenarios run in parallel (each has a
// namespace of its own; three at a time, the longest first), except the ones that cordon or drain the node,
// which run after the others, alone. `compare` judges each; any
// difference but timing fails the test, except the lines of
// allowlist.txt. The table (scenario, identical, first-seen times of
// each STATUS on k1s and on the reference) is printed and written to
// $FIDELITY_OUT/table.md (and to $FIDELITY_TABLE when set).
//
// Environment:
//
//	K1S_BINARY        the k1s binary (required: the test skips without it)
//	K1S_APP_BINARY    a static cmd/k1s-app (built when unset)
//	K1S_SHARED        the shared directory (default ../shared from the repo root)
//	FIDELITY_OUT      where recordings, comparisons and the server log go
//	                  (default: a new directory under $TMPDIR, kept)
//	FIDELITY_RUN      a regexp: only the scenarios whose file name matches
//	FIDELITY_TABLE    also write the table here
//	FIDELITY_PARALLEL how many scenarios run at once (default 3)
//	FIDELITY_STAGGER  time between the first parallel scenarios' starts (default 1.5s)
package fidelity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k1s.dev/k1s/test/fidelity/seedimages"
)

const repoRoot = "../.."

// sharedDir is ../shared next to the clone, or $K1S_SHARED.
func sharedDir(t *testing.T) string {
	if d := os.Getenv("K1S_SHARED"); d != "" {
		return d
	}
	d, err := filepath.Abs(filepath.Join(repoRoot, "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFidelity(t *testing.T) {
	binary := os.Getenv("K1S_BINARY")
	if binary == "" {
		t.Skip("K1S_BINARY is not set: run `make fidelity`")
	}
	binary, _ = filepath.Abs(binary)
	if os.Geteuid() != 0 {
		t.Skip("the oci runtime needs root")
	}
	for _, tool := range []string{"runc", "kubectl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	shared := sharedDir(t)
	scenarioDir := filepath.Join(shared, "fidelity", "scenarios")
	traces := filepath.Join(shared, "reference", "traces")
	if _, err := os.Stat(scenarioDir); err != nil {
		t.Fatalf("no scenarios: %v (set K1S_SHARED)", err)
	}
	allow, err := loadAllowlist("allowlist.txt")
	if err != nil {
		t.Fatal(err)
	}

	work, err := os.MkdirTemp("", "k1s-fidelity-")
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("FIDELITY_OUT")
	if out == "" {
		out = filepath.Join(work, "out")
	}
	out, _ = filepath.Abs(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("recordings in %s", out)
	data := filepath.Join(work, "data")

	// The images, the mirror, the node's present images.
	app := os.Getenv("K1S_APP_BINARY")
	if app == "" {
		app = filepath.Join(work, "k1s-app")
		if err := seedimages.BuildApp(repoRoot, app); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := seedimages.Build(app, work)
	if err != nil {
		t.Fatalf("building images: %v", err)
	}
	reg, err := seedimages.StartRegistry(imgs)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	regConfig := filepath.Join(work, "registries.yaml")
	if err := os.WriteFile(regConfig, []byte(reg.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := seedimages.Import(binary, data, work, imgs); err != nil {
		t.Fatal(err)
	}

	srv, err := startServer(binary, data, regConfig, filepath.Join(out, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
		if m := mountsUnder(work); len(m) > 0 {
			t.Errorf("still mounted under %s after the server stopped:\n%s", work, strings.Join(m, "\n"))
			for i := len(m) - 1; i >= 0; i-- {
				_ = unix.Unmount(m[i], unix.MNT_DETACH)
			}
		}
		if len(mountsUnder(work)) == 0 {
			os.RemoveAll(data)
		}
	}()
	kubeconfig := filepath.Join(data, "kubeconfig.yaml")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		o, err := kubectl(kubeconfig, "get", "nodes", "-o", "name")
		if err == nil && strings.TrimSpace(o) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node registered after 60 s: %v\n%s", err, o)
		}
	}
	if o, err := kubectl(kubeconfig, "wait", "node", "--all", "--for=condition=Ready", "--timeout=90s"); err != nil {
		t.Fatalf("node not Ready: %v\n%s", err, o)
	}

	// The scenarios: in parallel, then the ones that take the node away, alone.
	files, _ := filepath.Glob(filepath.Join(scenarioDir, "*.sh"))
	sort.Strings(files)
	var filter *regexp.Regexp
	if f := os.Getenv("FIDELITY_RUN"); f != "" {
		filter = regexp.MustCompile(f)
	}
	var parallel, alone []string
	for _, f := range files {
		base := filepath.Base(f)
		if filter != nil && !filter.MatchString(base) {
			continue
		}
		if strings.Contains(base, "cordon") || strings.Contains(base, "drain") {
			alone = append(alone, f)
		} else {
			parallel = append(parallel, f)
		}
	}
	results := map[string]*result{}
	var mu sync.Mutex
	run := func(f string) {
		name := strings.TrimSuffix(filepath.Base(f), ".sh")
		r := runScenario(kubeconfig, shared, f, filepath.Join(out, name), filepath.Join(traces, name), allow[name])
		mu.Lock()
		results[name] = r
		mu.Unlock()
	}
	// At most FIDELITY_PARALLEL scenarios at once (default 3), the
	// longest first (by the reference's elapsed time), started a little
	// apart. The reference recorded each scenario on a quiet cluster; on
	// two cores, thirteen scripts polling with a kubectl process every
	// 0.5 s would measure that contention in the first-seen times, not
	// k1s. Three at a time take no longer: 06 alone lasts ~2 minutes.
	sortByReferenceLength(parallel, traces)
	stagger := 1500 * time.Millisecond
	if v := os.Getenv("FIDELITY_STAGGER"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			stagger = d
		}
	}
	width := 3
	if v := os.Getenv("FIDELITY_PARALLEL"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			width = n
		}
	}
	queue := make(chan string, len(parallel))
	for _, f := range parallel {
		queue <- f
	}
	close(queue)
	var wg sync.WaitGroup
	for i := 0; i < width && i < len(parallel); i++ {
		if i > 0 {
			time.Sleep(stagger)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range queue {
				run(f)
			}
		}()
	}
	wg.Wait()
	for _, f := range alone {
		run(f)
	}

	var names []string
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	table := renderTable(names, results)
	fmt.Println("\n" + table)
	if err := os.WriteFile(filepath.Join(out, "table.md"), []byte(table), 0o644); err != nil {
		t.Error(err)
	}
	if p := os.Getenv("FIDELITY_TABLE"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
	// First-seen times are reported, not asserted (timings on a shared
	// machine are no test verdict), but any status k1s showed later than
	// the reference did is named in the log.
	for _, n := range names {
		for _, tm := range results[n].timing {
			if tm.ref > 0 && tm.ours >= tm.ref {
				t.Logf("%s: pod %s first %s after %s on k1s, %s on the reference (ratio %.2f)",
					n, tm.pod, tm.status, secs(tm.ours), secs(tm.ref), float64(tm.ours)/float64(tm.ref))
			}
		}
	}
	for _, n := range names {
		r := results[n]
		if !r.identical() {
			t.Errorf("%s differs from the reference (%s):\n%s", n, filepath.Join(out, n), strings.Join(r.problems(), "\n"))
		}
		for _, l := range r.excused {
			t.Logf("%s: allowlisted: %s", n, l)
		}
	}
}

// sortByReferenceLength orders scenario files by how long the reference
// recording of each lasted (its meta.json's elapsed_ms), longest first, so
// that a bounded pool finishes them all soonest.
func sortByReferenceLength(files []string, traces string) {
	length := map[string]int{}
	for _, f := range files {
		var meta struct {
			ElapsedMS int `json:"elapsed_ms"`
		}
		name := strings.TrimSuffix(filepath.Base(f), ".sh")
		if b, err := os.ReadFile(filepath.Join(traces, name, "meta.json")); err == nil {
			_ = json.Unmarshal(b, &meta)
		}
		length[f] = meta.ElapsedMS
	}
	sort.SliceStable(files, func(i, j int) bool { return length[files[i]] > length[files[j]] })
}

// result is one scenario's comparison.
type result struct {
	err     error    // record or compare could not run
	diffs   []string // compare's difference lines not allowlisted
	excused []string // difference lines allowlisted
	timing  []timing // first seen, per pod and STATUS
}

type timing struct {
	pod, status string
	ref, ours   int
}

func (r *result) identical() bool { return r.err == nil && len(r.diffs) == 0 }

func (r *result) problems() []string {
	if r.err != nil {
		return append([]string{r.err.Error()}, r.diffs...)
	}
	return r.diffs
}

func runScenario(kubeconfig, shared, scenario, out, ref string, allow map[string]bool) *result {
	r := &result{}
	if err := os.MkdirAll(out, 0o755); err != nil {
		r.err = err
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rec := exec.CommandContext(ctx, "python3", filepath.Join(shared, "fidelity", "record"), "--out", out, scenario)
	rec.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if o, err := rec.CombinedOutput(); err != nil {
		os.WriteFile(filepath.Join(out, "record.log"), o, 0o644)
		r.err = fmt.Errorf("record: %v\n%s", err, o)
		return r
	}
	cmp := exec.Command("python3", filepath.Join(shared, "fidelity", "compare"), ref, out)
	o, err := cmp.CombinedOutput()
	os.WriteFile(filepath.Join(out, "compare.txt"), o, 0o644)
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		r.err = fmt.Errorf("compare: %v", err)
		return r
	}
	diffs, timings := parseCompare(string(o))
	r.timing = timings
	for _, d := range diffs {
		if allow[d] {
			r.excused = append(r.excused, d)
		} else {
			r.diffs = append(r.diffs, d)
		}
	}
	if err != nil && len(r.diffs) == 0 && len(r.excused) == 0 {
		r.err = fmt.Errorf("compare failed without a difference line:\n%s", o)
	}
	return r
}

// parseCompare splits compare's output: the difference lines, then the
// "first seen" table.
func parseCompare(s string) (diffs []string, timings []timing) {
	inTiming := false
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "first seen "):
			inTiming = true
		case line == "" || line == "shown: identical (timing aside)":
		case inTiming:
			f := strings.Fields(line)
			// <pod...> <status> <ref> ms <ours> ms <ratio>
			if len(f) < 7 {
				continue
			}
			n := len(f)
			ref, err1 := strconv.Atoi(f[n-5])
			ours, err2 := strconv.Atoi(f[n-3])
			if err1 != nil || err2 != nil {
				continue
			}
			timings = append(timings, timing{pod: strings.Join(f[:n-6], " "), status: f[n-6], ref: ref, ours: ours})
		default:
			diffs = append(diffs, line)
		}
	}
	return diffs, timings
}

// loadAllowlist reads allowlist.txt: "<scenario> | <compare line> | <reason>"
// per entry; '#' starts a comment line. Only "missing"/"extra" lines may
// be excused, each with a reason.
func loadAllowlist(path string) (map[string]map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		parts := strings.Split(line, " | ")
		if len(parts) < 3 || strings.TrimSpace(parts[len(parts)-1]) == "" {
			return nil, fmt.Errorf("%s:%d: want \"<scenario> | <compare line> | <reason>\"", path, i+1)
		}
		scenario := strings.TrimSpace(parts[0])
		diff := strings.Join(parts[1:len(parts)-1], " | ")
		if !regexp.MustCompile(`: (missing|extra) `).MatchString(diff) {
			return nil, fmt.Errorf("%s:%d: only a missing or extra state or event may be excused, not %q", path, i+1, diff)
		}
		if out[scenario] == nil {
			out[scenario] = map[string]bool{}
		}
		out[scenario][diff] = true
	}
	return out, nil
}

// renderTable: one row per scenario; per STATUS, when it was first seen
// on any pod of the scenario, on k1s and on the reference.
func renderTable(names []string, results map[string]*result) string {
	var b strings.Builder
	b.WriteString("| scenario | identical | first seen: STATUS k1s / reference (ratio) |\n|---|---|---|\n")
	for _, n := range names {
		r := results[n]
		type agg struct{ ref, ours int }
		first := map[string]*agg{}
		var order []string
		for _, tm := range r.timing {
			a := first[tm.status]
			if a == nil {
				a = &agg{ref: tm.ref, ours: tm.ours}
				first[tm.status] = a
				order = append(order, tm.status)
			}
			a.ref, a.ours = min(a.ref, tm.ref), min(a.ours, tm.ours)
		}
		sort.SliceStable(order, func(i, j int) bool { return first[order[i]].ref < first[order[j]].ref })
		var cells []string
		for _, st := range order {
			a := first[st]
			ratio := "-"
			if a.ref > 0 {
				ratio = fmt.Sprintf("%.2f", float64(a.ours)/float64(a.ref))
			}
			cells = append(cells, fmt.Sprintf("%s %s / %s (%s)", st, secs(a.ours), secs(a.ref), ratio))
		}
		ident := "yes"
		if len(r.excused) > 0 {
			ident = fmt.Sprintf("yes (%d allowlisted)", len(r.excused))
		}
		if !r.identical() {
			ident = fmt.Sprintf("no (%d)", max(len(r.diffs), 1))
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", n, ident, strings.Join(cells, ", "))
	}
	return b.String()
}

func secs(ms int) string { return fmt.Sprintf("%.1fs", float64(ms)/1000) }

func kubectl(kubeconfig string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	o, err := cmd.CombinedOutput()
	return string(o), err
}

// server is the k1s server under test.
type server struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startServer(binary, data, regConfig, logPath string) (*server, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "server", "--data-dir", data, "--https-port", "0",
		"--registry-config", regConfig, "--default-runtime", "oci", "--stop-pods-on-exit", "--disable-servicelb",
		// the reference's ranges (its cluster DNS was 10.96.0.10)
		"--cluster-cidr", "10.88.0.0/16", "--service-cidr", "10.96.0.0/16")
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pw.Close()
	s := &server{cmd: cmd, done: make(chan struct{}), log: lf}
	ready := make(chan struct{})
	var tail bytes.Buffer
	var tailMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			tailMu.Lock()
			if tail.Len() < 64<<10 {
				tail.WriteString(line + "\n")
			}
			tailMu.Unlock()
			if strings.Contains(line, "k1s API ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case <-ready:
		return s, nil
	case <-s.done:
		tailMu.Lock()
		defer tailMu.Unlock()
		return nil, fmt.Errorf("k1s server exited:\n%s", tail.String())
	case <-time.After(120 * time.Second):
		_ = s.stop()
		return nil, fmt.Errorf("k1s server not ready after 120s (log: %s)", logPath)
	}
}

// stop sends SIGTERM to the server (by its pid) and waits for it.
func (s *server) stop() error {
	defer s.log.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("k1s server did not stop within 60 s of SIGTERM")
	}
}

// mountsUnder lists the mount points under dir, outermost first.
func mountsUnder(dir string) []string {
	dir, _ = filepath.EvalSymlinks(dir)
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	sort.Strings(out)
	return out
}
