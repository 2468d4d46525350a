package volume

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// Periodic refreshes of a volume's contents share their reads: every pod
// of a namespace projects the same kube-root-ca.crt ConfigMap, and 500 pods
// each reading it once a minute kept the API server at ~20 % of a core.
// A refresh takes an object read by another refresh less than
// refreshEvery ago; a pod's first setup (and every container start's
// environment) still reads the API, so a pod created after an edit sees it.
// (Upstream's kubelet serves both from a watch per referenced object.)

type refreshKey struct{}

// forRefresh marks ctx as a periodic refresh's.
func forRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, refreshKey{}, true)
}

func isRefresh(ctx context.Context) bool {
	b, _ := ctx.Value(refreshKey{}).(bool)
	return b
}

// sharedReads remembers the objects refreshes read, with when.
type sharedReads struct {
	clock clock.Clock
	mu    sync.Mutex
	items map[string]sharedRead
}

type sharedRead struct {
	at  time.Time
	obj any
}

// get returns key's object if a refresh read it less than refreshEvery
// ago, else reads it with read (errors are not kept) and remembers it.
// Entries older than refreshEvery are dropped as new ones come.
func (s *sharedReads) get(ctx context.Context, key string, read func() (any, error)) (any, error) {
	if !isRefresh(ctx) {
		return read()
	}
	now := s.clock.Now()
	s.mu.Lock()
	if r, ok := s.items[key]; ok && now.Sub(r.at) < refreshEvery {
		s.mu.Unlock()
		return r.obj, nil
	}
	s.mu.Unlock()
	obj, err := read()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string]sharedRead{}
	}
	for k, r := range s.items {
		if now.Sub(r.at) >= refreshEvery {
			delete(s.items, k)
		}
	}
	s.items[key] = sharedRead{at: now, obj: obj}
	return obj, nil
}

func (m *Manager) configMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	obj, err := m.shared.get(ctx, "configmap/"+ns+"/"+name, func() (any, error) { return m.src.ConfigMap(ctx, ns, name) })
	if err != nil {
		return nil, err
	}
	return obj.(*v1.ConfigMap), nil
}

func (m *Manager) secret(ctx context.Context, ns, name string) (*v1.Secret, error) {
	obj, err := m.shared.get(ctx, "secret/"+ns+"/"+name, func() (any, error) { return m.src.Secret(ctx, ns, name) })
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Secret), nil
}
