package oci

// Seccomp, as containerd's CRI plugin applies it: Unconfined (or no
// profile: the kubelet's default) and privileged containers get none;
// RuntimeDefault gets the runtime's default profile; Localhost loads the
// node's profile file (docker's format, which is the OCI one plus archMap
// and includes/excludes).
//
// Our default profile is docker's / containerd's in spirit, written as a
// deny list instead of their allow list: every syscall is allowed except
// those that reach kernel state no namespace isolates (modules, kexec,
// keyrings, swap, clocks, accounting, reboot, io_uring, ...) and those
// that need a capability the container lacks (mount, unshare, setns,
// namespace flags of clone — clone3 answers ENOSYS so libcs fall back to
// clone —, bpf, perf_event_open, ptrace-like peeking, raw I/O, NUMA
// policy). A syscall whose capability the container has is allowed, as in
// docker's profile. Denied calls fail with EPERM.

import (
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// seccompDenied: syscalls denied unless the container has one of caps
// (no caps: always denied).
var seccompDenied = []struct {
	caps  []string
	names []string
}{
	{nil, []string{
		"add_key", "create_module", "get_kernel_syms", "io_uring_enter", "io_uring_register", "io_uring_setup",
		"kexec_file_load", "kexec_load", "keyctl", "nfsservctl", "query_module", "request_key",
		"swapoff", "swapon", "_sysctl", "sysfs", "uselib", "ustat", "vm86", "vm86old",
	}},
	{[]string{"CAP_SYS_ADMIN"}, []string{
		"fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount", "mount_setattr",
		"move_mount", "name_to_handle_at", "open_tree", "pivot_root", "quotactl", "quotactl_fd",
		"setdomainname", "sethostname", "setns", "umount", "umount2", "unshare",
	}},
	{[]string{"CAP_SYS_ADMIN", "CAP_BPF"}, []string{"bpf"}},
	{[]string{"CAP_SYS_ADMIN", "CAP_PERFMON"}, []string{"perf_event_open"}},
	{[]string{"CAP_SYS_BOOT"}, []string{"reboot"}},
	{[]string{"CAP_SYS_CHROOT"}, []string{"chroot"}},
	{[]string{"CAP_SYS_MODULE"}, []string{"delete_module", "finit_module", "init_module"}},
	{[]string{"CAP_SYS_PACCT"}, []string{"acct"}},
	{[]string{"CAP_SYS_PTRACE"}, []string{"kcmp", "pidfd_getfd", "process_madvise", "userfaultfd"}},
	{[]string{"CAP_SYS_RAWIO"}, []string{"ioperm", "iopl"}},
	{[]string{"CAP_SYS_TIME"}, []string{"clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64", "settimeofday", "stime"}},
	{[]string{"CAP_SYS_TTY_CONFIG"}, []string{"vhangup"}},
	{[]string{"CAP_SYS_NICE"}, []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
	{[]string{"CAP_SYSLOG"}, []string{"syslog"}},
	{[]string{"CAP_DAC_READ_SEARCH"}, []string{"open_by_handle_at"}},
}

// cloneNamespaceFlags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
// NEWPID, NEWNET (docker's mask 0x7E020000).
var cloneNamespaceFlags = []uint64{0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000}

const afVsock = 40

// seccompArches are the native architecture and those it can run.
func seccompArches() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	}
	return nil
}

// defaultSeccomp is the RuntimeDefault profile for a container with caps.
func defaultSeccomp(caps []string) *specs.LinuxSeccomp {
	has := map[string]bool{}
	for _, c := range caps {
		has[c] = true
	}
	eperm := uint(errnoEPERM)
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: seccompArches()}
	for _, d := range seccompDenied {
		lifted := false
		for _, c := range d.caps {
			lifted = lifted || has[c]
		}
		if !lifted {
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: d.names, Action: specs.ActErrno, ErrnoRet: &eperm})
		}
	}
	if !has["CAP_SYS_ADMIN"] {
		enosys := uint(errnoENOSYS)
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
		// One rule per flag: rules are ORed, the conditions of one rule
		// ANDed.
		for _, f := range cloneNamespaceFlags {
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
				Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
				Args: []specs.LinuxSeccompArg{{Index: cloneFlagsArg(), Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}},
			})
		}
	}
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
		Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: afVsock, Op: specs.OpEqualTo}},
	})
	return s
}

// cloneFlagsArg: s390 swaps clone's first two arguments.
func cloneFlagsArg() uint {
	if goruntime.GOARCH == "s390x" {
		return 1
	}
	return 0
}

// seccompFor is the container's seccomp section (nil: none).
func seccompFor(cfg *runtime.ContainerConfig, caps []string) (*specs.LinuxSeccomp, error) {
	if cfg.Privileged || cfg.Seccomp == nil {
		return nil, nil
	}
	switch cfg.Seccomp.Type {
	case "", runtime.SeccompUnconfined:
		return nil, nil
	case runtime.SeccompRuntimeDefault:
		return defaultSeccomp(caps), nil
	case runtime.SeccompLocalhost:
		return loadSeccomp(cfg.Seccomp.LocalhostPath, caps)
	}
	return nil, fmt.Errorf("%w: unsupported seccomp profile type %q", runtime.ErrInvalidConfig, cfg.Seccomp.Type)
}

// seccompFile is a profile in docker's format (a superset of the OCI
// section).
type seccompFile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures"`
	ArchMap         []struct {
		Architecture     specs.Arch   `json:"architecture"`
		SubArchitectures []specs.Arch `json:"subArchitectures"`
	} `json:"archMap"`
	Flags    []specs.LinuxSeccompFlag `json:"flags"`
	Syscalls []struct {
		specs.LinuxSyscall
		Name     string        `json:"name"`
		Includes seccompFilter `json:"includes"`
		Excludes seccompFilter `json:"excludes"`
	} `json:"syscalls"`
}

type seccompFilter struct {
	Caps   []string `json:"caps"`
	Arches []string `json:"arches"`
}

// loadSeccomp reads a Localhost profile (containerd's error text when it
// cannot).
func loadSeccomp(path string, caps []string) (*specs.LinuxSeccomp, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: localhostProfile must be set if seccompProfile type is Localhost.", runtime.ErrInvalidConfig)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to generate seccomp spec opts: cannot load seccomp profile %q: %v", path, err)
	}
	var f seccompFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("failed to generate seccomp spec opts: decoding seccomp profile failed: %v", err)
	}
	s := &specs.LinuxSeccomp{DefaultAction: f.DefaultAction, DefaultErrnoRet: f.DefaultErrnoRet, Architectures: f.Architectures, Flags: f.Flags}
	if len(s.Architectures) == 0 {
		native := seccompArches()
		for _, m := range f.ArchMap {
			if len(native) > 0 && m.Architecture == native[0] {
				s.Architectures = append(append(s.Architectures, m.Architecture), m.SubArchitectures...)
			}
		}
	}
	has := map[string]bool{}
	for _, c := range caps {
		has[c] = true
	}
	for _, sc := range f.Syscalls {
		if !filterMatches(sc.Includes, has) || (len(sc.Excludes.Caps)+len(sc.Excludes.Arches) > 0 && filterMatchesAny(sc.Excludes, has)) {
			continue
		}
		call := sc.LinuxSyscall
		if sc.Name != "" {
			call.Names = append(call.Names, sc.Name)
		}
		if len(call.Names) > 0 {
			s.Syscalls = append(s.Syscalls, call)
		}
	}
	return s, nil
}

// filterMatches: every listed cap present and, when arches are listed,
// ours among them (empty: matches).
func filterMatches(f seccompFilter, has map[string]bool) bool {
	for _, c := range f.Caps {
		if !has[c] {
			return false
		}
	}
	return len(f.Arches) == 0 || archListed(f.Arches)
}

// filterMatchesAny: any listed cap present or our arch listed.
func filterMatchesAny(f seccompFilter, has map[string]bool) bool {
	for _, c := range f.Caps {
		if has[c] {
			return true
		}
	}
	return archListed(f.Arches)
}

func archListed(arches []string) bool {
	for _, a := range arches {
		if a == goruntime.GOARCH || (a == "x86_64" && goruntime.GOARCH == "amd64") || (a == "aarch64" && goruntime.GOARCH == "arm64") {
			return true
		}
	}
	return false
}
