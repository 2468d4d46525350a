package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// newCgroupTestRuntime is a test runtime with a cgroup parent of its own,
// removed (and checked empty) when the test ends.
func newCgroupTestRuntime(t *testing.T) (*Runtime, string) {
	t.Helper()
	setup(t)
	parent := "/" + testCgroupParent + "-" + newID()[:8]
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{
		RootDir: t.TempDir(), Images: fixture.store, ShimBinary: exe, ShimEnv: []string{shimEnv + "=1"},
		HostIP: "127.0.0.1", CgroupParent: parent,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		sbs, _ := r.ListPodSandboxes(ctx)
		for _, sb := range sbs {
			_ = r.RemovePodSandbox(ctx, sb.ID)
		}
		r.Close()
		// Deepest first; whatever is left is a leak.
		var left []string
		for _, h := range hostCgroups().hierarchies() {
			var dirs []string
			_ = filepath.Walk(filepath.Join(h, parent), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if dirs[i] != filepath.Join(h, parent) {
					left = append(left, dirs[i])
				}
				_ = unix.Rmdir(dirs[i])
			}
		}
		if len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})
	return r, parent
}

func TestOOMKilled(t *testing.T) {
	r, _ := newCgroupTestRuntime(t)
	sb := newSandbox(t, r, "oom", nil)
	for _, tc := range []struct {
		name   string
		script string
		code   int32
		reason string
	}{
		{"doubling a string", "x=a; while true; do x=$x$x; done", 137, reasonOOMKilled},
		{"tail /dev/zero", "tail /dev/zero", 137, reasonOOMKilled},
		{"exit 137 is no OOM", "exit 137", 137, "Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out := runScript(t, r, sb, tc.script, func(c *runtime.ContainerConfig) {
				c.Resources = &runtime.Resources{MemoryLimitBytes: 20 << 20}
			})
			if st.ExitCode != tc.code || st.Reason != tc.reason {
				t.Errorf("exit %d reason %q (output %q), want %d %q", st.ExitCode, st.Reason, out, tc.code, tc.reason)
			}
			// Remembered once the cgroup is gone.
			again, err := r.ContainerStatus(context.Background(), st.ID)
			if err != nil || again.Reason != st.Reason {
				t.Errorf("second status: %+v %v", again, err)
			}
		})
	}
	// A new runtime on the same state reports it from the record.
	st, _ := runScript(t, r, sb, "x=a; while true; do x=$x$x; done", func(c *runtime.ContainerConfig) {
		c.Resources = &runtime.Resources{MemoryLimitBytes: 20 << 20}
	})
	r.Close()
	r2, err := New(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got, err := r2.ContainerStatus(context.Background(), st.ID); err != nil || got.Reason != reasonOOMKilled || got.ExitCode != 137 {
		t.Errorf("after adoption: %+v %v", got, err)
	}
	if err := r2.RemovePodSandbox(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
}

func TestSecurityContextRunc(t *testing.T) {
	r, _ := newCgroupTestRuntime(t)
	sb := newSandbox(t, r, "sec", nil)
	runtimeDefault := &runtime.SeccompProfile{Type: runtime.SeccompRuntimeDefault}
	for _, tc := range []struct {
		name   string
		script string
		mutate func(*runtime.ContainerConfig)
		want   string
		code   int32
	}{
		{"chown with CAP_CHOWN", "touch /tmp/f && chown 1 /tmp/f && echo ok", nil, "ok", 0},
		{"chown without CAP_CHOWN", "touch /tmp/f && chown 1 /tmp/f", func(c *runtime.ContainerConfig) {
			c.Capabilities = &runtime.Capabilities{Drop: []string{"CHOWN"}}
		}, "chown: /tmp/f: Operation not permitted", 1},
		{"default capabilities", "grep CapBnd /proc/self/status", nil, "CapBnd:\t00000000a80425fb", 0},
		{"drop ALL", "grep CapEff /proc/self/status", func(c *runtime.ContainerConfig) {
			c.Capabilities = &runtime.Capabilities{Drop: []string{"ALL"}}
		}, "CapEff:\t0000000000000000", 0},
		{"add NET_ADMIN", "grep CapEff /proc/self/status", func(c *runtime.ContainerConfig) {
			c.Capabilities = &runtime.Capabilities{Add: []string{"NET_ADMIN"}}
		}, "CapEff:\t00000000a80435fb", 0},
		{"privileged", "grep CapEff /proc/self/status; grep Seccomp: /proc/self/status", func(c *runtime.ContainerConfig) {
			c.Privileged = true
			c.Seccomp = runtimeDefault
		}, "CapEff:\t" + privilegedCaps() + "\nSeccomp:\t0", 0},
		{"runAsUser", "id -u; id -g; id -G", func(c *runtime.ContainerConfig) {
			c.RunAsUser, c.RunAsGroup = i64(1000), i64(3000)
			c.SupplementalGroups = []int64{2000}
		}, "1000\n3000\n3000 2000", 0},
		{"non-root has no capabilities", "grep CapEff /proc/self/status", func(c *runtime.ContainerConfig) {
			c.RunAsUser = i64(1000)
		}, "CapEff:\t0000000000000000", 0},
		{"no new privileges", "grep NoNewPrivs /proc/self/status", func(c *runtime.ContainerConfig) {
			c.NoNewPrivileges = true
		}, "NoNewPrivs:\t1", 0},
		{"privilege escalation allowed", "grep NoNewPrivs /proc/self/status", nil, "NoNewPrivs:\t0", 0},
		{"seccomp unconfined", "grep Seccomp: /proc/self/status", nil, "Seccomp:\t0", 0},
		{"seccomp RuntimeDefault", "grep Seccomp: /proc/self/status", func(c *runtime.ContainerConfig) {
			c.Seccomp = runtimeDefault
		}, "Seccomp:\t2", 0},
		{"seccomp denies a user namespace", "unshare -U true 2>&1 | sed 's/unshare(.*)/unshare/'", func(c *runtime.ContainerConfig) {
			c.Seccomp = runtimeDefault
		}, "unshare: unshare: Operation not permitted", 0},
		{"seccomp keeps busybox working", "echo a > /tmp/x && cat /tmp/x && ls /tmp && sleep 0.01 && wc -c < /tmp/x", func(c *runtime.ContainerConfig) {
			c.Seccomp = runtimeDefault
		}, "a\nx\n2", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out := runScript(t, r, sb, tc.script, tc.mutate)
			if st.ExitCode != tc.code || out != tc.want {
				t.Errorf("exit %d output %q, want %d %q", st.ExitCode, out, tc.code, tc.want)
			}
		})
	}

	// runAsNonRoot refuses the image's root user before anything runs.
	_, err := r.CreateContainer(context.Background(), sb, &runtime.ContainerConfig{
		Name: "root", Image: fixture.image, Command: []string{"true"}, LogPath: filepath.Join(t.TempDir(), "log"), RunAsNonRoot: true,
		Labels: map[string]string{labelPodName: "sec", labelPodNamespace: "oci", labelPodUID: "u1"},
	})
	if want := `container has runAsNonRoot and image will run as root (pod: "sec_oci(u1)", container: root)`; err == nil || err.Error() != want {
		t.Errorf("runAsNonRoot: %v, want %q", err, want)
	}
}

func TestPodCgroupRunc(t *testing.T) {
	r, parent := newCgroupTestRuntime(t)
	ctx := context.Background()
	uid := "pod-" + newID()[:8]
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: uid, Name: "cg", Namespace: "oci", HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	cfs := hostCgroups()
	podPath := filepath.Join(parent, burstableCgroup, "pod"+uid)
	create := func(name string) string {
		id, err := r.CreateContainer(ctx, sb, &runtime.ContainerConfig{
			Name: name, Image: fixture.image, LogPath: filepath.Join(t.TempDir(), "log"),
			Command:      []string{"sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /proc/self/cgroup; sleep 30"},
			Resources:    &runtime.Resources{CPUMillis: 100, MemoryLimitBytes: 32 << 20},
			PodQOSClass:  runtime.QOSBurstable,
			PodResources: &runtime.Resources{CPUMillis: 250, MemoryLimitBytes: 64 << 20, PidsLimit: 50},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := create("a"), create("b")
	read := func(controller, file string) string {
		data, err := os.ReadFile(filepath.Join(cfs.dir(controller, podPath), file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	if cfs.v2 {
		for file, want := range map[string]string{"memory.max": "67108864", "cpu.weight": "10", "pids.max": "50", "cpu.max": "max 100000"} {
			if got := read("", file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	} else {
		for _, f := range [][3]string{
			{"memory", "memory.limit_in_bytes", "67108864"}, {"cpu", "cpu.shares", "256"},
			{"cpu", "cpu.cfs_quota_us", "-1"}, {"pids", "pids.max", "50"},
		} {
			if got := read(f[0], f[1]); got != f[2] {
				t.Errorf("%s = %q, want %q", f[1], got, f[2])
			}
		}
	}
	// The container's own limit is in its cgroup, inside the pod's.
	if !cfs.v2 {
		st, _ := r.ContainerStatus(ctx, a)
		deadline := time.Now().Add(5 * time.Second)
		for {
			data, _ := os.ReadFile(st.LogPath)
			if strings.Contains(string(data), " 33554432\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("container log %q lacks its memory limit", data)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := os.Stat(cfs.dir("memory", filepath.Join(podPath, a))); err != nil {
		t.Errorf("container cgroup: %v", err)
	}
	if st, err := r.ContainerStats(ctx, a); err != nil || st.MemoryWorkingSetBytes == 0 {
		t.Errorf("stats from the container cgroup: %+v %v", st, err)
	}
	if st, err := r.PodSandboxStats(ctx, sb); err != nil || st.MemoryWorkingSetBytes == 0 || st.CPUUsageNanoSeconds == 0 {
		t.Errorf("stats from the pod cgroup: %+v %v", st, err)
	}

	// The pod cgroup stays while a container remains.
	if err := r.RemoveContainer(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfs.dir("memory", podPath)); err != nil {
		t.Errorf("pod cgroup gone with a container left: %v", err)
	}
	if _, err := os.Stat(cfs.dir("memory", filepath.Join(podPath, a))); !os.IsNotExist(err) {
		t.Errorf("removed container's cgroup: %v", err)
	}
	if err := r.RemoveContainer(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, h := range cfs.hierarchies() {
		for _, d := range []string{podPath, filepath.Dir(podPath)} {
			if _, err := os.Stat(filepath.Join(h, d)); !os.IsNotExist(err) {
				t.Errorf("%s left after the last container (%v)", filepath.Join(h, d), err)
			}
		}
	}
	if err := r.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
}

func TestGuaranteedPodPlacement(t *testing.T) {
	r, parent := newCgroupTestRuntime(t)
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: "guaranteed-1", Name: "g", Namespace: "oci", HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	res := &runtime.Resources{CPUMillis: 200, CPULimitMillis: 200, MemoryRequest: 32 << 20, MemoryLimitBytes: 32 << 20}
	st, out := runScript(t, r, sb, "cat /proc/self/cgroup | grep memory", func(c *runtime.ContainerConfig) { c.Resources = res })
	if !hostCgroups().v2 {
		want := ":memory:" + filepath.Join(parent, "podguaranteed-1", st.ID)
		if !strings.HasSuffix(out, want) {
			t.Errorf("cgroup %q, want …%s", out, want)
		}
	}
	if data, err := os.ReadFile(hostCgroups().dir("cpu", filepath.Join(parent, "podguaranteed-1", "cpu.cfs_quota_us"))); err == nil && strings.TrimSpace(string(data)) != "20000" {
		t.Errorf("pod quota %q", data)
	}
	if err := r.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
}

// privilegedCaps is CapEff of a privileged container: the capabilities
// the runtime has.
func privilegedCaps() string {
	var mask uint64
	for _, c := range allCaps() {
		for i, n := range capNames {
			if n == c {
				mask |= 1 << uint(i)
			}
		}
	}
	return fmt.Sprintf("%016x", mask)
}
