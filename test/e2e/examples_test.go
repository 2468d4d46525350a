package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The examples the README's quick tour uses are valid for the server, and
// the init-containers one behaves as its comment says.
func TestExamples(t *testing.T) {
	s := SharedServer(t)
	ns := s.Namespace(t)
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := s.KubectlIn(t, string(b), "apply", "--dry-run=server", "-n", ns, "-f", "-")
		if r.Code != 0 || !strings.Contains(r.Stdout, "(server dry run)") {
			t.Errorf("%s: %d %s %s", f, r.Code, r.Stdout, r.Stderr)
		}
	}
	b, _ := os.ReadFile("../../examples/init-containers.yaml")
	w := s.WatchPods(t, ns)
	s.MustApply(t, ns, string(b))
	w.WaitStatus(t, "myapp-pod", "Running", 60*time.Second)
	ExpectSubsequence(t, "examples/init-containers.yaml", w.Statuses("myapp-pod"), []string{"Init:0/2", "Init:1/2", "PodInitializing", "Running"})
}
