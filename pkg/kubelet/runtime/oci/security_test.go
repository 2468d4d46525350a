package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestCapabilitySet(t *testing.T) {
	all := capNames
	for _, tc := range []struct {
		name       string
		cfg        runtime.ContainerConfig
		want       []string // exactly
		has, lacks []string
	}{
		{name: "default", cfg: runtime.ContainerConfig{}, has: defaultCaps, lacks: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}},
		{name: "add without prefix, any case", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Add: []string{"net_admin", "SYS_TIME"}}},
			has: []string{"CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_CHOWN"}},
		{name: "add with prefix", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Add: []string{"CAP_SYS_ADMIN"}}},
			has: []string{"CAP_SYS_ADMIN"}},
		{name: "drop", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Drop: []string{"CHOWN", "CAP_NET_RAW"}}},
			lacks: []string{"CAP_CHOWN", "CAP_NET_RAW"}, has: []string{"CAP_KILL"}},
		{name: "drop ALL", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Drop: []string{"ALL"}}}, want: []string{}},
		{name: "drop ALL add one", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Drop: []string{"all"}, Add: []string{"NET_BIND_SERVICE"}}},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add ALL drop one", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Add: []string{"ALL"}, Drop: []string{"SYS_ADMIN"}}},
			has: []string{"CAP_SYS_MODULE", "CAP_BPF"}, lacks: []string{"CAP_SYS_ADMIN"}},
		{name: "add and drop the same: dropped", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"NET_ADMIN"}}},
			lacks: []string{"CAP_NET_ADMIN"}},
		{name: "unknown names left out", cfg: runtime.ContainerConfig{Capabilities: &runtime.Capabilities{Add: []string{"NOT_A_CAP"}}},
			lacks: []string{"CAP_NOT_A_CAP"}},
		{name: "privileged: all, add/drop ignored", cfg: runtime.ContainerConfig{Privileged: true, Capabilities: &runtime.Capabilities{Drop: []string{"ALL"}}},
			want: capNames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := capabilitySet(&tc.cfg, all)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("caps = %v, want %v", got, tc.want)
			}
			for _, c := range tc.has {
				if !slices.Contains(got, c) {
					t.Errorf("caps %v lack %s", got, c)
				}
			}
			for _, c := range tc.lacks {
				if slices.Contains(got, c) {
					t.Errorf("caps %v have %s", got, c)
				}
			}
		})
	}
	// A kernel that knows fewer capabilities.
	if got := capabilitySet(&runtime.ContainerConfig{Privileged: true}, capNames[:38]); len(got) != 38 || slices.Contains(got, "CAP_BPF") {
		t.Errorf("privileged on an older kernel: %v", got)
	}
}

// specRootfs is a rootfs with busybox's /etc/passwd and /etc/group.
func specRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww:x:33:33:www:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
		"etc/group":  "root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nwww:x:33:\nstaff:x:50:www,daemon\nnogroup:x:65534:\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func i64(v int64) *int64 { return &v }

func TestBuildSpecSecurity(t *testing.T) {
	rootfs := specRootfs(t)
	base := func() *runtime.ContainerConfig {
		return &runtime.ContainerConfig{Name: "app", Command: []string{"sh"}, Labels: map[string]string{
			labelPodName: "web", labelPodNamespace: "default", labelPodUID: "1234",
		}}
	}
	hostDevs := []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8}}
	build := func(t *testing.T, cfg *runtime.ContainerConfig, img *image.Image, v2 bool) (*specs.Spec, error) {
		if img == nil {
			img = &image.Image{}
		}
		return buildSpec(specInput{
			id: "c1", rootfs: rootfs, hostname: "web", sandbox: "/sb", cfg: cfg, img: img,
			cgroup: "/k1s/burstable/pod1234/c1", allCaps: capNames, cgroupV2: v2,
			devices: func() []specs.LinuxDevice { return hostDevs },
		})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*runtime.ContainerConfig)
		img    *image.Image
		v2     bool
		check  func(t *testing.T, s *specs.Spec)
	}{
		{name: "defaults", check: func(t *testing.T, s *specs.Spec) {
			if s.Process.NoNewPrivileges || s.Linux.Seccomp != nil || s.Process.OOMScoreAdj != nil {
				t.Errorf("nnp %v seccomp %v oom %v", s.Process.NoNewPrivileges, s.Linux.Seccomp, s.Process.OOMScoreAdj)
			}
			if !slices.Equal(s.Process.Capabilities.Bounding, capabilitySet(&runtime.ContainerConfig{}, capNames)) {
				t.Errorf("caps %v", s.Process.Capabilities.Bounding)
			}
			if s.Linux.CgroupsPath != "/k1s/burstable/pod1234/c1" {
				t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
			}
			if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 || len(s.Linux.Devices) != 0 {
				t.Errorf("masked %v readonly %v devices %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Devices)
			}
			if s.Process.User.UID != 0 || !slices.Equal(s.Process.User.AdditionalGids, []uint32{0, 10}) {
				t.Errorf("user %+v", s.Process.User)
			}
			for _, m := range s.Mounts {
				if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && !slices.Contains(m.Options, "ro") {
					t.Errorf("%s is writable", m.Destination)
				}
			}
			if s.Linux.Resources.Unified != nil {
				t.Errorf("unified resources on v1: %v", s.Linux.Resources.Unified)
			}
		}},
		{name: "no new privileges", mutate: func(c *runtime.ContainerConfig) { c.NoNewPrivileges = true }, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges {
				t.Error("NoNewPrivileges unset")
			}
		}},
		{name: "capabilities", mutate: func(c *runtime.ContainerConfig) {
			c.Capabilities = &runtime.Capabilities{Drop: []string{"ALL"}, Add: []string{"CHOWN"}}
		}, check: func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !slices.Equal(set, []string{"CAP_CHOWN"}) {
					t.Errorf("caps %+v", c)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable/ambient caps %+v", c)
			}
		}},
		{name: "privileged", mutate: func(c *runtime.ContainerConfig) {
			c.Privileged = true
			c.Seccomp = &runtime.SeccompProfile{Type: runtime.SeccompRuntimeDefault}
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Process.Capabilities.Bounding) != len(capNames) || s.Linux.Seccomp != nil {
				t.Errorf("caps %d seccomp %v", len(s.Process.Capabilities.Bounding), s.Linux.Seccomp)
			}
			if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
				t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			if !slices.Equal(s.Linux.Devices, hostDevs) || !s.Linux.Resources.Devices[0].Allow {
				t.Errorf("devices %v cgroup %v", s.Linux.Devices, s.Linux.Resources.Devices)
			}
			for _, m := range s.Mounts {
				if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && slices.Contains(m.Options, "ro") {
					t.Errorf("%s is read-only", m.Destination)
				}
			}
		}},
		{name: "seccomp RuntimeDefault", mutate: func(c *runtime.ContainerConfig) {
			c.Seccomp = &runtime.SeccompProfile{Type: runtime.SeccompRuntimeDefault}
		}, check: func(t *testing.T, s *specs.Spec) {
			sc := s.Linux.Seccomp
			if sc == nil || sc.DefaultAction != specs.ActAllow {
				t.Fatalf("seccomp %+v", sc)
			}
			denied := deniedSyscalls(sc)
			for _, name := range []string{"mount", "umount2", "unshare", "setns", "kexec_load", "init_module", "bpf", "keyctl", "reboot", "clone3", "ptrace_not_listed"} {
				if name == "ptrace_not_listed" {
					if denied["ptrace"] {
						t.Errorf("ptrace denied")
					}
					continue
				}
				if !denied[name] {
					t.Errorf("%s not denied", name)
				}
			}
			for _, name := range []string{"read", "write", "execve", "chown", "chroot", "socket"} {
				if denied[name] && name != "socket" {
					t.Errorf("%s denied", name)
				}
			}
		}},
		{name: "seccomp RuntimeDefault with SYS_ADMIN", mutate: func(c *runtime.ContainerConfig) {
			c.Seccomp = &runtime.SeccompProfile{Type: runtime.SeccompRuntimeDefault}
			c.Capabilities = &runtime.Capabilities{Add: []string{"SYS_ADMIN"}}
		}, check: func(t *testing.T, s *specs.Spec) {
			denied := deniedSyscalls(s.Linux.Seccomp)
			if denied["mount"] || denied["unshare"] || denied["clone"] || denied["bpf"] || !denied["kexec_load"] {
				t.Errorf("denied %v", denied)
			}
		}},
		{name: "seccomp Unconfined", mutate: func(c *runtime.ContainerConfig) {
			c.Seccomp = &runtime.SeccompProfile{Type: runtime.SeccompUnconfined}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Errorf("seccomp %+v", s.Linux.Seccomp)
			}
		}},
		{name: "runAsUser and groups", mutate: func(c *runtime.ContainerConfig) {
			c.RunAsUser, c.RunAsGroup = i64(33), i64(1000)
			c.SupplementalGroups = []int64{2000, 50}
		}, check: func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			if u.UID != 33 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 50, 2000}) {
				t.Errorf("user %+v", u)
			}
		}},
		{name: "runAsNonRoot with a non-root user", mutate: func(c *runtime.ContainerConfig) {
			c.RunAsNonRoot = true
		}, img: &image.Image{Config: v1.Config{User: "1000:1000"}}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.User.UID != 1000 {
				t.Errorf("user %+v", s.Process.User)
			}
		}},
		{name: "oom score and container resources", mutate: func(c *runtime.ContainerConfig) {
			c.Resources = &runtime.Resources{CPUMillis: 250, CPULimitMillis: 500, MemoryLimitBytes: 20 << 20, OOMScoreAdj: i64(-997)}
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.CPU.Shares != 256 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Memory.Limit != 20<<20 {
				t.Errorf("resources %+v %+v", r.CPU, r.Memory)
			}
			want := -997
			if own, ok := ownOOMScoreAdj(); ok && own > want && !haveCapSysResource() {
				want = own // clamped: this machine's root cannot lower it
			}
			if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != want {
				t.Errorf("oom score adj %v, want %d", s.Process.OOMScoreAdj, want)
			}
		}},
		{name: "besteffort shares", mutate: func(c *runtime.ContainerConfig) {
			c.Resources = &runtime.Resources{}
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.CPU.Shares != 2 || r.CPU.Quota != nil || r.Memory != nil {
				t.Errorf("resources %+v %+v", r.CPU, r.Memory)
			}
		}},
		{name: "cgroup v2: the whole container is OOM-killed", v2: true, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Resources.Unified["memory.oom.group"] != "1" {
				t.Errorf("unified %v", s.Linux.Resources.Unified)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			if tc.mutate != nil {
				tc.mutate(cfg)
			}
			s, err := build(t, cfg, tc.img, tc.v2)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
			if _, err := json.Marshal(s); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Refusals.
	for _, tc := range []struct {
		name   string
		mutate func(*runtime.ContainerConfig)
		user   string
		want   string
	}{
		{"runAsNonRoot, image without user", func(c *runtime.ContainerConfig) { c.RunAsNonRoot = true }, "",
			`container has runAsNonRoot and image will run as root (pod: "web_default(1234)", container: app)`},
		{"runAsNonRoot, image user 0:0", func(c *runtime.ContainerConfig) { c.RunAsNonRoot = true }, "0:0",
			`container has runAsNonRoot and image will run as root (pod: "web_default(1234)", container: app)`},
		{"runAsNonRoot, image user by name", func(c *runtime.ContainerConfig) { c.RunAsNonRoot = true }, "nobody",
			`container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: "web_default(1234)", container: app)`},
		{"runAsNonRoot, runAsUser 0", func(c *runtime.ContainerConfig) { c.RunAsNonRoot, c.RunAsUser = true, i64(0) }, "1000",
			`container's runAsUser breaks non-root policy (pod: "web_default(1234)", container: app)`},
		{"unknown seccomp type", func(c *runtime.ContainerConfig) { c.Seccomp = &runtime.SeccompProfile{Type: "Bogus"} }, "",
			`invalid container config: unsupported seccomp profile type "Bogus"`},
		{"localhost without a path", func(c *runtime.ContainerConfig) { c.Seccomp = &runtime.SeccompProfile{Type: runtime.SeccompLocalhost} }, "",
			`invalid container config: localhostProfile must be set if seccompProfile type is Localhost.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(cfg)
			_, err := build(t, cfg, &image.Image{Config: v1.Config{User: tc.user}}, false)
			if err == nil || err.Error() != tc.want || !errors.Is(err, runtime.ErrInvalidConfig) {
				t.Errorf("err = %v, want %q (ErrInvalidConfig)", err, tc.want)
			}
		})
	}
	// With runAsUser set, the image's user does not matter.
	cfg := base()
	cfg.RunAsNonRoot, cfg.RunAsUser = true, i64(1000)
	if _, err := build(t, cfg, &image.Image{Config: v1.Config{User: "root"}}, false); err != nil {
		t.Errorf("runAsNonRoot with runAsUser 1000: %v", err)
	}
}

// deniedSyscalls are the names an ALLOW-by-default profile refuses
// (with or without argument conditions).
func deniedSyscalls(s *specs.LinuxSeccomp) map[string]bool {
	out := map[string]bool{}
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActErrno {
			for _, n := range sc.Names {
				out[n] = true
			}
		}
	}
	return out
}

func TestLocalhostSeccomp(t *testing.T) {
	dir := t.TempDir()
	profile := `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
              {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
  "syscalls": [
    {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
    {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
    {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}}
  ]
}`
	path := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := seccompFor(&runtime.ContainerConfig{Seccomp: &runtime.SeccompProfile{Type: runtime.SeccompLocalhost, LocalhostPath: path}}, defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	if s.DefaultAction != specs.ActErrno || len(s.Syscalls) != 2 {
		t.Fatalf("profile %+v", s)
	}
	if got := strings.Join(s.Syscalls[1].Names, ","); got != "getpid" {
		t.Errorf("old-style name: %q", got)
	}
	if arches := seccompArches(); len(arches) > 0 && (len(s.Architectures) == 0 || s.Architectures[0] != arches[0]) {
		t.Errorf("architectures %v", s.Architectures)
	}
	_, err = seccompFor(&runtime.ContainerConfig{Seccomp: &runtime.SeccompProfile{Type: runtime.SeccompLocalhost, LocalhostPath: filepath.Join(dir, "missing.json")}}, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot load seccomp profile") {
		t.Errorf("missing profile: %v", err)
	}
}

func TestOOMScoreAdjClamp(t *testing.T) {
	own, ok := ownOOMScoreAdj()
	if !ok {
		t.Skip("no /proc/self/oom_score_adj")
	}
	low := int64(-999)
	got := *oomScoreAdj(&runtime.Resources{OOMScoreAdj: &low})
	if haveCapSysResource() {
		if got != -999 {
			t.Errorf("with CAP_SYS_RESOURCE: %d, want -999", got)
		}
	} else if got != own {
		t.Errorf("without CAP_SYS_RESOURCE: %d, want our own %d", got, own)
	}
	high := int64(1000)
	if got := *oomScoreAdj(&runtime.Resources{OOMScoreAdj: &high}); got != 1000 {
		t.Errorf("raising needs no capability: %d, want 1000", got)
	}
}
