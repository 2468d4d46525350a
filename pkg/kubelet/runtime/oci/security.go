package oci

// Security context, as containerd's CRI plugin turns a container's
// LinuxContainerSecurityContext into the OCI spec:
//
//   - Capabilities: docker's default set (defaultCaps), then add "ALL",
//     drop "ALL", the other adds, the other drops; names with or without
//     CAP_, any case; names this kernel does not know are left out (runc
//     would only warn about them in the container's log). Bounding,
//     effective and permitted sets; no inheritable or ambient ones, so a
//     non-root user keeps none across exec, as on containerd.
//   - Privileged: every capability, the host's devices, all devices
//     allowed, no masked or read-only /proc paths, /sys and /sys/fs/cgroup
//     writable, no seccomp; capabilities add/drop are ignored.
//   - NoNewPrivileges from allowPrivilegeEscalation=false.
//   - Additional groups: the image's /etc/group memberships of the user,
//     then fsGroup and supplementalGroups.
//   - runAsNonRoot: the kubelet refuses runAsUser 0 itself; the runtime,
//     which knows the image's user, refuses root or a user name with
//     upstream's messages (kuberuntime's verifyRunAsNonRoot), as
//     ErrInvalidConfig (CreateContainerConfigError).
//   - Seccomp: see seccomp.go.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// capNames are the capabilities by number (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// allCaps are the capabilities this kernel knows that the runtime itself
// has (containerd's cap.Current(): nested in a container, the agent may
// lack some, and runc cannot grant what it lacks).
func allCaps() []string {
	n := len(capNames)
	if data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if last, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && last+1 < n && last >= 0 {
			n = last + 1
		}
	}
	mask := ^uint64(0)
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
					mask = m
				}
			}
		}
	}
	var out []string
	for i, c := range capNames[:n] {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, c)
		}
	}
	return out
}

// normalizeCap turns "net_admin" / "CAP_NET_ADMIN" into "CAP_NET_ADMIN".
func normalizeCap(name string) string {
	name = strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	return name
}

// capabilitySet is the container's capability set.
func capabilitySet(cfg *runtime.ContainerConfig, all []string) []string {
	if cfg.Privileged {
		return append([]string(nil), all...)
	}
	known := map[string]bool{}
	for _, c := range all {
		known[c] = true
	}
	set := map[string]bool{}
	for _, c := range defaultCaps {
		if known[c] {
			set[c] = true
		}
	}
	if cc := cfg.Capabilities; cc != nil {
		isAll := func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "ALL") }
		for _, a := range cc.Add {
			if isAll(a) {
				for _, c := range all {
					set[c] = true
				}
			}
		}
		for _, d := range cc.Drop {
			if isAll(d) {
				set = map[string]bool{}
			}
		}
		for _, a := range cc.Add {
			if c := normalizeCap(a); !isAll(a) && known[c] {
				set[c] = true
			}
		}
		for _, d := range cc.Drop {
			if !isAll(d) {
				delete(set, normalizeCap(d))
			}
		}
	}
	// In capability-number order (stable specs).
	out := []string{}
	for _, c := range all {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

// additionalGids: the primary group, the groups of the image's /etc/group
// that list the user, fsGroup and supplementalGroups (containerd's
// WithAdditionalGIDs then WithSupplementalGroups).
func additionalGids(rootfs string, u specs.User, cfg *runtime.ContainerConfig) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	add(u.GID)
	name := ""
	for _, f := range readColonFile(filepath.Join(rootfs, "etc/passwd")) {
		if len(f) >= 3 && f[2] == strconv.FormatUint(uint64(u.UID), 10) {
			name = f[0]
			break
		}
	}
	if name != "" {
		for _, f := range readColonFile(filepath.Join(rootfs, "etc/group")) {
			if len(f) < 4 || f[0] == name {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if strings.TrimSpace(m) == name {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						add(uint32(g))
					}
					break
				}
			}
		}
	}
	for _, g := range cfg.SupplementalGroups {
		if g >= 0 && g <= math.MaxUint32 {
			add(uint32(g))
		}
	}
	return out
}

// configError is a refusal with an exact message (no prefix) that is
// still runtime.ErrInvalidConfig.
type configError struct{ msg string }

func (e *configError) Error() string        { return e.msg }
func (e *configError) Is(target error) bool { return target == runtime.ErrInvalidConfig }

// The CRI labels the kubelet puts on every container (its pod's identity).
const (
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelPodUID       = "io.kubernetes.pod.uid"
)

// podDesc is upstream's format.Pod from the container's labels.
func podDesc(cfg *runtime.ContainerConfig) string {
	return fmt.Sprintf("%s_%s(%s)", cfg.Labels[labelPodName], cfg.Labels[labelPodNamespace], cfg.Labels[labelPodUID])
}

// verifyRunAsNonRoot is upstream's check with the image's user as
// containerd reports it (numeric uid, or a name; none is root).
func verifyRunAsNonRoot(cfg *runtime.ContainerConfig, img *image.Image) error {
	if !cfg.RunAsNonRoot {
		return nil
	}
	if cfg.RunAsUser != nil {
		if *cfg.RunAsUser == 0 {
			return &configError{fmt.Sprintf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podDesc(cfg), cfg.Name)}
		}
		return nil
	}
	user, _, _ := strings.Cut(img.Config.User, ":")
	if user == "" {
		user = "0"
	}
	uid, err := strconv.ParseInt(user, 10, 64)
	switch {
	case err != nil:
		return &configError{fmt.Sprintf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", user, podDesc(cfg), cfg.Name)}
	case uid == 0:
		return &configError{fmt.Sprintf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(cfg), cfg.Name)}
	case uid < 0 || uid > math.MaxInt32:
		return &configError{fmt.Sprintf("container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): must be between 0 and %d, inclusive (pod: %q, container: %s)",
			uid, math.MaxInt32, math.MaxInt32, podDesc(cfg), cfg.Name)}
	}
	return nil
}

// hostDevices are the host's /dev device nodes for a privileged
// container (runc's HostDevices: pts, shm, fd, mqueue and console left
// out).
func hostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				switch e.Name() {
				case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
					continue
				}
				walk(p)
				continue
			}
			if p == "/dev/console" {
				continue
			}
			var st unix.Stat_t
			if unix.Lstat(p, &st) != nil {
				continue
			}
			var typ string
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				typ = "c"
			case unix.S_IFBLK:
				typ = "b"
			case unix.S_IFIFO:
				typ = "p"
			default:
				continue
			}
			mode := os.FileMode(st.Mode & 0o7777)
			uid, gid := st.Uid, st.Gid
			out = append(out, specs.LinuxDevice{
				Path: p, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
				FileMode: &mode, UID: &uid, GID: &gid,
			})
		}
	}
	walk("/dev")
	return out
}
