package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestContainerArgs(t *testing.T) {
	img := &image.Image{Config: v1.Config{Entrypoint: []string{"/ep"}, Cmd: []string{"c1", "c2"}}}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          string
	}{
		{"image defaults", nil, nil, "/ep c1 c2"},
		{"args replace cmd", nil, []string{"a"}, "/ep a"},
		{"command drops cmd", []string{"/bin/x"}, nil, "/bin/x"},
		{"command and args", []string{"/bin/x"}, []string{"a"}, "/bin/x a"},
	} {
		got := containerArgs(&runtime.ContainerConfig{Command: tc.command, Args: tc.args}, img)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	img := &image.Image{Config: v1.Config{Env: []string{"PATH=/img/bin", "A=image", "B=image"}}}
	got := containerEnv("pod", &runtime.ContainerConfig{Env: []runtime.KeyValue{{Key: "B", Value: "pod"}, {Key: "C", Value: "x=y"}}}, img)
	want := "PATH=/img/bin A=image B=pod HOSTNAME=pod C=x=y"
	if strings.Join(got, " ") != want {
		t.Errorf("env = %q, want %q", got, want)
	}
}

// run runs script in a busybox container of a fresh sandbox and returns
// its status and output.
func runScript(t *testing.T, r *Runtime, sb string, script string, mutate func(*runtime.ContainerConfig)) (*runtime.ContainerStatus, string) {
	t.Helper()
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "0.log")
	cfg := &runtime.ContainerConfig{Name: "c" + newID()[:6], Image: fixture.image, Command: []string{"sh", "-c", script}, LogPath: logPath}
	if mutate != nil {
		mutate(cfg)
	}
	id, err := r.CreateContainer(ctx, sb, cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := r.ContainerStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == runtime.ContainerExited {
			data, _ := os.ReadFile(logPath)
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if f := strings.SplitN(l, " ", 4); len(f) == 4 {
					lines = append(lines, f[3])
				}
			}
			return st, strings.Join(lines, "\n")
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %v", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newSandbox(t *testing.T, r *Runtime, name string, dns *runtime.DNSConfig) string {
	t.Helper()
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: newID()[:8], Name: name, Namespace: "oci", Hostname: name, HostNetwork: true, DNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.RemovePodSandbox(context.Background(), sb) })
	return sb
}

func TestIsolation(t *testing.T) {
	r := newTestRuntime(t)
	sb := newSandbox(t, r, "web-0", &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}})
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "index.html"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vol, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mem int64 = 64 << 20
	for _, tc := range []struct {
		name   string
		script string
		mutate func(*runtime.ContainerConfig)
		want   string
		code   int32
	}{
		{"hostname", "hostname; cat /etc/hostname", nil, "web-0\nweb-0", 0},
		{"own rootfs", "touch /tmp/healthy && ls /tmp", nil, "healthy", 0},
		{"rootfs not shared", "test -e /tmp/healthy && echo shared || echo isolated", nil, "isolated", 0},
		{"pid namespace", "echo $$", nil, "1", 0},
		{"resolv.conf", "cat /etc/resolv.conf", nil, "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5", 0},
		{"hosts", "grep web-0 /etc/hosts", nil, "127.0.0.1\tweb-0", 0},
		{"volume at its path", "cat /usr/share/nginx/html/index.html; echo; echo x > /usr/share/nginx/html/new", func(c *runtime.ContainerConfig) {
			c.Mounts = []runtime.Mount{{Name: "html", HostPath: vol, ContainerPath: "/usr/share/nginx/html"}}
		}, "hello", 0},
		{"read-only volume", "echo x > /data/f", func(c *runtime.ContainerConfig) {
			c.Mounts = []runtime.Mount{{Name: "ro", HostPath: vol, ContainerPath: "/data", ReadOnly: true}}
		}, "sh: can't create /data/f: Read-only file system", 1},
		{"subPath", "ls /logs", func(c *runtime.ContainerConfig) {
			c.Mounts = []runtime.Mount{{Name: "v", HostPath: filepath.Join(vol, "sub"), ContainerPath: "/logs", SubPath: "sub"}} // joined by the kubelet
		}, "", 0},
		{"working dir created", "pwd", func(c *runtime.ContainerConfig) { c.WorkingDir = "/srv/app" }, "/srv/app", 0},
		{"user", "id -u; id -g", func(c *runtime.ContainerConfig) {
			u, g := int64(65534), int64(1000)
			c.RunAsUser, c.RunAsGroup = &u, &g
		}, "65534\n1000", 0},
		{"memory limit", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", func(c *runtime.ContainerConfig) {
			c.Resources = &runtime.Resources{MemoryLimitBytes: mem, CPULimitMillis: 500}
		}, "67108864", 0},
		{"read-only rootfs", "touch /x", func(c *runtime.ContainerConfig) { c.ReadOnlyRootfs = true }, "touch: /x: Read-only file system", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out := runScript(t, r, sb, tc.script, tc.mutate)
			if st.ExitCode != tc.code || out != tc.want {
				t.Errorf("exit %d output %q, want %d %q", st.ExitCode, out, tc.code, tc.want)
			}
		})
	}
	if data, err := os.ReadFile(filepath.Join(vol, "new")); err != nil || string(data) != "x\n" {
		t.Errorf("write through the volume: %q, %v", data, err)
	}
}

func TestImageConfig(t *testing.T) {
	r := newTestRuntime(t)
	// An image whose config sets Entrypoint, Cmd, Env, WorkingDir, User.
	base, err := fixture.store.Get(fixture.image)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(fixture.dir, "busybox.tar")
	imgs, err := fixture.store.Import(context.Background(), rootfs, image.ImportOptions{Name: "example.com/configured:v1", Config: v1.Config{
		Entrypoint: []string{"sh", "-c"}, Cmd: []string{`echo "$GREETING from $(pwd) as $(id -u)"`},
		Env: []string{"GREETING=hi"}, WorkingDir: "/var/www", User: "nobody",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].Layers[0] != base.Layers[0] {
		t.Errorf("the same rootfs got another layer: %s vs %s", imgs[0].Layers[0], base.Layers[0])
	}
	sb := newSandbox(t, r, "cfg", nil)
	st, out := runScript(t, r, sb, "", func(c *runtime.ContainerConfig) {
		c.Image, c.Command, c.Args = "example.com/configured:v1", nil, nil
	})
	if st.ExitCode != 0 || out != "hi from /var/www as 65534" {
		t.Errorf("exit %d output %q", st.ExitCode, out)
	}
	if st.ImageRef != imgs[0].ID {
		t.Errorf("ImageRef = %q, want %q", st.ImageRef, imgs[0].ID)
	}
	_, out = runScript(t, r, sb, "", func(c *runtime.ContainerConfig) {
		c.Image, c.Command, c.Args = "example.com/configured:v1", nil, []string{"echo args $GREETING"}
	})
	if out != "args hi" {
		t.Errorf("args override: %q", out)
	}
	if err := fixture.store.Remove("example.com/configured:v1"); err == nil {
		t.Errorf("removing an image its containers use succeeded")
	}
	if err := r.RemovePodSandbox(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
	if err := fixture.store.Remove("example.com/configured:v1"); err != nil {
		t.Errorf("removing the image after its containers: %v", err)
	}
}

// TestAdoption: a new runtime on the same state adopts running containers
// without restarting them.
func TestAdoption(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: "adopt", Name: "adopt", Namespace: "oci", HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.CreateContainer(ctx, sb, &runtime.ContainerConfig{Name: "c", Image: fixture.image,
		Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"}, LogPath: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	before, _ := r.ContainerStatus(ctx, id)
	r.Close()
	r2, err := New(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	after, err := r2.ContainerStatus(ctx, id)
	if err != nil || after.State != runtime.ContainerRunning || !after.StartedAt.Equal(before.StartedAt) {
		t.Fatalf("adopted status = %+v, %v", after, err)
	}
	if out, _, code, err := r2.ExecSync(ctx, id, []string{"echo", "still here"}, 5*time.Second); err != nil || code != 0 || string(out) != "still here\n" {
		t.Errorf("exec after adoption: %q %d %v", out, code, err)
	}
	if err := r2.StopContainer(ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := r2.ContainerStatus(ctx, id); st.State != runtime.ContainerExited || st.ExitCode != 0 {
		t.Errorf("after stop: %+v", st)
	}
	if err := r2.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
}
