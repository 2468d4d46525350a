package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// BackgroundCmd is a kubectl left running (port-forward, attach).
type BackgroundCmd struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *BackgroundCmd) Stop() { b.cancel(); <-b.done }

func startKubectl(t *testing.T, s *Server, args ...string) *BackgroundCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &BackgroundCmd{cancel: cancel, done: make(chan struct{})}
	go func() { cmd.Wait(); close(b.done) }()
	return b
}
