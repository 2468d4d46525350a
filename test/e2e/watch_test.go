package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// PodWatch is a running `kubectl get pods -w` whose table rows are kept.
type PodWatch struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

type lockedWriter struct{ w *PodWatch }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.out.Write(p)
}

// WatchPods starts `kubectl get pods -w` in ns (before the pods exist, so
// every row a real user would see is kept).
func (s *Server) WatchPods(t *testing.T, ns string, args ...string) *PodWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &PodWatch{cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"get", "pods", "-n", ns, "-w"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	cmd.Stdout = lockedWriter{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(w.done) }()
	t.Cleanup(w.Stop)
	return w
}

// Stop ends the watch.
func (w *PodWatch) Stop() {
	w.cancel()
	<-w.done
}

// Rows are the table rows seen so far, as fields.
func (w *PodWatch) Rows() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var rows [][]string
	for _, l := range strings.Split(w.out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] == "NAME" {
			continue
		}
		rows = append(rows, f)
	}
	return rows
}

// lines are the raw table rows of pod name.
func (w *PodWatch) lines(name string) []string {
	var out []string
	for _, r := range w.Rows() {
		if r[0] == name {
			out = append(out, strings.Join(r, "   "))
		}
	}
	return out
}

// Statuses is the STATUS column for pod name, consecutive repeats merged.
func (w *PodWatch) Statuses(name string) []string {
	var out []string
	for _, r := range w.Rows() {
		if r[0] != name {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != r[2] {
			out = append(out, r[2])
		}
	}
	return out
}

// WaitStatus waits until pod name has shown status (STATUS column).
func (w *PodWatch) WaitStatus(t *testing.T, name, status string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, name+" "+status, func() (bool, string) {
		for _, s := range w.Statuses(name) {
			if s == status {
				return true, ""
			}
		}
		return false, strings.Join(w.Statuses(name), " ")
	})
}

// ExpectSubsequence fails unless want appears in order within got.
func ExpectSubsequence(t *testing.T, what string, got, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s: STATUS sequence %v does not contain %v in order", what, got, want)
	}
}

// Jsonpath reads one field of an object.
func (s *Server) Jsonpath(t *testing.T, ns, obj, path string) string {
	t.Helper()
	r := s.Kubectl(t, "get", obj, "-n", ns, "-o", "jsonpath="+path)
	return r.Stdout
}

// JSONPathWatch is a running `kubectl get OBJ -w -o jsonpath=...`: every
// version of the object the watch delivers, one line each.
type JSONPathWatch struct{ w *PodWatch }

// WatchJSONPath follows one field of an object through every update.
func (s *Server) WatchJSONPath(t *testing.T, ns, obj, path string) *JSONPathWatch {
	t.Helper()
	return s.WatchOutput(t, "get", obj, "-n", ns, "-w", "-o", "jsonpath="+path+"{\"\\n\"}")
}

// WatchOutput runs a long-lived kubectl (a watch) and keeps its output.
func (s *Server) WatchOutput(t *testing.T, args ...string) *JSONPathWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &PodWatch{cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	cmd.Stdout = lockedWriter{w}
	cmd.Stderr = lockedWriter{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(w.done) }()
	t.Cleanup(w.Stop)
	return &JSONPathWatch{w}
}

// String is everything seen so far.
func (j *JSONPathWatch) String() string {
	j.w.mu.Lock()
	defer j.w.mu.Unlock()
	return j.w.out.String()
}

// Matches reports whether some line matches re entirely.
func (j *JSONPathWatch) Matches(re string) bool {
	return regexp.MustCompile("(?m)^" + re + "$").MatchString(j.String())
}
