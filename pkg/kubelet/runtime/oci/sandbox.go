package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/network"
)

// sandboxShm is the sandbox's /dev/shm (a tmpfs shared by its containers).
const sandboxShm = "shm"

// shmSize is the size of a pod's /dev/shm, as containerd's sandbox.
const shmSize = 64 << 20

// sandboxRecord is sandboxes/<id>/sandbox.json: what containers need of
// their sandbox. The sandbox's state lives in the host runtime (same id).
type sandboxRecord struct {
	ID       string
	Hostname string
	// NetNSPath is the pod's pinned network namespace; empty for
	// hostNetwork pods (and when the runtime has no pod network).
	NetNSPath string `json:",omitempty"`
	// IP is the pod IP in the pod network; empty when NetNSPath is.
	IP string `json:",omitempty"`
}

// RunPodSandbox implements runtime.Runtime. A sandbox is a directory with
// the pod's /etc/hosts, /etc/hostname, /etc/resolv.conf and /dev/shm and,
// unless the pod is hostNetwork or the runtime has no pod network, a
// network namespace of its own with the pod IP.
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtime.PodSandboxConfig) (string, error) {
	id, err := r.shims.RunPodSandbox(ctx, cfg)
	if err != nil {
		return "", err
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = cfg.Name
	}
	if cfg.HostNetwork {
		// hostNetwork pods see the node's name (upstream: the host's UTS).
		if h, err := os.Hostname(); err == nil && cfg.Hostname == "" {
			hostname = h
		}
	}
	rec := &sandboxRecord{ID: id, Hostname: hostname}
	if !cfg.HostNetwork && r.opts.Network != nil {
		rec.NetNSPath, rec.IP, err = r.opts.Network.Setup(ctx, id, network.SetupOptions{PortMappings: portMappings(cfg.Ports)})
		if err != nil {
			_ = r.shims.RemovePodSandbox(context.WithoutCancel(ctx), id)
			return "", fmt.Errorf("failed to setup network for sandbox %q: %w", id, err)
		}
	}
	dir := r.sandboxDir(id)
	fail := func(err error) (string, error) {
		r.cleanupSandboxDir(dir)
		if rec.NetNSPath != "" {
			_ = r.opts.Network.Teardown(id)
		}
		_ = r.shims.RemovePodSandbox(context.WithoutCancel(ctx), id)
		return "", err
	}
	if err := r.writeSandbox(dir, hostname, rec.IP, cfg); err != nil {
		return fail(fmt.Errorf("pod sandbox: %w", err))
	}
	if err := writeJSON(filepath.Join(dir, "sandbox.json"), rec); err != nil {
		return fail(err)
	}
	r.mu.Lock()
	r.sandboxes[id] = rec
	r.mu.Unlock()
	return id, nil
}

// writeSandbox writes the sandbox's /etc files; /etc/hosts names the pod
// IP podIP (the node's IP for the host network).
// hostsFile is the kubelet-managed /etc/hosts (upstream's
// managedHostsFileContent): localhost lines, the pod's address with its
// hostname (and FQDN when it has a subdomain), then spec.hostAliases.
func hostsFile(ip, hostname, domain string, aliases []runtime.HostAlias) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if domain != "" {
		fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	if len(aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range aliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

func (r *Runtime) writeSandbox(dir, hostname, podIP string, cfg *runtime.PodSandboxConfig) error {
	if err := os.MkdirAll(filepath.Join(dir, sandboxShm), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("shm", filepath.Join(dir, sandboxShm), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		fmt.Sprintf("mode=1777,size=%d", shmSize)); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	ip := podIP
	if ip == "" {
		ip = r.opts.HostIP
	}
	if ip == "" {
		ip = "127.0.0.1"
	}
	hosts := hostsFile(ip, hostname, cfg.Domain, cfg.HostAliases)
	files := map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolvConf(cfg.DNS),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolvConf renders the sandbox's DNS config, or copies the host's.
func resolvConf(dns *runtime.DNSConfig) string {
	if dns == nil || (len(dns.Servers) == 0 && len(dns.Searches) == 0 && len(dns.Options) == 0) {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return ""
		}
		return string(data)
	}
	var b strings.Builder
	if len(dns.Searches) > 0 {
		b.WriteString("search " + strings.Join(dns.Searches, " ") + "\n")
	}
	for _, s := range dns.Servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(dns.Options) > 0 {
		b.WriteString("options " + strings.Join(dns.Options, " ") + "\n")
	}
	return b.String()
}

func (r *Runtime) cleanupSandboxDir(dir string) {
	_ = unix.Unmount(filepath.Join(dir, sandboxShm), unix.MNT_DETACH)
	_ = os.RemoveAll(dir)
}

// sandboxContainers are our containers in sandbox id.
func (r *Runtime) sandboxContainers(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for cid, c := range r.containers {
		if c.rec.SandboxID == id {
			out = append(out, cid)
		}
	}
	return out
}

// StopPodSandbox kills the sandbox's containers and marks it NotReady.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	for _, cid := range r.sandboxContainers(id) {
		if err := r.StopContainer(ctx, cid, 0); err != nil {
			return err
		}
	}
	return r.shims.StopPodSandbox(ctx, id)
}

// RemovePodSandbox removes the sandbox's containers, its network and its
// directory. The network stays until here (as upstream: a stopped pod
// keeps its IP while it terminates).
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	for _, cid := range r.sandboxContainers(id) {
		if err := r.RemoveContainer(ctx, cid); err != nil {
			return err
		}
	}
	if r.opts.Network != nil {
		if err := r.opts.Network.Teardown(id); err != nil {
			return err
		}
	}
	if err := r.shims.RemovePodSandbox(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.sandboxes, id)
	r.mu.Unlock()
	r.cleanupSandboxDir(r.sandboxDir(id))
	return nil
}

// PodSandboxStatus implements runtime.Runtime: IP is the pod IP of a
// sandbox in the pod network, else the host runtime's (HostIP).
func (r *Runtime) PodSandboxStatus(ctx context.Context, id string) (*runtime.SandboxStatus, error) {
	st, err := r.shims.PodSandboxStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	r.setPodIP(st)
	return st, nil
}

// ListPodSandboxes implements runtime.Runtime.
func (r *Runtime) ListPodSandboxes(ctx context.Context) ([]*runtime.SandboxStatus, error) {
	sts, err := r.shims.ListPodSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		r.setPodIP(st)
	}
	return sts, nil
}

func (r *Runtime) setPodIP(st *runtime.SandboxStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.sandboxes[st.ID]; rec != nil && rec.IP != "" {
		st.IP = rec.IP
	}
}
