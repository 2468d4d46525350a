package oci

// Pod and QoS cgroups, as the kubelet's cgroupfs driver lays them out
// (CgroupParent plays upstream's "kubepods"):
//
//	<CgroupParent>/pod<uid>/<container id>             Guaranteed
//	<CgroupParent>/burstable/pod<uid>/<container id>   Burstable
//	<CgroupParent>/besteffort/pod<uid>/<container id>  BestEffort
//
// The pod cgroup carries upstream's ResourceConfigForPod: cpu.shares from
// the pod's requests (MilliCPUToShares, 2 for BestEffort), a CFS quota
// over a 100 ms period and a memory limit when every container declares
// that limit (the kubelet computes them: ContainerConfig.PodResources),
// and the pod's pids limit. besteffort/ gets cpu.shares 2 and burstable/
// the sum of its pods' shares, as the kubelet's QoS manager keeps them.
// runc creates the container's own cgroup from the spec's cgroupsPath
// (with the container's limits) and the path's missing ancestors in the
// other hierarchies.
//
// The pod cgroup is made when its first container is created (the pod
// UID is the sandbox's, from the host runtime's sandbox record) and again
// at every start (cheap, and it closes the race with the removal of a
// sibling); it is removed, with its QoS directory if that is then empty,
// when the last container of the pod is removed. Both steps run under
// podCgroupMu, the removal only when no container record still names it.
//
// cgroup v1 (one hierarchy per controller, including a hybrid
// /sys/fs/cgroup/unified) and v2 (unified: limits in cpu.weight, cpu.max,
// memory.max, pids.max; the cpu, memory and pids controllers are enabled
// down the path through cgroup.subtree_control).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// Upstream's CFS constants (pkg/kubelet/cm).
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	quotaPeriod   = 100000 // µs
	minQuotaValue = 1000   // µs
)

// QoS sub-trees of CgroupParent (Guaranteed pods sit directly in it).
const (
	burstableCgroup  = "burstable"
	besteffortCgroup = "besteffort"
)

// podCgroupMu serialises creating and removing pod and QoS cgroups.
var podCgroupMu sync.Mutex

// milliCPUToShares is upstream's MilliCPUToShares.
func milliCPUToShares(milliCPU int64) uint64 {
	if milliCPU <= 0 {
		return minShares
	}
	shares := milliCPU * sharesPerCPU / 1000
	switch {
	case shares < minShares:
		return minShares
	case shares > maxShares:
		return maxShares
	}
	return uint64(shares)
}

// milliCPUToQuota is upstream's MilliCPUToQuota over the 100 ms period
// (0: no limit).
func milliCPUToQuota(milliCPU int64) int64 {
	if milliCPU <= 0 {
		return 0
	}
	quota := milliCPU * quotaPeriod / 1000
	if quota < minQuotaValue {
		quota = minQuotaValue
	}
	return quota
}

// sharesToWeight converts cpu.shares to cgroup v2's cpu.weight as runc
// does (2..262144 → 1..10000).
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + (shares-2)*9999/262142
}

// weightToShares is sharesToWeight's inverse (rounded), for summing the
// burstable pods' weights back into shares.
func weightToShares(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	return 2 + ((weight-1)*262142+9998)/9999
}

// qosClassOf is the QoS class of a pod whose resources are r alone (a
// container config without PodQOSClass): upstream's rules for one
// container.
func qosClassOf(r *runtime.Resources) string {
	if r == nil || (r.CPUMillis == 0 && r.CPULimitMillis == 0 && r.MemoryRequest == 0 && r.MemoryLimitBytes == 0) {
		return runtime.QOSBestEffort
	}
	cpuReq, memReq := r.CPUMillis, r.MemoryRequest
	if cpuReq == 0 {
		cpuReq = r.CPULimitMillis
	}
	if memReq == 0 {
		memReq = r.MemoryLimitBytes
	}
	if r.CPULimitMillis > 0 && r.MemoryLimitBytes > 0 && cpuReq == r.CPULimitMillis && memReq == r.MemoryLimitBytes {
		return runtime.QOSGuaranteed
	}
	return runtime.QOSBurstable
}

// podCgroupPath is the pod's cgroup (cgroupfs path, from the hierarchy's
// root).
func podCgroupPath(parent, qos, uid string) string {
	switch qos {
	case runtime.QOSBurstable:
		return filepath.Join(parent, burstableCgroup, "pod"+uid)
	case runtime.QOSBestEffort:
		return filepath.Join(parent, besteffortCgroup, "pod"+uid)
	}
	return filepath.Join(parent, "pod"+uid)
}

// podCgroupSpec is what the runtime needs to (re)make a pod cgroup; it is
// kept in every container record of the pod.
type podCgroupSpec struct {
	Path      string
	QOS       string
	Resources runtime.Resources
}

// podCgroupFor is the pod cgroup of a container config in a pod with uid.
func podCgroupFor(parent, uid string, cfg *runtime.ContainerConfig) podCgroupSpec {
	res := cfg.PodResources
	if res == nil {
		res = cfg.Resources
	}
	qos := cfg.PodQOSClass
	if qos == "" {
		qos = qosClassOf(res)
	}
	spec := podCgroupSpec{Path: podCgroupPath(parent, qos, uid), QOS: qos}
	if res != nil {
		spec.Resources = *res
		spec.Resources.OOMScoreAdj = nil
	}
	return spec
}

// cgroupLimits are the values written to a cgroup (0: unlimited / unset).
type cgroupLimits struct {
	shares uint64
	quota  int64 // µs per quotaPeriod
	memory int64
	pids   int64
}

// podLimits is upstream's ResourceConfigForPod for the pod's QoS class.
func podLimits(qos string, r runtime.Resources) cgroupLimits {
	l := cgroupLimits{pids: r.PidsLimit}
	if qos == runtime.QOSBestEffort {
		l.shares = minShares
		return l
	}
	l.shares = milliCPUToShares(r.CPUMillis)
	l.quota = milliCPUToQuota(r.CPULimitMillis)
	l.memory = r.MemoryLimitBytes
	return l
}

// cgroupFS is the node's cgroup file system.
type cgroupFS struct {
	root string // where the hierarchies are mounted
	v2   bool   // root is the unified hierarchy
	// rmdir removes a cgroup (unix.Rmdir; tests on a plain directory
	// tree replace it).
	rmdir func(string) error
}

func (fs *cgroupFS) remove(dir string) error {
	if fs.rmdir != nil {
		return fs.rmdir(dir)
	}
	return unix.Rmdir(dir)
}

func hostCgroups() *cgroupFS { return detectCgroups(cgroupRoot) }

func detectCgroups(root string) *cgroupFS {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return &cgroupFS{root: root, v2: err == nil}
}

// dir is path in controller's hierarchy (v2: the unified one).
func (fs *cgroupFS) dir(controller, path string) string {
	if fs.v2 {
		return filepath.Join(fs.root, path)
	}
	return filepath.Join(fs.root, controller, path)
}

// hierarchies are the v1 hierarchies' directories (controllers, named
// hierarchies and a hybrid "unified"): runc creates a container's path in
// each.
func (fs *cgroupFS) hierarchies() []string {
	if fs.v2 {
		return []string{fs.root}
	}
	entries, _ := os.ReadDir(fs.root)
	var out []string
	for _, e := range entries {
		p := filepath.Join(fs.root, e.Name())
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func (fs *cgroupFS) has(controller string) bool {
	if fs.v2 {
		data, err := os.ReadFile(filepath.Join(fs.root, "cgroup.controllers"))
		return err == nil && containsWord(string(data), controller)
	}
	fi, err := os.Stat(filepath.Join(fs.root, controller))
	return err == nil && fi.IsDir()
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func writeCgroupFile(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// mkdir creates dir, retrying when a concurrent removal of an empty
// ancestor (another process's QoS clean-up) gets in between.
func mkdirCgroup(dir string) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = os.MkdirAll(dir, 0o755); err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return err
}

// ensurePod creates (or updates) the pod cgroup of spec and its QoS
// directory under parent.
func (fs *cgroupFS) ensurePod(parent string, spec podCgroupSpec) error {
	podCgroupMu.Lock()
	defer podCgroupMu.Unlock()
	l := podLimits(spec.QOS, spec.Resources)
	qosDir := filepath.Dir(spec.Path)
	if fs.v2 {
		return fs.ensurePodV2(parent, qosDir, spec, l)
	}
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids"} {
		if fs.has(c) {
			if err := mkdirCgroup(fs.dir(c, spec.Path)); err != nil {
				return err
			}
		}
	}
	if fs.has("cpu") {
		if spec.QOS == runtime.QOSBestEffort {
			if err := writeCgroupFile(fs.dir("cpu", qosDir), "cpu.shares", strconv.Itoa(minShares)); err != nil {
				return err
			}
		}
		d := fs.dir("cpu", spec.Path)
		quota := "-1"
		if l.quota > 0 {
			quota = strconv.FormatInt(l.quota, 10)
		}
		for _, kv := range [][2]string{
			{"cpu.shares", strconv.FormatUint(l.shares, 10)},
			{"cpu.cfs_period_us", strconv.Itoa(quotaPeriod)},
			{"cpu.cfs_quota_us", quota},
		} {
			if err := writeCgroupFile(d, kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	if fs.has("memory") {
		mem := "-1"
		if l.memory > 0 {
			mem = strconv.FormatInt(l.memory, 10)
		}
		if err := writeCgroupFile(fs.dir("memory", spec.Path), "memory.limit_in_bytes", mem); err != nil {
			return err
		}
	}
	if fs.has("pids") {
		if err := writeCgroupFile(fs.dir("pids", spec.Path), "pids.max", pidsMax(l.pids)); err != nil {
			return err
		}
	}
	if spec.QOS == runtime.QOSBurstable {
		fs.updateBurstableShares(qosDir)
	}
	return nil
}

func pidsMax(n int64) string {
	if n > 0 {
		return strconv.FormatInt(n, 10)
	}
	return "max"
}

func (fs *cgroupFS) ensurePodV2(parent, qosDir string, spec podCgroupSpec, l cgroupLimits) error {
	if err := mkdirCgroup(fs.dir("", spec.Path)); err != nil {
		return err
	}
	// Controllers down the path: the root, each ancestor and the pod (its
	// containers are its children).
	var enable []string
	for _, c := range []string{"cpu", "memory", "pids"} {
		if fs.has(c) {
			enable = append(enable, c)
		}
	}
	rel := strings.Trim(spec.Path, "/")
	parts := strings.Split(rel, "/")
	for i := 0; i <= len(parts); i++ {
		d := filepath.Join(fs.root, filepath.Join(parts[:i]...))
		for _, c := range enable {
			// One at a time: a controller the parent lacks fails alone.
			_ = writeCgroupFile(d, "cgroup.subtree_control", "+"+c)
		}
	}
	d := fs.dir("", spec.Path)
	// A controller the root has but could not hand down (e.g. a cgroup
	// namespace whose root holds processes) is missing from the pod's
	// cgroup.controllers: its limits are skipped (runc would fail on them
	// anyway).
	has := fs.has
	if data, err := os.ReadFile(filepath.Join(d, "cgroup.controllers")); err == nil {
		has = func(c string) bool { return containsWord(string(data), c) }
	}
	if has("cpu") {
		if spec.QOS == runtime.QOSBestEffort {
			if err := writeCgroupFile(fs.dir("", qosDir), "cpu.weight", strconv.FormatUint(sharesToWeight(minShares), 10)); err != nil {
				return err
			}
		}
		max := "max"
		if l.quota > 0 {
			max = strconv.FormatInt(l.quota, 10)
		}
		if err := writeCgroupFile(d, "cpu.weight", strconv.FormatUint(sharesToWeight(l.shares), 10)); err != nil {
			return err
		}
		if err := writeCgroupFile(d, "cpu.max", fmt.Sprintf("%s %d", max, quotaPeriod)); err != nil {
			return err
		}
	}
	if has("memory") {
		mem := "max"
		if l.memory > 0 {
			mem = strconv.FormatInt(l.memory, 10)
		}
		if err := writeCgroupFile(d, "memory.max", mem); err != nil {
			return err
		}
	}
	if has("pids") {
		if err := writeCgroupFile(d, "pids.max", pidsMax(l.pids)); err != nil {
			return err
		}
	}
	if spec.QOS == runtime.QOSBurstable {
		fs.updateBurstableShares(qosDir)
	}
	return nil
}

// updateBurstableShares sets the burstable cgroup's share to the sum of
// its pods' (upstream: the sum of the burstable pods' CPU requests).
func (fs *cgroupFS) updateBurstableShares(qosDir string) {
	if !fs.has("cpu") {
		return
	}
	dir := fs.dir("cpu", qosDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var sum uint64
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "pod") {
			continue
		}
		if fs.v2 {
			w, err := readUint(filepath.Join(dir, e.Name(), "cpu.weight"))
			if err == nil {
				sum += weightToShares(w)
			}
		} else if s, err := readUint(filepath.Join(dir, e.Name(), "cpu.shares")); err == nil {
			sum += s
		}
	}
	if sum < minShares {
		sum = minShares
	}
	if sum > maxShares {
		sum = maxShares
	}
	if fs.v2 {
		_ = writeCgroupFile(dir, "cpu.weight", strconv.FormatUint(sharesToWeight(sum), 10))
	} else {
		_ = writeCgroupFile(dir, "cpu.shares", strconv.FormatUint(sum, 10))
	}
}

// removePod removes the pod cgroup path from every hierarchy, then its QoS
// directory when that is empty (it is made again on demand). A cgroup
// still holding a child or a process fails with EBUSY.
func (fs *cgroupFS) removePod(parent string, spec podCgroupSpec) error {
	podCgroupMu.Lock()
	defer podCgroupMu.Unlock()
	var errs []error
	for _, h := range fs.hierarchies() {
		if err := fs.remove(filepath.Join(h, spec.Path)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", filepath.Join(h, spec.Path), err))
		}
	}
	if qosDir := filepath.Dir(spec.Path); filepath.Clean(qosDir) != filepath.Clean(parent) {
		for _, h := range fs.hierarchies() {
			_ = fs.remove(filepath.Join(h, qosDir))
		}
		if spec.QOS == runtime.QOSBurstable {
			fs.updateBurstableShares(qosDir)
		}
	}
	return errors.Join(errs...)
}

// oomKills is the number of OOM kills in the cgroup path (v1:
// memory.oom_control, v2: memory.events); ok is false when the cgroup or
// the counter does not exist.
func (fs *cgroupFS) oomKills(path string) (n uint64, ok bool) {
	var kv map[string]uint64
	if fs.v2 {
		kv = readKV(filepath.Join(fs.root, path, "memory.events"))
	} else {
		kv = readKV(filepath.Join(fs.root, "memory", path, "memory.oom_control"))
	}
	n, ok = kv["oom_kill"]
	return n, ok
}

// podUID is the UID of the sandbox's pod (the host runtime keeps it), or
// the sandbox id when it has none fit for a cgroup name.
func (r *Runtime) podUID(ctx context.Context, sandboxID string) string {
	st, err := r.shims.PodSandboxStatus(ctx, sandboxID)
	if err != nil || st.UID == "" {
		return sandboxID
	}
	for _, c := range st.UID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return sandboxID
		}
	}
	return st.UID
}

// releasePodCgroup removes the pod cgroup of spec unless a container
// record still names it (best effort: a cgroup still busy stays).
func (r *Runtime) releasePodCgroup(spec *podCgroupSpec) {
	if spec == nil {
		return
	}
	r.mu.Lock()
	for _, c := range r.containers {
		if c.rec.PodCgroup != nil && c.rec.PodCgroup.Path == spec.Path {
			r.mu.Unlock()
			return
		}
	}
	r.mu.Unlock()
	_ = hostCgroups().removePod(r.opts.CgroupParent, *spec)
}

// oomKilled reports whether the exited container c was OOM-killed: its
// cgroup's OOM kill counter (kept by `runc run --keep` until `runc
// delete`), read once and remembered in its record.
func (r *Runtime) oomKilled(c *container) bool {
	r.mu.Lock()
	checked, killed, cg := c.rec.OOMChecked, c.rec.OOMKilled, c.rec.Cgroup
	r.mu.Unlock()
	if checked {
		return killed
	}
	if cg != "" {
		n, _ := hostCgroups().oomKills(cg)
		killed = n > 0
	}
	r.mu.Lock()
	c.rec.OOMChecked, c.rec.OOMKilled = true, killed
	rec := c.rec
	removed := c.removed
	r.mu.Unlock()
	if !removed {
		_ = writeJSON(filepath.Join(c.dir, containerFile), &rec)
	}
	return killed
}
