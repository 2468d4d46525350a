package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// defaultPath is used when the host has no PATH (the OCI default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// VolumeEnvName is the environment variable that carries the host path of
// the volume called name: "cache-vol" → "K1S_VOLUME_CACHE_VOL".
func VolumeEnvName(name string) string {
	var b strings.Builder
	b.WriteString("K1S_VOLUME_")
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// hostPath is the PATH of the agent, or the OCI default.
func hostPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return defaultPath
}

// containerEnv is the process environment of a container: what an image
// and containerd would add (PATH, HOME, HOSTNAME, TERM), the volume
// variables, then the container's own Env. Later entries replace earlier
// ones with the same name, keeping the first position.
func containerEnv(sb *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) []string {
	hostname := sb.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	home := os.Getenv("HOME")
	if home == "" {
		home = "/"
	}
	var kvs []runtime.KeyValue
	kvs = append(kvs,
		runtime.KeyValue{Key: "PATH", Value: hostPath()},
		runtime.KeyValue{Key: "HOSTNAME", Value: hostname},
		runtime.KeyValue{Key: "HOME", Value: home},
	)
	if cfg.TTY {
		kvs = append(kvs, runtime.KeyValue{Key: "TERM", Value: "xterm"})
	}
	for _, m := range cfg.Mounts {
		p := m.HostPath // the kubelet has joined the SubPath already
		kvs = append(kvs, runtime.KeyValue{Key: VolumeEnvName(m.Name), Value: p})
	}
	kvs = append(kvs, cfg.Env...)

	index := map[string]int{}
	var env []string
	for _, kv := range kvs {
		e := kv.Key + "=" + kv.Value
		if i, ok := index[kv.Key]; ok {
			env[i] = e
			continue
		}
		index[kv.Key] = len(env)
		env = append(env, e)
	}
	return env
}

// envValue returns the value of key in env.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds the executable for file: a name with a slash is taken as
// is (relative to dir), otherwise it is searched in the PATH of env, then
// in fallbackPath. Errors read like exec.LookPath's:
// `exec: "foo": executable file not found in $PATH`.
func lookPath(file string, env []string, dir, fallbackPath string) (string, error) {
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := isExecutable(p); err != nil {
			return "", &exec.Error{Name: file, Err: err}
		}
		return p, nil
	}
	for _, pathList := range []string{envValue(env, "PATH"), fallbackPath} {
		for _, d := range filepath.SplitList(pathList) {
			if d == "" {
				d = "."
			}
			if !filepath.IsAbs(d) {
				d = filepath.Join(dir, d)
			}
			p := filepath.Join(d, file)
			if isExecutable(p) == nil {
				return p, nil
			}
		}
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}
