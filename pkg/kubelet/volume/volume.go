// Package volume prepares a pod's volumes in its directory on the host
// (<root>/<pod uid>/volumes/<plugin>/<volume>, upstream's layout): emptyDir,
// configMap, secret, downwardAPI, projected (service account token,
// kube-root-ca.crt, namespace, configMaps, secrets, downward API) and
// hostPath, and turns a container's volumeMounts into runtime mounts.
package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	podshelper "k8s.io/kubernetes/pkg/apis/core/pods"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/utils/clock"
)

// ErrUnsupported: the volume type cannot be prepared on this node.
var ErrUnsupported = errors.New("unsupported volume type")

// Source reads what volumes project.
type Source interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
	// ServiceAccountToken returns a token for the pod's service account
	// (TokenRequest bound to the pod) and its expiry.
	ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, time.Time, error)
}

// PlaceholderToken is written when the API server cannot issue tokens.
const PlaceholderToken = "k1s-placeholder-token"

// refreshEvery is how often projected contents are refreshed (upstream's
// kubelet sync period).
const refreshEvery = time.Minute

// Manager sets volumes up and tears them down.
type Manager struct {
	root            string
	src             Source
	clock           clock.Clock
	NodeAllocatable v1.ResourceList

	shared sharedReads // what periodic refreshes read

	mu     sync.Mutex
	synced map[types.UID]time.Time
	tokens map[string]time.Time // token file path -> refresh time
}

// NewManager places pod directories under root (<RootDir>/pods).
func NewManager(root string, src Source, c clock.Clock) *Manager {
	return &Manager{root: root, src: src, clock: c, shared: sharedReads{clock: c}, synced: map[types.UID]time.Time{}, tokens: map[string]time.Time{}}
}

// PodDir is <root>/<uid>.
func (m *Manager) PodDir(uid types.UID) string { return filepath.Join(m.root, string(uid)) }

// Dir is where a volume lives on the host.
func (m *Manager) Dir(uid types.UID, v *v1.Volume) string {
	return filepath.Join(m.PodDir(uid), "volumes", pluginDir(v), v.Name)
}

func pluginDir(v *v1.Volume) string {
	switch {
	case v.EmptyDir != nil:
		return "kubernetes.io~empty-dir"
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap"
	case v.Secret != nil:
		return "kubernetes.io~secret"
	case v.DownwardAPI != nil:
		return "kubernetes.io~downward-api"
	case v.Projected != nil:
		return "kubernetes.io~projected"
	}
	return "kubernetes.io~other"
}

// MountError is a volume that could not be set up (the FailedMount event).
type MountError struct {
	Volume string
	Err    error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}
func (e *MountError) Unwrap() error { return e.Err }

// Setup prepares every volume of pod and returns their host paths by name.
// Contents of configMap, secret, downward API and projected volumes are
// refreshed at most once a minute (and tokens when 80% of their life passed).
func (m *Manager) Setup(ctx context.Context, pod *v1.Pod, podIPs []string) (map[string]string, error) {
	m.mu.Lock()
	last, seen := m.synced[pod.UID]
	m.mu.Unlock()
	refresh := !seen || m.clock.Since(last) >= refreshEvery
	if seen {
		ctx = forRefresh(ctx)
	}
	paths := map[string]string{}
	if err := os.MkdirAll(m.PodDir(pod.UID), 0o750); err != nil {
		return nil, err
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if v.HostPath != nil {
			p, err := hostPath(v.HostPath)
			if err != nil {
				return nil, &MountError{v.Name, err}
			}
			paths[v.Name] = p
			continue
		}
		dir := m.Dir(pod.UID, v)
		paths[v.Name] = dir
		_, statErr := os.Stat(dir)
		if !refresh && statErr == nil && !lostMemory(v, dir) {
			continue
		}
		if err := m.setupVolume(ctx, pod, v, dir, podIPs); err != nil {
			return nil, &MountError{v.Name, err}
		}
		// (an emptyDir once, when it is made: its files are the pod's)
		if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil && (v.EmptyDir == nil || statErr != nil) {
			if err := setOwnership(dir, *sc.FSGroup, v.EmptyDir == nil); err != nil {
				return nil, &MountError{v.Name, err}
			}
		}
	}
	if refresh {
		m.mu.Lock()
		m.synced[pod.UID] = m.clock.Now()
		m.mu.Unlock()
	}
	return paths, nil
}

func hostPath(h *v1.HostPathVolumeSource) (string, error) {
	p := filepath.Clean(h.Path)
	t := v1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	fi, err := os.Stat(p)
	switch t {
	case v1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return p, os.MkdirAll(p, 0o755)
		}
	case v1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return p, err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return p, err
			}
			return p, f.Close()
		}
	case v1.HostPathDirectory:
		if err != nil || !fi.IsDir() {
			return p, fmt.Errorf("hostPath type check failed: %s is not a directory", p)
		}
	case v1.HostPathFile:
		if err != nil || !fi.Mode().IsRegular() {
			return p, fmt.Errorf("hostPath type check failed: %s is not a file", p)
		}
	}
	return p, nil
}

// file is one projected file.
type file struct {
	data []byte
	mode os.FileMode
}

func (m *Manager) setupVolume(ctx context.Context, pod *v1.Pod, v *v1.Volume, dir string, podIPs []string) error {
	switch {
	case v.EmptyDir != nil:
		return setupEmptyDir(dir, v.EmptyDir)
	case v.ConfigMap != nil:
		files, err := m.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
		if err != nil {
			return err
		}
		return writeFiles(dir, files)
	case v.Secret != nil:
		if err := memoryBacked(dir); err != nil {
			return err
		}
		files, err := m.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
		if err != nil {
			return err
		}
		return writeFiles(dir, files)
	case v.DownwardAPI != nil:
		files, err := m.downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, podIPs)
		if err != nil {
			return err
		}
		return writeFiles(dir, files)
	case v.Projected != nil:
		if err := memoryBacked(dir); err != nil {
			return err
		}
		// the sources are read at the same time (a token request and a
		// ConfigMap read are two round trips), merged in their order
		sources := v.Projected.Sources
		got := make([]map[string]file, len(sources))
		errs := make([]error, len(sources))
		var wg sync.WaitGroup
		for i := range sources {
			s := &sources[i]
			read := func() {
				switch {
				case s.ServiceAccountToken != nil:
					got[i], errs[i] = m.tokenFile(ctx, pod, s.ServiceAccountToken, filepath.Join(dir, s.ServiceAccountToken.Path), v.Projected.DefaultMode)
				case s.ConfigMap != nil:
					got[i], errs[i] = m.configMapFiles(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, v.Projected.DefaultMode, s.ConfigMap.Optional)
				case s.Secret != nil:
					got[i], errs[i] = m.secretFiles(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode, s.Secret.Optional)
				case s.DownwardAPI != nil:
					got[i], errs[i] = m.downwardFiles(pod, s.DownwardAPI.Items, v.Projected.DefaultMode, podIPs)
				}
			}
			if s.DownwardAPI != nil || i == len(sources)-1 {
				read() // no API call (or the last one): no goroutine
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); read() }()
		}
		wg.Wait()
		files := map[string]file{}
		for i := range sources {
			if errs[i] != nil {
				return errs[i]
			}
			for k, f := range got[i] {
				files[k] = f
			}
		}
		return writeFiles(dir, files)
	}
	return fmt.Errorf("%w: volume %q", ErrUnsupported, v.Name)
}

func mode(item *int32, def *int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item)
	}
	if def != nil {
		return os.FileMode(*def)
	}
	return 0o644
}

func optional(b *bool) bool { return b != nil && *b }

func project(data map[string][]byte, items []v1.KeyToPath, def *int32, kind, ns, name string, opt bool) (map[string]file, error) {
	files := map[string]file{}
	if len(items) == 0 {
		for k, d := range data {
			files[k] = file{d, mode(nil, def)}
		}
		return files, nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			if kind == "secret" {
				return nil, fmt.Errorf("references non-existent secret key: %s", it.Key)
			}
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		files[it.Path] = file{d, mode(it.Mode, def)}
	}
	return files, nil
}

func (m *Manager) configMapFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, def *int32, opt *bool) (map[string]file, error) {
	cm, err := m.configMap(ctx, ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional(opt) {
				return map[string]file{}, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmap"}, name)
		}
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(data, items, def, "configmap", ns, name, optional(opt))
}

func (m *Manager) secretFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, def *int32, opt *bool) (map[string]file, error) {
	s, err := m.secret(ctx, ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional(opt) {
				return map[string]file{}, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secret"}, name)
		}
		return nil, err
	}
	return project(s.Data, items, def, "secret", ns, name, optional(opt))
}

func (m *Manager) downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, def *int32, podIPs []string) (map[string]file, error) {
	files := map[string]file{}
	for _, it := range items {
		var val string
		switch {
		case it.FieldRef != nil:
			version := it.FieldRef.APIVersion
			if version == "" {
				version = "v1"
			}
			path, subscript, err := podshelper.ConvertDownwardAPIFieldLabel(version, it.FieldRef.FieldPath, "")
			if err != nil {
				return nil, err
			}
			switch path {
			case "metadata.labels":
				val = formatMap(pod.Labels)
			case "metadata.annotations":
				val = formatMap(pod.Annotations)
			case "status.podIP":
				if len(podIPs) > 0 {
					val = podIPs[0]
				}
			case "status.podIPs":
				val = strings.Join(podIPs, ",")
			default:
				_ = subscript
				val, err = fieldpath.ExtractFieldPathAsString(pod, path)
				if err != nil {
					return nil, err
				}
			}
		case it.ResourceFieldRef != nil:
			var err error
			val, err = resource.ExtractResourceValueByContainerNameAndNodeAllocatable(it.ResourceFieldRef, pod, it.ResourceFieldRef.ContainerName, m.NodeAllocatable)
			if err != nil {
				return nil, err
			}
		}
		files[it.Path] = file{[]byte(val), mode(it.Mode, def)}
	}
	return files, nil
}

// formatMap is the downward API's key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

func (m *Manager) tokenFile(ctx context.Context, pod *v1.Pod, s *v1.ServiceAccountTokenProjection, path string, def *int32) (map[string]file, error) {
	m.mu.Lock()
	refreshAt, ok := m.tokens[path]
	m.mu.Unlock()
	if ok && m.clock.Now().Before(refreshAt) {
		if data, err := os.ReadFile(path); err == nil {
			return map[string]file{s.Path: {data, mode(nil, def)}}, nil
		}
	}
	exp := int64(3607)
	if s.ExpirationSeconds != nil {
		exp = *s.ExpirationSeconds
	}
	now := m.clock.Now()
	tok, expiry, err := m.src.ServiceAccountToken(ctx, pod, s.Audience, exp)
	refreshAt = now.Add(expiry.Sub(now) * 8 / 10)
	switch {
	case err == nil && tok != "":
	case err == nil || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
		// the API server cannot issue tokens: a placeholder, asked again
		// at the next refresh
		tok, refreshAt = PlaceholderToken, now
	default:
		// refused (the Node authorizer does not know the pod yet) or
		// failed: the mount fails and is retried, never a placeholder
		return nil, err
	}
	m.mu.Lock()
	m.tokens[path] = refreshAt
	m.mu.Unlock()
	return map[string]file{s.Path: {[]byte(tok), mode(nil, def)}}, nil
}

// writeFiles makes dir hold exactly files (relative paths), rewriting only
// what changed, each file replaced atomically.
// setOwnership gives a volume to the pod's fsGroup as upstream's
// SetVolumeOwnership: group fsGroup on everything, group read (and write
// unless readOnly) on files, setgid and group search on directories.
func setOwnership(dir string, fsGroup int64, readOnly bool) error {
	mask := os.FileMode(0o660)
	if readOnly {
		mask = 0o440
	}
	return filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, int(fsGroup)); err != nil {
			return err
		}
		m := mask
		if info.IsDir() {
			m |= os.ModeSetgid | 0o110
		}
		return os.Chmod(p, info.Mode()|m)
	})
}

func writeFiles(dir string, files map[string]file) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, f := range files {
		p := filepath.Join(dir, filepath.Clean("/"+rel))
		if old, err := os.ReadFile(p); err == nil && string(old) == string(f.data) {
			os.Chmod(p, f.mode)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(tmp, f.mode); err != nil { // whatever the umask
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	// drop files no longer projected
	return filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := files[rel]; !ok {
			os.Remove(p)
		}
		return nil
	})
}

// Mounts turns the container's volumeMounts into runtime mounts.
func Mounts(c *v1.Container, paths map[string]string) ([]runtime.Mount, error) {
	var out []runtime.Mount
	for _, vm := range c.VolumeMounts {
		host, ok := paths[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		if vm.SubPath != "" {
			sub := filepath.Clean(vm.SubPath)
			if filepath.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
				return nil, fmt.Errorf("invalid subpath %q", vm.SubPath)
			}
			host = filepath.Join(host, sub)
			if _, err := os.Stat(host); os.IsNotExist(err) {
				if err := os.MkdirAll(host, 0o777); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, runtime.Mount{Name: vm.Name, HostPath: host, ContainerPath: vm.MountPath, ReadOnly: vm.ReadOnly, SubPath: vm.SubPath})
	}
	return out, nil
}

// Cleanup removes the pod's directory.
// setupEmptyDir makes an emptyDir: a world-writable directory (0777, as
// upstream, whatever the umask), or for medium Memory a tmpfs of
// sizeLimit (a directory where the agent cannot mount: not root).
func setupEmptyDir(dir string, e *v1.EmptyDirVolumeSource) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	made := statErr != nil
	if e.Medium == v1.StorageMediumMemory && os.Geteuid() == 0 && !isMountPoint(dir) {
		made = true
		opts := "mode=1777"
		if e.SizeLimit != nil && e.SizeLimit.Value() > 0 {
			opts += fmt.Sprintf(",size=%d", e.SizeLimit.Value())
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("emptyDir medium Memory: mount tmpfs: %w", err)
		}
	}
	if !made {
		// set up before: its mode is the pod's now (fsGroup's setgid, a
		// chmod in a container); a refresh must not reset it
		return nil
	}
	return os.Chmod(dir, 0o777)
}

// memoryBacked makes dir a tmpfs (once): secret and projected volumes
// never touch the node's disk, as upstream's (a plain directory where the
// agent cannot mount: not root).
func memoryBacked(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() != 0 || isMountPoint(dir) {
		return nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}

// lostMemory: a memory-backed volume whose tmpfs is gone (unmounted by a
// clean stop): it must be made again.
func lostMemory(v *v1.Volume, dir string) bool {
	memory := v.Secret != nil || v.Projected != nil || (v.EmptyDir != nil && v.EmptyDir.Medium == v1.StorageMediumMemory)
	return memory && os.Geteuid() == 0 && !isMountPoint(dir)
}

// isMountPoint: something is mounted at dir.
func isMountPoint(dir string) bool {
	m, err := mountinfo.Mounted(dir)
	return err == nil && m
}

// unmountUnder detaches every mount below dir (memory-backed volumes),
// deepest first, before the directory is removed.
func unmountUnder(dir string) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return
	}
	var points []string
	for _, m := range mounts {
		if m.Mountpoint != dir {
			points = append(points, m.Mountpoint)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}

func (m *Manager) Cleanup(uid types.UID) error {
	m.mu.Lock()
	delete(m.synced, uid)
	prefix := m.PodDir(uid) + string(filepath.Separator)
	for p := range m.tokens {
		if strings.HasPrefix(p, prefix) {
			delete(m.tokens, p)
		}
	}
	m.mu.Unlock()
	unmountUnder(m.PodDir(uid))
	return os.RemoveAll(m.PodDir(uid))
}

// UnmountAll detaches every memory-backed volume of every pod (a clean
// stop that stops the node's pods leaves nothing mounted).
func (m *Manager) UnmountAll() {
	unmountUnder(m.root)
}

// PodDirs lists the pod uids that have a directory (orphan cleanup).
func (m *Manager) PodDirs() []types.UID {
	entries, _ := os.ReadDir(m.root)
	var out []types.UID
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, types.UID(e.Name()))
		}
	}
	return out
}
