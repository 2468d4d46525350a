package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
)

// Launched is a server started in a fresh work directory by Launch.
type Launched struct {
	*Server
	Work   string // temp dir holding the server's data dir and log, and anything else the benchmark puts there
	Config *rest.Config
	keep   bool
	logf   func(string, ...any)
}

// Launch starts `binary server` with args in a fresh temp dir named after
// prefix and waits for /readyz and the "k1s API ready" log line.
func Launch(binary, prefix string, keep bool, logf func(string, ...any), args ...string) (*Launched, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%v (run `make build`)", err)
	}
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s, err := Start(binary, filepath.Join(work, "server"), args...)
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	l := &Launched{Server: s, Work: work, keep: keep, logf: logf}
	if _, err := s.WaitReadyz(90 * time.Second); err != nil {
		l.keep = true
		l.Close()
		return nil, err
	}
	if err := s.WaitLogReady(10 * time.Second); err != nil {
		l.keep = true
		l.Close()
		return nil, err
	}
	if l.Config, err = s.RESTConfig(); err != nil {
		l.keep = true
		l.Close()
		return nil, err
	}
	logf("server pid %d at %s, data in %s", s.PID(), s.URL, work)
	return l, nil
}

// Keep makes Close keep the work dir (call it on failure).
func (l *Launched) Keep() { l.keep = true }

// Close stops the server (SIGTERM to its PID), SIGKILLs what containers of
// its node (and of agents whose data dirs are under Work) are still
// running, and any other process whose working directory is under Work,
// and removes the work dir unless kept.
func (l *Launched) Close() {
	if !l.Exited() {
		if _, err := l.Stop(); err != nil {
			l.logf("%v", err)
		}
	}
	if n := KillLeftoverContainers(l.Work); n > 0 {
		l.logf("killed %d container processes left running by the node agents", n)
	}
	if n := KillProcessesIn(l.Work); n > 0 {
		l.logf("killed %d more processes running in %s", n, l.Work)
	}
	if l.keep {
		l.logf("data dirs and logs kept in %s", l.Work)
		return
	}
	os.RemoveAll(l.Work)
}
