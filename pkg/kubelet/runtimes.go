package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// runtimeSet holds the runtimes by RuntimeClass handler and resolves which
// one runs a pod.
type runtimeSet struct {
	byName map[string]runtime.Runtime
	def    string

	mu       sync.Mutex
	handlers map[string]string // RuntimeClass name -> handler
}

func newRuntimeSet(rts map[string]runtime.Runtime, def string) *runtimeSet {
	return &runtimeSet{byName: rts, def: def, handlers: map[string]string{}}
}

func (s *runtimeSet) all() []runtime.Runtime {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]runtime.Runtime, 0, len(names))
	for _, n := range names {
		out = append(out, s.byName[n])
	}
	return out
}

// names returns the handler names, sorted.
func (s *runtimeSet) names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// forPod resolves the pod's runtimeClassName (node.k8s.io/v1 RuntimeClass
// handler) to a runtime; no class: the default runtime.
func (s *runtimeSet) forPod(ctx context.Context, client kubernetes.Interface, pod *v1.Pod) (runtime.Runtime, error) {
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return s.byName[s.def], nil
	}
	name := *pod.Spec.RuntimeClassName
	s.mu.Lock()
	handler, ok := s.handlers[name]
	s.mu.Unlock()
	if !ok {
		rc, err := client.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("runtimeclass.node.k8s.io %q not found", name)
			}
			return nil, err
		}
		handler = rc.Handler
		s.mu.Lock()
		s.handlers[name] = handler
		s.mu.Unlock()
	}
	rt, ok := s.byName[handler]
	if !ok {
		return nil, fmt.Errorf("RuntimeHandler %q not supported", handler)
	}
	return rt, nil
}

// byContainerID picks the runtime of an API container id "host://abc" and
// returns it with the runtime's id "abc".
func (s *runtimeSet) byContainerID(id string) (runtime.Runtime, string, error) {
	scheme, rid, ok := strings.Cut(id, "://")
	if !ok {
		return s.byName[s.def], id, nil
	}
	rt, found := s.byName[scheme]
	if !found {
		return nil, "", fmt.Errorf("container %q: unknown runtime %q: %w", id, scheme, runtime.ErrNotFound)
	}
	return rt, rid, nil
}

// execSync runs a command in a container named by its API id.
func (s *runtimeSet) execSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	rt, rid, err := s.byContainerID(id)
	if err != nil {
		return nil, nil, 0, err
	}
	return rt.ExecSync(ctx, rid, cmd, timeout)
}
