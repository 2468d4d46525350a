package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestCPUConversions(t *testing.T) {
	for _, tc := range []struct {
		milli  int64
		shares uint64
		quota  int64
	}{
		{0, 2, 0},
		{1, 2, 1000},
		{5, 5, 1000},
		{10, 10, 1000},
		{100, 102, 10000},
		{250, 256, 25000},
		{1000, 1024, 100000},
		{1500, 1536, 150000},
		{300000, 262144, 30000000},
	} {
		if got := milliCPUToShares(tc.milli); got != tc.shares {
			t.Errorf("milliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.shares)
		}
		if got := milliCPUToQuota(tc.milli); got != tc.quota {
			t.Errorf("milliCPUToQuota(%d) = %d, want %d", tc.milli, got, tc.quota)
		}
	}
	for _, tc := range []struct{ shares, weight uint64 }{{2, 1}, {1024, 39}, {262144, 10000}} {
		if got := sharesToWeight(tc.shares); got != tc.weight {
			t.Errorf("sharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
		if got := sharesToWeight(weightToShares(tc.weight)); got != tc.weight {
			t.Errorf("weight %d does not round-trip: %d", tc.weight, got)
		}
	}
}

func TestPodCgroupPlacement(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  runtime.ContainerConfig
		want podCgroupSpec
	}{
		{"besteffort from the container", runtime.ContainerConfig{},
			podCgroupSpec{Path: "/k1s/besteffort/podu1", QOS: runtime.QOSBestEffort}},
		{"guaranteed from the container", runtime.ContainerConfig{Resources: &runtime.Resources{CPUMillis: 500, CPULimitMillis: 500, MemoryRequest: 64 << 20, MemoryLimitBytes: 64 << 20}},
			podCgroupSpec{Path: "/k1s/podu1", QOS: runtime.QOSGuaranteed, Resources: runtime.Resources{CPUMillis: 500, CPULimitMillis: 500, MemoryRequest: 64 << 20, MemoryLimitBytes: 64 << 20}}},
		{"limits only is guaranteed", runtime.ContainerConfig{Resources: &runtime.Resources{CPULimitMillis: 500, MemoryLimitBytes: 64 << 20}},
			podCgroupSpec{Path: "/k1s/podu1", QOS: runtime.QOSGuaranteed, Resources: runtime.Resources{CPULimitMillis: 500, MemoryLimitBytes: 64 << 20}}},
		{"burstable from the container", runtime.ContainerConfig{Resources: &runtime.Resources{MemoryLimitBytes: 20 << 20}},
			podCgroupSpec{Path: "/k1s/burstable/podu1", QOS: runtime.QOSBurstable, Resources: runtime.Resources{MemoryLimitBytes: 20 << 20}}},
		{"the pod's class and resources win", runtime.ContainerConfig{
			Resources:   &runtime.Resources{CPUMillis: 100},
			PodQOSClass: runtime.QOSBurstable, PodResources: &runtime.Resources{CPUMillis: 300, PidsLimit: 64},
		}, podCgroupSpec{Path: "/k1s/burstable/podu1", QOS: runtime.QOSBurstable, Resources: runtime.Resources{CPUMillis: 300, PidsLimit: 64}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podCgroupFor("/k1s", "u1", &tc.cfg); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// fakeCgroups is a cgroup tree in a plain directory: rmdir removes a
// directory holding no directories (files are the controllers').
func fakeCgroups(t *testing.T, v2 bool) *cgroupFS {
	t.Helper()
	root := t.TempDir()
	if v2 {
		if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "devices", "systemd", "unified"} {
			if err := os.MkdirAll(filepath.Join(root, c), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	fs := detectCgroups(root)
	fs.rmdir = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return unix.ENOENT
		}
		for _, e := range entries {
			if e.IsDir() {
				return unix.EBUSY
			}
		}
		return os.RemoveAll(dir)
	}
	return fs
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestEnsurePodV1(t *testing.T) {
	fs := fakeCgroups(t, false)
	if fs.v2 {
		t.Fatal("detected v2")
	}
	guaranteed := podCgroupSpec{Path: "/k1s/poda", QOS: runtime.QOSGuaranteed, Resources: runtime.Resources{CPUMillis: 500, CPULimitMillis: 500, MemoryLimitBytes: 64 << 20, PidsLimit: 100}}
	burstable1 := podCgroupSpec{Path: "/k1s/burstable/podb", QOS: runtime.QOSBurstable, Resources: runtime.Resources{CPUMillis: 250}}
	burstable2 := podCgroupSpec{Path: "/k1s/burstable/podc", QOS: runtime.QOSBurstable, Resources: runtime.Resources{CPUMillis: 1000, MemoryLimitBytes: 20 << 20}}
	besteffort := podCgroupSpec{Path: "/k1s/besteffort/podd", QOS: runtime.QOSBestEffort, Resources: runtime.Resources{MemoryLimitBytes: 1 << 30}}
	for _, s := range []podCgroupSpec{guaranteed, burstable1, burstable2, besteffort} {
		if err := fs.ensurePod("/k1s", s); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"cpu/k1s/poda/cpu.shares", "512"},
		{"cpu/k1s/poda/cpu.cfs_period_us", "100000"},
		{"cpu/k1s/poda/cpu.cfs_quota_us", "50000"},
		{"memory/k1s/poda/memory.limit_in_bytes", "67108864"},
		{"pids/k1s/poda/pids.max", "100"},
		{"cpu/k1s/burstable/podb/cpu.shares", "256"},
		{"cpu/k1s/burstable/podb/cpu.cfs_quota_us", "-1"},
		{"memory/k1s/burstable/podb/memory.limit_in_bytes", "-1"},
		{"pids/k1s/burstable/podb/pids.max", "max"},
		{"memory/k1s/burstable/podc/memory.limit_in_bytes", "20971520"},
		{"cpu/k1s/burstable/cpu.shares", "1280"}, // 256 + 1024
		{"cpu/k1s/besteffort/cpu.shares", "2"},
		{"cpu/k1s/besteffort/podd/cpu.shares", "2"},
		{"memory/k1s/besteffort/podd/memory.limit_in_bytes", "-1"}, // BestEffort: no pod limits
	} {
		if got := readFile(t, filepath.Join(fs.root, tc.file)); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.file, got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(fs.root, "cpuacct/k1s/poda")); err != nil {
		t.Errorf("no cpuacct pod cgroup: %v", err)
	}

	// runc's container cgroups (in every hierarchy) keep a pod cgroup busy.
	for _, h := range fs.hierarchies() {
		if err := os.MkdirAll(filepath.Join(h, "/k1s/burstable/podb/ctr"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.removePod("/k1s", burstable1); err == nil {
		t.Errorf("removing a pod cgroup with a container succeeded")
	}
	for _, h := range fs.hierarchies() {
		if err := os.RemoveAll(filepath.Join(h, "/k1s/burstable/podb/ctr")); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.removePod("/k1s", burstable1); err != nil {
		t.Fatal(err)
	}
	for _, h := range fs.hierarchies() {
		if _, err := os.Stat(filepath.Join(h, "/k1s/burstable/podb")); !os.IsNotExist(err) {
			t.Errorf("%s: pod cgroup left (%v)", h, err)
		}
	}
	if got := readFile(t, filepath.Join(fs.root, "cpu/k1s/burstable/cpu.shares")); got != "1024" {
		t.Errorf("burstable shares after a removal = %s, want 1024", got)
	}
	if err := fs.removePod("/k1s", burstable2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fs.root, "cpu/k1s/burstable")); !os.IsNotExist(err) {
		t.Errorf("empty burstable cgroup left (%v)", err)
	}
	if err := fs.removePod("/k1s", guaranteed); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fs.root, "cpu/k1s")); err != nil {
		t.Errorf("the parent went with a guaranteed pod: %v", err)
	}
	// Removing twice is fine.
	if err := fs.removePod("/k1s", guaranteed); err != nil {
		t.Errorf("second removal: %v", err)
	}
}

func TestEnsurePodV2(t *testing.T) {
	fs := fakeCgroups(t, true)
	if !fs.v2 {
		t.Fatal("detected v1")
	}
	guaranteed := podCgroupSpec{Path: "/k1s/poda", QOS: runtime.QOSGuaranteed, Resources: runtime.Resources{CPUMillis: 500, CPULimitMillis: 500, MemoryLimitBytes: 64 << 20, PidsLimit: 100}}
	burstable := podCgroupSpec{Path: "/k1s/burstable/podb", QOS: runtime.QOSBurstable, Resources: runtime.Resources{CPUMillis: 1000}}
	besteffort := podCgroupSpec{Path: "/k1s/besteffort/podc", QOS: runtime.QOSBestEffort}
	for _, s := range []podCgroupSpec{guaranteed, burstable, besteffort} {
		if err := fs.ensurePod("/k1s", s); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"k1s/poda/cpu.weight", "20"},
		{"k1s/poda/cpu.max", "50000 100000"},
		{"k1s/poda/memory.max", "67108864"},
		{"k1s/poda/pids.max", "100"},
		{"k1s/burstable/podb/cpu.weight", "39"},
		{"k1s/burstable/podb/cpu.max", "max 100000"},
		{"k1s/burstable/podb/memory.max", "max"},
		{"k1s/burstable/cpu.weight", "39"},
		{"k1s/besteffort/cpu.weight", "1"},
		{"k1s/besteffort/podc/cpu.weight", "1"},
		// The controllers are enabled down to the pod (the last write
		// stays in a plain file).
		{"cgroup.subtree_control", "+pids"},
		{"k1s/burstable/cgroup.subtree_control", "+pids"},
	} {
		if got := readFile(t, filepath.Join(fs.root, tc.file)); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.file, got, tc.want)
		}
	}
	// io is not one of ours; only cpu, memory, pids are enabled.
	if err := os.WriteFile(filepath.Join(fs.root, "k1s/burstable/podb/memory.events"), []byte("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, ok := fs.oomKills("/k1s/burstable/podb"); !ok || n != 1 {
		t.Errorf("oomKills = %d, %v", n, ok)
	}
	if _, ok := fs.oomKills("/k1s/poda"); ok {
		t.Errorf("oomKills of a cgroup without memory.events: ok")
	}
	for _, s := range []podCgroupSpec{guaranteed, burstable, besteffort} {
		if err := fs.removePod("/k1s", s); err != nil {
			t.Fatal(err)
		}
	}
	// A controller the pod did not get is skipped.
	partial := podCgroupSpec{Path: "/k1s/pode", QOS: runtime.QOSGuaranteed, Resources: runtime.Resources{CPUMillis: 500, CPULimitMillis: 500, MemoryLimitBytes: 64 << 20}}
	if err := os.MkdirAll(filepath.Join(fs.root, partial.Path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fs.root, partial.Path, "cgroup.controllers"), []byte("memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fs.ensurePod("/k1s", partial); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fs.root, partial.Path, "cpu.max")); !os.IsNotExist(err) {
		t.Errorf("cpu.max written without the cpu controller (%v)", err)
	}
	if got := readFile(t, filepath.Join(fs.root, partial.Path, "memory.max")); got != "67108864" {
		t.Errorf("memory.max = %q", got)
	}
	if err := fs.removePod("/k1s", partial); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(fs.root, "k1s"))
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("left: %s", e.Name())
		}
	}
}

func TestOOMKillsV1(t *testing.T) {
	fs := fakeCgroups(t, false)
	dir := filepath.Join(fs.root, "memory/k1s/podx/c1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, ok := fs.oomKills("/k1s/podx/c1"); !ok || n != 2 {
		t.Errorf("oomKills = %d, %v", n, ok)
	}
	if _, ok := fs.oomKills("/k1s/podx/gone"); ok {
		t.Errorf("a missing cgroup has a counter")
	}
}

func TestCgroupStats(t *testing.T) {
	write := func(t *testing.T, path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := runtime.ContainerStats{CPUUsageNanoSeconds: 1500000000, MemoryWorkingSetBytes: 30 << 20, MemoryRSSBytes: 20 << 20}

	v1fs := fakeCgroups(t, false)
	write(t, filepath.Join(v1fs.root, "memory/k1s/podu/c/memory.usage_in_bytes"), "41943040\n")
	write(t, filepath.Join(v1fs.root, "memory/k1s/podu/c/memory.stat"), "cache 0\nrss 1\ninactive_file 7\ntotal_rss 20971520\ntotal_inactive_file 10485760\n")
	write(t, filepath.Join(v1fs.root, "cpuacct/k1s/podu/c/cpuacct.usage"), "1500000000\n")
	if got, err := v1fs.stats("/k1s/podu/c"); err != nil || *got != want {
		t.Errorf("v1 stats = %+v, %v; want %+v", got, err, want)
	}

	v2fs := fakeCgroups(t, true)
	write(t, filepath.Join(v2fs.root, "k1s/podu/c/memory.current"), "41943040\n")
	write(t, filepath.Join(v2fs.root, "k1s/podu/c/memory.stat"), "anon 20971520\nfile 20971520\ninactive_file 10485760\n")
	write(t, filepath.Join(v2fs.root, "k1s/podu/c/cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\n")
	if got, err := v2fs.stats("/k1s/podu/c"); err != nil || *got != want {
		t.Errorf("v2 stats = %+v, %v; want %+v", got, err, want)
	}
	if _, err := v2fs.stats("/k1s/gone"); err == nil {
		t.Errorf("stats of a missing cgroup succeeded")
	}
}
