package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

// barrierSrc answers a token request and a ConfigMap read only once both
// are in flight.
type barrierSrc struct {
	src
	wg sync.WaitGroup
}

func (b *barrierSrc) wait() error {
	b.wg.Done()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("read one after the other")
	}
}

func (b *barrierSrc) ConfigMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	if err := b.wait(); err != nil {
		return nil, err
	}
	return b.src.ConfigMap(ctx, ns, name)
}

func (b *barrierSrc) ServiceAccountToken(ctx context.Context, pod *v1.Pod, aud string, exp int64) (string, time.Time, error) {
	if err := b.wait(); err != nil {
		return "", time.Time{}, err
	}
	return b.src.ServiceAccountToken(ctx, pod, aud, exp)
}

// The sources of a projected volume that need the API are read at the
// same time: a pod's start waits for one round trip, not two.
func TestProjectedSourcesReadTogether(t *testing.T) {
	s := &barrierSrc{}
	s.wg.Add(2)
	root := t.TempDir()
	t.Cleanup(func() { unmountUnder(root) }) // projected volumes are tmpfs
	m := NewManager(root, s, testingclock.NewFakeClock(time.Unix(0, 0)))
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "s05", UID: "u1"}, Spec: v1.PodSpec{Volumes: []v1.Volume{apiAccess()}}}
	paths, err := m.Setup(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"token": "jwt", "ca.crt": "CA", "namespace": "s05"} {
		got, err := os.ReadFile(filepath.Join(paths["kube-api-access-x"], f))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v", f, got, err)
		}
	}
}
