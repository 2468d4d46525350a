package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// defaultPath is the PATH of a container whose image sets none (as
// containerd and docker default it).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultCaps is docker's / containerd's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// containerArgs is the argv as Kubernetes defines it: command replaces
// the image's Entrypoint (and drops its Cmd), args replace Cmd.
func containerArgs(cfg *runtime.ContainerConfig, img *image.Image) []string {
	switch {
	case len(cfg.Command) > 0:
		return append(append([]string(nil), cfg.Command...), cfg.Args...)
	case len(cfg.Args) > 0:
		return append(append([]string(nil), img.Config.Entrypoint...), cfg.Args...)
	}
	return append(append([]string(nil), img.Config.Entrypoint...), img.Config.Cmd...)
}

// containerEnv: PATH default, the image's Env, HOSTNAME, then the
// container's Env; a later value of a name replaces an earlier one in place.
func containerEnv(hostname string, cfg *runtime.ContainerConfig, img *image.Image) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	set("PATH", defaultPath)
	for _, kv := range img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	set("HOSTNAME", hostname)
	for _, kv := range cfg.Env {
		set(kv.Key, kv.Value)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// resolveUser turns the image's User ("uid", "uid:gid", "name",
// "name:group") and the security context into ids, reading the rootfs'
// /etc/passwd and /etc/group for names.
func resolveUser(rootfs string, cfg *runtime.ContainerConfig, img *image.Image) (specs.User, error) {
	var u specs.User
	user, group, _ := strings.Cut(img.Config.User, ":")
	if cfg.RunAsUser != nil {
		user = strconv.FormatInt(*cfg.RunAsUser, 10)
	}
	if user != "" {
		if n, err := strconv.ParseUint(user, 10, 32); err == nil {
			u.UID = uint32(n)
			// A numeric user's primary group from passwd, if listed.
			if _, gid, ok := lookupPasswd(rootfs, "", u.UID); ok && group == "" {
				u.GID = gid
			}
		} else {
			uid, gid, ok := lookupPasswd(rootfs, user, 0)
			if !ok {
				return u, fmt.Errorf("%w: unable to find user %s: no matching entries in passwd file", runtime.ErrInvalidConfig, user)
			}
			u.UID, u.GID = uid, gid
		}
	}
	if group != "" {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			u.GID = uint32(n)
		} else if gid, ok := lookupGroup(rootfs, group); ok {
			u.GID = gid
		} else {
			return u, fmt.Errorf("%w: unable to find group %s: no matching entries in group file", runtime.ErrInvalidConfig, group)
		}
	}
	if cfg.RunAsGroup != nil {
		u.GID = uint32(*cfg.RunAsGroup)
	}
	return u, nil
}

// lookupPasswd finds name (or uid when name is empty) in rootfs/etc/passwd.
func lookupPasswd(rootfs, name string, uid uint32) (uint32, uint32, bool) {
	for _, f := range readColonFile(filepath.Join(rootfs, "etc/passwd")) {
		if len(f) < 4 {
			continue
		}
		u, err1 := strconv.ParseUint(f[2], 10, 32)
		g, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if (name != "" && f[0] == name) || (name == "" && uint32(u) == uid) {
			return uint32(u), uint32(g), true
		}
	}
	return 0, 0, false
}

func lookupGroup(rootfs, name string) (uint32, bool) {
	for _, f := range readColonFile(filepath.Join(rootfs, "etc/group")) {
		if len(f) >= 3 && f[0] == name {
			if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				return uint32(g), true
			}
		}
	}
	return 0, false
}

func readColonFile(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

// specInput is what buildSpec needs.
type specInput struct {
	id       string
	rootfs   string // the mounted rootfs (absolute)
	hostname string
	sandbox  string // the sandbox's directory (hosts, hostname, resolv.conf, shm)
	cfg      *runtime.ContainerConfig
	img      *image.Image
	cgroup   string
	// netns is the pod's network namespace (a pinned path); empty: the
	// host network.
	netns string
	// allCaps are the capabilities the kernel knows (allCaps()); nil:
	// capNames.
	allCaps []string
	// devices lists the host's devices for a privileged container
	// (hostDevices by default).
	devices func() []specs.LinuxDevice
	// cgroupV2: the node's cgroups are the unified hierarchy.
	cgroupV2 bool
}

func buildSpec(in specInput) (*specs.Spec, error) {
	args := containerArgs(in.cfg, in.img)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no command specified", runtime.ErrInvalidConfig)
	}
	if err := verifyRunAsNonRoot(in.cfg, in.img); err != nil {
		return nil, err
	}
	user, err := resolveUser(in.rootfs, in.cfg, in.img)
	if err != nil {
		return nil, err
	}
	user.AdditionalGids = additionalGids(in.rootfs, user, in.cfg)
	cwd := in.cfg.WorkingDir
	if cwd == "" {
		cwd = in.img.Config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	all := in.allCaps
	if all == nil {
		all = capNames
	}
	caps := capabilitySet(in.cfg, all)
	seccomp, err := seccompFor(in.cfg, caps)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Terminal: in.cfg.TTY,
			User:     user,
			Args:     args,
			Env:      containerEnv(in.hostname, in.cfg, in.img),
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: in.cfg.NoNewPrivileges && !in.cfg.Privileged,
			OOMScoreAdj:     oomScoreAdj(in.cfg.Resources),
		},
		Root:     &specs.Root{Path: in.rootfs, Readonly: in.cfg.ReadOnlyRootfs},
		Hostname: in.hostname,
		Mounts:   mounts(in),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			CgroupsPath:   in.cgroup,
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Resources:     resources(in.cfg.Resources),
			Seccomp:       seccomp,
		},
	}
	if in.cgroupV2 {
		// Upstream's default (singleProcessOOMKill false on cgroup v2):
		// an OOM kill takes the whole container.
		s.Linux.Resources.Unified = map[string]string{"memory.oom.group": "1"}
	}
	if in.netns != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.netns})
	}
	if in.cfg.Privileged {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		devices := in.devices
		if devices == nil {
			devices = hostDevices
		}
		s.Linux.Devices = devices()
	}
	return s, nil
}

func oomScoreAdj(r *runtime.Resources) *int {
	if r == nil || r.OOMScoreAdj == nil {
		return nil
	}
	v := int(*r.OOMScoreAdj)
	// Lowering a score below our own needs CAP_SYS_RESOURCE; without it
	// (some sandboxes) runc would fail the container: clamp to ours, as
	// containerd's restrict_oom_score_adj does.
	if own, ok := ownOOMScoreAdj(); ok && v < own && !haveCapSysResource() {
		v = own
	}
	return &v
}

func ownOOMScoreAdj() (int, bool) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil
}

// haveCapSysResource: CAP_SYS_RESOURCE (24) is in our effective set.
func haveCapSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}

func resources(r *runtime.Resources) *specs.LinuxResources {
	out := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	if r == nil {
		return out
	}
	if r.MemoryLimitBytes > 0 {
		l := r.MemoryLimitBytes
		out.Memory = &specs.LinuxMemory{Limit: &l}
	}
	// The kubelet's calculateLinuxResources: shares from the request
	// (2 without one), a quota over 100 ms from the limit.
	shares := milliCPUToShares(r.CPUMillis)
	cpu := &specs.LinuxCPU{Shares: &shares}
	if quota := milliCPUToQuota(r.CPULimitMillis); quota > 0 {
		period := uint64(quotaPeriod)
		cpu.Period, cpu.Quota = &period, &quota
	}
	out.CPU = cpu
	if r.PidsLimit > 0 {
		limit := r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return out
}

func mounts(in specInput) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts(in.cfg.Privileged, "nosuid", "noexec", "nodev")},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: sysOpts(in.cfg.Privileged, "nosuid", "noexec", "nodev", "relatime")},
		{Destination: "/dev/shm", Type: "bind", Source: filepath.Join(in.sandbox, sandboxShm), Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}},
	}
	user := map[string]bool{}
	for _, m := range in.cfg.Mounts {
		user[filepath.Clean(m.ContainerPath)] = true
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		dst := "/etc/" + f
		if user[dst] {
			continue // the kubelet's own file wins
		}
		opts := []string{"rbind", "rprivate"}
		if in.cfg.ReadOnlyRootfs {
			opts = append(opts, "ro")
		}
		ms = append(ms, specs.Mount{Destination: dst, Type: "bind", Source: filepath.Join(in.sandbox, f), Options: opts})
	}
	var um []specs.Mount
	for _, m := range in.cfg.Mounts {
		src := m.HostPath // the kubelet has joined the SubPath already
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		um = append(um, specs.Mount{Destination: filepath.Clean(m.ContainerPath), Type: "bind", Source: src, Options: opts})
	}
	// Parents before children (as containerd orders them).
	sort.SliceStable(um, func(i, j int) bool {
		return strings.Count(um[i].Destination, "/") < strings.Count(um[j].Destination, "/")
	})
	return append(ms, um...)
}

// sysOpts: /sys and /sys/fs/cgroup are read-only unless privileged (as
// containerd's WithWriteableSysfs / WithWriteableCgroupfs).
func sysOpts(privileged bool, opts ...string) []string {
	if privileged {
		return opts
	}
	return append(opts, "ro")
}

var errNotExecutable = errors.New("no such file or directory")

// lookExec finds argv0 as runc will: a path containing "/" is taken as is
// (relative to cwd), else it is searched in the container's PATH. Paths
// are resolved inside rootfs (symlinks too). Paths under a mount are not
// checked (they are the volume's business); found is then true.
func lookExec(rootfs, argv0, cwd string, env []string, mounts []runtime.Mount) (string, error) {
	underMount := func(p string) bool {
		for _, m := range mounts {
			mp := filepath.Clean(m.ContainerPath)
			if p == mp || strings.HasPrefix(p, mp+"/") {
				return true
			}
		}
		return false
	}
	check := func(p string) bool {
		if underMount(p) {
			return true
		}
		real, err := resolveInRoot(rootfs, p)
		if err != nil {
			return false
		}
		fi, err := os.Stat(real)
		return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if check(filepath.Clean(p)) {
			return p, nil
		}
		return "", fmt.Errorf("exec: %q: stat %s: %w", argv0, argv0, errNotExecutable)
	}
	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, argv0)
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if check(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", argv0)
}

// resolveInRoot resolves p (absolute, inside the container) to a host
// path under root, following symlinks as if root were /.
func resolveInRoot(root, p string) (string, error) {
	parts := strings.Split(strings.Trim(filepath.Clean(p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}
