package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// Name is the RuntimeClass handler name of the host runtime.
const Name = "host"

// Options configure the host runtime.
type Options struct {
	// RootDir holds the runtime's state (e.g. DATA_DIR/agent/runtime).
	RootDir string
	// ShimBinary is the program re-executed as each container's shim;
	// default os.Executable().
	ShimBinary string
	// ShimArgs come before the shim's own flags; nil means ["shim"]. The
	// C shim starts before Go only with ["shim"]; with other arguments
	// the binary's main must call ShimMain, which starts it again.
	ShimArgs []string
	// ShimEnv is added to the agent's environment for the shim, before
	// K1S_SHIM=1. Any binary linking this package runs the shim when
	// started as `<binary> shim ...` with K1S_SHIM=1 (see the package
	// documentation), test binaries included.
	ShimEnv []string
	// HostIP is reported as every sandbox's IP.
	HostIP string
	// SignalProcessGroup makes StopContainer send SIGTERM to the whole
	// process group. By default it follows container PID 1 semantics: only
	// the main process gets it, and only if it handles SIGTERM.
	SignalProcessGroup bool
	// Clock stamps creation times, events and stats; default real time.
	Clock clock.PassiveClock
}

// Runtime is the host runtime. It implements runtime.Runtime.
type Runtime struct {
	opts   Options
	clock  clock.PassiveClock
	events chan runtime.ContainerEvent
	done   chan struct{}

	mu         sync.Mutex
	closed     bool
	sandboxes  map[string]*sandbox
	containers map[string]*container
}

var _ runtime.Runtime = (*Runtime)(nil)

// eventBuffer bounds Events(); when nobody reads, further events are
// dropped (the kubelet relists periodically).
const eventBuffer = 1024

// New opens (or creates) the runtime state in opts.RootDir and re-adopts
// the containers a previous agent left running.
func New(opts Options) (*Runtime, error) {
	if opts.RootDir == "" {
		return nil, errors.New("process runtime: RootDir is required")
	}
	if opts.ShimBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process runtime: shim binary: %w", err)
		}
		opts.ShimBinary = exe
	}
	if opts.ShimArgs == nil {
		opts.ShimArgs = []string{"shim"}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	root, err := filepath.Abs(opts.RootDir)
	if err != nil {
		return nil, err
	}
	opts.RootDir = root
	for _, d := range []string{root, filepath.Join(root, "sandboxes"), filepath.Join(root, "containers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("process runtime: %w", err)
		}
	}
	r := &Runtime{
		opts:       opts,
		clock:      opts.Clock,
		events:     make(chan runtime.ContainerEvent, eventBuffer),
		done:       make(chan struct{}),
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return Name }

// Events implements runtime.Runtime.
func (r *Runtime) Events() <-chan runtime.ContainerEvent { return r.events }

// Close stops watching the containers; they and their shims keep running
// and a new Runtime on the same RootDir adopts them.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.done)
	}
	return nil
}

func (r *Runtime) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *Runtime) emit(t runtime.ContainerEventType, c *container) {
	if r.isClosed() {
		return
	}
	ev := runtime.ContainerEvent{
		ContainerID: c.rec.ID,
		SandboxID:   c.rec.SandboxID,
		Type:        t,
		Time:        r.clock.Now(),
	}
	select {
	case r.events <- ev:
	default:
	}
}

func (r *Runtime) sandboxDir(id string) string {
	return filepath.Join(r.opts.RootDir, "sandboxes", id)
}

func (r *Runtime) containerDir(id string) string {
	return filepath.Join(r.opts.RootDir, "containers", id)
}

// load reads the sandboxes and containers of RootDir and adopts the
// running ones.
func (r *Runtime) load() error {
	sbs, err := os.ReadDir(filepath.Join(r.opts.RootDir, "sandboxes"))
	if err != nil {
		return err
	}
	for _, e := range sbs {
		var rec sandboxRecord
		if err := readJSON(filepath.Join(r.sandboxDir(e.Name()), sandboxFile), &rec); err != nil {
			continue // a half-created or half-removed sandbox
		}
		r.sandboxes[rec.ID] = &sandbox{rec: rec}
	}
	cs, err := os.ReadDir(filepath.Join(r.opts.RootDir, "containers"))
	if err != nil {
		return err
	}
	var adopt []*container
	for _, e := range cs {
		dir := r.containerDir(e.Name())
		var rec containerRecord
		if err := readJSON(filepath.Join(dir, containerFile), &rec); err != nil {
			continue
		}
		var spec processSpec
		if err := readJSON(filepath.Join(dir, specFile), &spec); err != nil {
			continue
		}
		c := newContainer(rec, spec, dir)
		var st shimState
		if err := readJSON(filepath.Join(dir, stateFile), &st); err == nil {
			c.state = &st
			if st.Status == statusExited {
				c.markExited()
			} else {
				adopt = append(adopt, c)
			}
		}
		r.containers[rec.ID] = c
	}
	sort.Slice(adopt, func(i, j int) bool { return adopt[i].rec.CreatedAt.Before(adopt[j].rec.CreatedAt) })
	for _, c := range adopt {
		st := *c.state
		if alive(st.ShimPID, st.ShimStart) {
			go func() {
				waitExit(st.ShimPID, st.ShimStart, r.done)
				r.shimGone(c)
			}()
		} else {
			r.shimGone(c)
		}
	}
	return nil
}
