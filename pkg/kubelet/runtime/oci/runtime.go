package oci

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
	"k1s.dev/k1s/pkg/network"
)

// Name is the RuntimeClass handler name of the OCI runtime.
const Name = "oci"

// Options configure the OCI runtime.
type Options struct {
	// RootDir holds the runtime's state (e.g. DATA_DIR/agent/runtime/oci).
	RootDir string
	// Images is the node's image store.
	Images *image.Store
	// Runc is the OCI runtime binary; default runc from PATH.
	Runc string
	// CgroupParent of every container's cgroup (cgroupfs path); default
	// "/k1s".
	CgroupParent string
	// HostIP is the IP of hostNetwork sandboxes (of every sandbox without
	// Network) and the address their /etc/hosts gives the pod's hostname.
	HostIP string
	// Network gives sandboxes of pods that are not hostNetwork a network
	// namespace and a pod IP; nil: every sandbox is in the host network.
	// New tears down the networks of sandboxes that no longer exist.
	Network *network.Manager
	// InsecureRegistries are pulled from over plain HTTP.
	InsecureRegistries []string
	// ShimBinary, ShimArgs and ShimEnv are the host runtime's (see
	// process.Options): the shims holding each `runc run`.
	ShimBinary string
	ShimArgs   []string
	ShimEnv    []string
	Clock      clock.PassiveClock
}

// Runtime is the OCI runtime. It implements runtime.Runtime.
type Runtime struct {
	opts   Options
	shims  *process.Runtime
	images *image.Store
	clock  clock.PassiveClock
	events chan runtime.ContainerEvent
	done   chan struct{}
	fwd    sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	sandboxes  map[string]*sandboxRecord
	containers map[string]*container
	byShim     map[string]string // host runtime container id → ours
}

var _ runtime.Runtime = (*Runtime)(nil)

// Available reports whether the OCI runtime can run here: root and a runc
// binary (returned).
func Available() (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("the oci runtime needs root")
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("the oci runtime needs runc: %w", err)
	}
	return p, nil
}

// New opens (or creates) the runtime state in opts.RootDir; containers a
// previous agent left running are adopted.
func New(opts Options) (*Runtime, error) {
	if opts.RootDir == "" || opts.Images == nil {
		return nil, errors.New("oci runtime: RootDir and Images are required")
	}
	if opts.Runc == "" {
		p, err := Available()
		if err != nil {
			return nil, err
		}
		opts.Runc = p
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = "/k1s"
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	root, err := filepath.Abs(opts.RootDir)
	if err != nil {
		return nil, err
	}
	opts.RootDir = root
	for _, d := range []string{"sandboxes", "containers", "runc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			return nil, fmt.Errorf("oci runtime: %w", err)
		}
	}
	r := &Runtime{
		opts:       opts,
		images:     opts.Images,
		clock:      opts.Clock,
		events:     make(chan runtime.ContainerEvent, 1024),
		done:       make(chan struct{}),
		sandboxes:  map[string]*sandboxRecord{},
		containers: map[string]*container{},
		byShim:     map[string]string{},
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	shims, err := process.New(process.Options{
		RootDir:    filepath.Join(root, "shims"),
		ShimBinary: opts.ShimBinary,
		ShimArgs:   opts.ShimArgs,
		ShimEnv:    opts.ShimEnv,
		HostIP:     opts.HostIP,
		Clock:      opts.Clock,
	})
	if err != nil {
		return nil, err
	}
	r.shims = shims
	r.restoreNetwork(context.Background())
	r.fwd.Add(1)
	go r.forward()
	return r, nil
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return Name }

// Events implements runtime.Runtime.
func (r *Runtime) Events() <-chan runtime.ContainerEvent { return r.events }

// Close stops watching; containers keep running and a new Runtime on the
// same RootDir adopts them.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	r.fwd.Wait()
	return r.shims.Close()
}

// forward translates the shims' container events to our ids. The host
// runtime's Deleted events are dropped: RemoveContainer emits ours.
func (r *Runtime) forward() {
	defer r.fwd.Done()
	in := r.shims.Events()
	for {
		select {
		case <-r.done:
			return
		case ev := <-in:
			if ev.Type == runtime.ContainerDeletedEvent {
				continue
			}
			id := r.ourID(ev.ContainerID)
			if id == "" {
				continue
			}
			ev.ContainerID = id
			r.send(ev)
		}
	}
}

// ourID maps a shim container id to ours; the mapping is recorded just
// after the host runtime's CreateContainer returns, so a Created event
// may arrive first: wait for it briefly.
func (r *Runtime) ourID(shimID string) string {
	for i := 0; i < 200; i++ {
		r.mu.Lock()
		id, ok := r.byShim[shimID]
		r.mu.Unlock()
		if ok {
			return id
		}
		select {
		case <-r.done:
			return ""
		case <-time.After(5 * time.Millisecond):
		}
	}
	return ""
}

func (r *Runtime) send(ev runtime.ContainerEvent) {
	select {
	case <-r.done:
	case r.events <- ev:
	default: // nobody reads: the kubelet relists
	}
}

func (r *Runtime) emit(t runtime.ContainerEventType, c *container) {
	r.send(runtime.ContainerEvent{ContainerID: c.rec.ID, SandboxID: c.rec.SandboxID, Type: t, Time: r.clock.Now()})
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Runtime) sandboxDir(id string) string {
	return filepath.Join(r.opts.RootDir, "sandboxes", id)
}

func (r *Runtime) containerDir(id string) string {
	return filepath.Join(r.opts.RootDir, "containers", id)
}

func (r *Runtime) runcCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.opts.Runc, append([]string{"--root", filepath.Join(r.opts.RootDir, "runc")}, args...)...)
}

// runc runs a runc subcommand and returns its error with its output.
func (r *Runtime) runc(ctx context.Context, args ...string) error {
	out, err := r.runcCmd(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (r *Runtime) load() error {
	sbs, _ := os.ReadDir(filepath.Join(r.opts.RootDir, "sandboxes"))
	for _, e := range sbs {
		var rec sandboxRecord
		if readJSON(filepath.Join(r.sandboxDir(e.Name()), "sandbox.json"), &rec) == nil {
			r.sandboxes[rec.ID] = &rec
		}
	}
	cs, _ := os.ReadDir(filepath.Join(r.opts.RootDir, "containers"))
	for _, e := range cs {
		var rec containerRecord
		if readJSON(filepath.Join(r.containerDir(e.Name()), "container.json"), &rec) == nil {
			r.containers[rec.ID] = &container{rec: rec, dir: r.containerDir(rec.ID)}
			r.byShim[rec.ShimID] = rec.ID
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// ImageStatus implements runtime.Runtime: ID is the image's config digest.
func (r *Runtime) ImageStatus(ctx context.Context, ref string) (*runtime.ImageStatus, error) {
	norm, err := image.Normalize(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", runtime.ErrInvalidConfig, err)
	}
	img, err := r.images.Get(ref)
	if err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return nil, fmt.Errorf("image %q: %w", ref, runtime.ErrNotFound)
		}
		return nil, err
	}
	return &runtime.ImageStatus{Ref: norm, ID: img.ID, SizeBytes: imageSize(img)}, nil
}

// imageSize is what the kubelet reports: containerd's content size when
// known (images stored before it was recorded: the unpacked size).
func imageSize(img *image.Image) int64 {
	if img.ContentSize > 0 {
		return img.ContentSize
	}
	return img.Size
}

// PullImage implements runtime.Runtime.
func (r *Runtime) PullImage(ctx context.Context, ref string, auth []runtime.RegistryAuth) (*runtime.ImageStatus, error) {
	norm, err := image.Normalize(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", runtime.ErrInvalidConfig, err)
	}
	var auths []image.Auth
	for _, a := range auth {
		auths = append(auths, image.Auth{Server: a.Server, Username: a.Username, Password: a.Password, Auth: a.Auth})
	}
	img, err := r.images.Pull(ctx, ref, image.PullOptions{Auth: auths, Insecure: r.opts.InsecureRegistries})
	if err != nil {
		return nil, err
	}
	return &runtime.ImageStatus{Ref: norm, ID: img.ID, SizeBytes: imageSize(img)}, nil
}
