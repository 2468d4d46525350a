package process

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestVolumeEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"data":            "K1S_VOLUME_DATA",
		"cache-vol":       "K1S_VOLUME_CACHE_VOL",
		"kube-api-access": "K1S_VOLUME_KUBE_API_ACCESS",
		"my.vol2":         "K1S_VOLUME_MY_VOL2",
	} {
		if got := VolumeEnvName(in); got != want {
			t.Errorf("VolumeEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	t.Setenv("PATH", "/host/bin")
	t.Setenv("HOME", "/root")
	for _, tc := range []struct {
		name string
		sb   runtime.PodSandboxConfig
		cfg  runtime.ContainerConfig
		want []string
	}{
		{
			name: "defaults",
			sb:   runtime.PodSandboxConfig{Hostname: "pod1"},
			want: []string{"PATH=/host/bin", "HOSTNAME=pod1", "HOME=/root"},
		},
		{
			name: "tty, mounts and env; the container's env wins in place",
			sb:   runtime.PodSandboxConfig{Hostname: "pod1"},
			cfg: runtime.ContainerConfig{
				TTY: true,
				Mounts: []runtime.Mount{
					{Name: "data", HostPath: "/var/lib/k1s/pods/u/volumes/data", ContainerPath: "/data"},
					{Name: "conf-files", HostPath: "/cfg/app.conf", SubPath: "app.conf"}, // joined by the kubelet
				},
				Env: []runtime.KeyValue{{Key: "FOO", Value: "1"}, {Key: "HOSTNAME", Value: "custom"}, {Key: "FOO", Value: "2"}},
			},
			want: []string{
				"PATH=/host/bin", "HOSTNAME=custom", "HOME=/root", "TERM=xterm",
				"K1S_VOLUME_DATA=/var/lib/k1s/pods/u/volumes/data",
				"K1S_VOLUME_CONF_FILES=/cfg/app.conf",
				"FOO=2",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := containerEnv(&tc.sb, &tc.cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	other := filepath.Join(dir, "other")
	for _, d := range []string{bin, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "tool"), 0o755)
	write(filepath.Join(bin, "data"), 0o644)
	write(filepath.Join(other, "hosttool"), 0o755)
	write(filepath.Join(dir, "local.sh"), 0o755)

	env := []string{"PATH=" + bin}
	for _, tc := range []struct {
		file    string
		want    string
		wantErr error
	}{
		{file: "tool", want: filepath.Join(bin, "tool")},
		{file: "hosttool", want: filepath.Join(other, "hosttool")}, // from the fallback PATH
		{file: "data", wantErr: exec.ErrNotFound},
		{file: "missing", wantErr: exec.ErrNotFound},
		{file: "./local.sh", want: filepath.Join(dir, "local.sh")},
		{file: filepath.Join(bin, "tool"), want: filepath.Join(bin, "tool")},
		{file: "./nope.sh", wantErr: os.ErrNotExist},
	} {
		got, err := lookPath(tc.file, env, dir, other)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("lookPath(%q) error = %v, want %v", tc.file, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q) = %q, %v; want %q", tc.file, got, err, tc.want)
		}
	}
	_, err := lookPath("missing", env, dir, other)
	if want := `exec: "missing": executable file not found in $PATH`; err == nil || err.Error() != want {
		t.Errorf("error text = %v, want %q", err, want)
	}
}

func TestNormalizeImage(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "busybox", want: "docker.io/library/busybox:latest"},
		{in: "busybox:1.28", want: "docker.io/library/busybox:1.28"},
		{in: "kubetm/app", want: "docker.io/kubetm/app:latest"},
		{in: "gcr.io/terrycho-sandbox/liveness:v1", want: "gcr.io/terrycho-sandbox/liveness:v1"},
		{in: "busybox@sha256:" + sha, want: "docker.io/library/busybox@sha256:" + sha},
		{in: "busybox:1.28:bad", wantErr: true},
		{in: "UPPER", wantErr: true},
	} {
		got, err := normalizeImage(tc.in)
		if tc.wantErr {
			if !errors.Is(err, runtime.ErrInvalidConfig) {
				t.Errorf("normalizeImage(%q) error = %v, want ErrInvalidConfig", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("normalizeImage(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseProcStat(t *testing.T) {
	line := "4242 (my (weird) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 123456 1000 200 18446744073709551615"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{State: 'S', PPID: 1, PGID: 4242, Session: 4242, UTime: 7, STime: 3, CUTime: 2, CSTime: 1, StartTime: 123456}
	if st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Errorf("parseProcStat(garbage) succeeded")
	}
}
