package kubelet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/backoff"
	"k1s.dev/k1s/pkg/kubelet/env"
	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/status"
	"k1s.dev/k1s/pkg/kubelet/volume"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	ref "k8s.io/client-go/tools/reference"
	resourcehelper "k8s.io/component-helpers/resource"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	v1qos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	kubeletqos "k8s.io/kubernetes/pkg/kubelet/qos"
	"k8s.io/kubernetes/pkg/kubelet/util/format"
	"k8s.io/kubernetes/pkg/securitycontext"
)

// minimumGracePeriod: containers always get this long to stop (upstream's
// minimumGracePeriodInSeconds).
const minimumGracePeriod = 2

// startResult is the outcome of starting one container: no reason means it
// started. backoffUntil is set when the start waits for a back-off.
type startResult struct {
	name         string
	reason       string
	message      string
	backoffUntil time.Time
	// id is the runtime's id of a container that started.
	id string
}

// syncResult is the outcome of executing a plan.
type syncResult struct {
	starts         []startResult
	err            error
	createdSandbox bool
}

func (r *syncResult) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// startedIDs are the runtime ids of the containers this sync started.
func (r *syncResult) startedIDs() map[string]bool {
	var ids map[string]bool
	for _, s := range r.starts {
		if s.id != "" && s.reason == "" {
			if ids == nil {
				ids = map[string]bool{}
			}
			ids[s.id] = true
		}
	}
	return ids
}

// backoffUntil is the earliest back-off expiry of the sync, zero if none.
func (r *syncResult) backoffUntil() time.Time {
	var t time.Time
	for _, s := range r.starts {
		if !s.backoffUntil.IsZero() && (t.IsZero() || s.backoffUntil.Before(t)) {
			t = s.backoffUntil
		}
	}
	return t
}

func (r *syncResult) failed() bool {
	if r.err != nil {
		return true
	}
	for _, s := range r.starts {
		if s.reason != "" {
			return true
		}
	}
	return false
}

// containerRef is the event target of a container: the pod with fieldPath
// spec.containers{name} or spec.initContainers{name}.
func containerRef(pod *v1.Pod, c *v1.Container) *v1.ObjectReference {
	path := fmt.Sprintf("spec.containers{%s}", c.Name)
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			path = fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	r, err := ref.GetPartialReference(scheme.Scheme, pod, path)
	if err != nil {
		return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, FieldPath: path}
	}
	return r
}

func podRef(pod *v1.Pod) *v1.ObjectReference {
	r, err := ref.GetReference(scheme.Scheme, pod)
	if err != nil {
		return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID}
	}
	return r
}

// podFullName is upstream's format.Pod: name_namespace(uid).
func podFullName(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// containerSpec finds a container of the pod by name.
func containerSpec(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func (k *Kubelet) podLogDir(pod *v1.Pod) string {
	return filepath.Join(k.deps.RootDir, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// execute carries out a plan (upstream's SyncPod steps 2-9).
func (k *Kubelet) execute(ctx context.Context, pod *v1.Pod, state *podstate.PodState, rt runtime.Runtime, a podActions) syncResult {
	var res syncResult
	if a.CreateSandbox && a.SandboxID != "" {
		k.recorder.Event(podRef(pod), v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
	}
	if a.KillPod {
		if err := k.killPod(ctx, pod, state, rt, nil); err != nil {
			res.fail(err)
			return res
		}
		if a.CreateSandbox {
			k.purgeInitContainers(ctx, pod, state, rt)
		}
	} else {
		for id, kill := range a.ContainersToKill {
			if err := k.killContainer(ctx, pod, kill.container, rt, id, kill.message, kill.reason, nil); err != nil {
				res.fail(fmt.Errorf("kill container %q: %w", kill.name, err))
				return res
			}
		}
	}
	k.pruneContainers(ctx, pod, state, rt)

	podIPs := state.IPs(k.hostIP)
	sandboxID := a.SandboxID
	if a.CreateSandbox {
		id, err := k.createSandbox(ctx, pod, rt, a.Attempt)
		if err != nil {
			k.recorder.Eventf(podRef(pod), v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			res.fail(err)
			return res
		}
		sandboxID = id
		res.createdSandbox = true
		if st, err := k.podState(ctx, pod.UID, rt); err == nil {
			state = st
			podIPs = st.IPs(k.hostIP)
		}
		k.sandboxReady(pod)
	}
	if len(a.InitContainersToStart) == 0 && len(a.ContainersToStart) == 0 {
		return res
	}
	for _, i := range a.InitContainersToStart {
		c := &pod.Spec.InitContainers[i]
		r := k.startContainer(ctx, pod, c, rt, sandboxID, state, podIPs)
		res.starts = append(res.starts, r)
		if r.reason != "" && !podutil.IsRestartableInitContainer(c) {
			return res
		}
	}
	for _, i := range a.ContainersToStart {
		res.starts = append(res.starts, k.startContainer(ctx, pod, &pod.Spec.Containers[i], rt, sandboxID, state, podIPs))
	}
	return res
}

// sandboxReady reports PodReadyToStartContainers True as soon as the
// sandbox runs, before any image is pulled (upstream's OnPodSandboxReady:
// only that condition changes).
func (k *Kubelet) sandboxReady(pod *v1.Pod) {
	st, ok := k.status.GetPodStatus(pod.UID)
	if !ok {
		st = *pod.Status.DeepCopy()
	}
	cond := v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue, ObservedGeneration: pod.Generation}
	replaced := false
	for i := range st.Conditions {
		if st.Conditions[i].Type == cond.Type {
			st.Conditions[i] = cond
			replaced = true
		}
	}
	if !replaced {
		st.Conditions = append(st.Conditions, cond)
	}
	k.status.SetPodStatus(pod, st)
}

func (k *Kubelet) createSandbox(ctx context.Context, pod *v1.Pod, rt runtime.Runtime, attempt uint32) (string, error) {
	logDir := k.podLogDir(pod)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", err
	}
	cfg := &runtime.PodSandboxConfig{
		UID:          string(pod.UID),
		Name:         pod.Name,
		Namespace:    pod.Namespace,
		Attempt:      attempt,
		Hostname:     env.Hostname(pod),
		Domain:       k.podDomain(pod),
		LogDirectory: logDir,
		HostNetwork:  pod.Spec.HostNetwork,
		DNS:          k.dnsConfig(pod),
		Labels: map[string]string{
			podstate.LabelPodUID: string(pod.UID), podstate.LabelPodName: pod.Name, podstate.LabelPodNamespace: pod.Namespace,
		},
		Annotations: map[string]string{podstate.AnnotationRuntimeHandler: rt.Name()},
		Resources:   podResources(pod),
	}
	for _, a := range pod.Spec.HostAliases {
		cfg.HostAliases = append(cfg.HostAliases, runtime.HostAlias{IP: a.IP, Hostnames: a.Hostnames})
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				cfg.Ports = append(cfg.Ports, runtime.PortMapping{Protocol: string(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP})
			}
		}
	}
	for k, v := range pod.Labels {
		if _, ok := cfg.Labels[k]; !ok {
			cfg.Labels[k] = v
		}
	}
	id, err := rt.RunPodSandbox(ctx, cfg)
	if err != nil {
		return "", err
	}
	k.pleg.knowSandbox(id, pod.UID)
	return id, nil
}

// podDomain is <subdomain>.<ns>.svc.<cluster domain> for a pod with
// spec.subdomain (upstream's GeneratePodHostNameAndDomain), else "".
func (k *Kubelet) podDomain(pod *v1.Pod) string {
	if pod.Spec.Subdomain == "" || k.deps.ClusterDomain == "" {
		return ""
	}
	return pod.Spec.Subdomain + "." + pod.Namespace + ".svc." + k.deps.ClusterDomain
}

func (k *Kubelet) dnsConfig(pod *v1.Pod) *runtime.DNSConfig {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if policy == v1.DNSClusterFirstWithHostNet || (policy == v1.DNSClusterFirst && !pod.Spec.HostNetwork) {
		if len(k.deps.ClusterDNS) > 0 {
			d := k.deps.ClusterDomain
			cfg := &runtime.DNSConfig{Servers: k.deps.ClusterDNS,
				Searches: omitDuplicates(append([]string{pod.Namespace + ".svc." + d, "svc." + d, d}, hostSearches()...)), Options: []string{"ndots:5"}}
			applyPodDNSConfig(cfg, pod.Spec.DNSConfig)
			return cfg
		}
	}
	if policy == v1.DNSNone {
		cfg := &runtime.DNSConfig{}
		applyPodDNSConfig(cfg, pod.Spec.DNSConfig)
		return cfg
	}
	return nil
}

// applyPodDNSConfig merges spec.dnsConfig into cfg as upstream's
// appendDNSConfig does: nameservers and searches appended without
// duplicates, an option replacing the one of the same name.
func applyPodDNSConfig(cfg *runtime.DNSConfig, d *v1.PodDNSConfig) {
	if d == nil {
		return
	}
	cfg.Servers = omitDuplicates(append(cfg.Servers, d.Nameservers...))
	cfg.Searches = omitDuplicates(append(cfg.Searches, d.Searches...))
	for _, o := range d.Options {
		opt := o.Name
		if o.Value != nil {
			opt += ":" + *o.Value
		}
		replaced := false
		for i, have := range cfg.Options {
			if name, _, _ := strings.Cut(have, ":"); name == o.Name {
				cfg.Options[i], replaced = opt, true
			}
		}
		if !replaced {
			cfg.Options = append(cfg.Options, opt)
		}
	}
}

func omitDuplicates(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// hostSearches are the search domains of the node's resolv.conf, which
// upstream appends to a ClusterFirst pod's cluster searches.
func hostSearches() []string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			out = f[1:] // the last one wins, as in resolv.conf(5)
		}
	}
	return out
}

func podResources(pod *v1.Pod) *runtime.Resources {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	r := &runtime.Resources{CPUMillis: reqs.Cpu().MilliValue(), MemoryRequest: reqs.Memory().Value()}
	cpuDeclared, memDeclared := true, true
	for c := range podutil.ContainerIter(&pod.Spec, podutil.InitContainers|podutil.Containers) {
		cpuDeclared = cpuDeclared && !c.Resources.Limits.Cpu().IsZero()
		memDeclared = memDeclared && !c.Resources.Limits.Memory().IsZero()
	}
	if p := pod.Spec.Resources; p != nil {
		cpuDeclared = cpuDeclared || !p.Limits.Cpu().IsZero()
		memDeclared = memDeclared || !p.Limits.Memory().IsZero()
	}
	if cpuDeclared {
		r.CPULimitMillis = limits.Cpu().MilliValue()
	}
	if memDeclared {
		r.MemoryLimitBytes = limits.Memory().Value()
	}
	return r
}

// containerResources: a CPU request defaults to the limit (as the kubelet
// does for pods the API server did not default), and upstream's QoS OOM
// score adjustment.
func (k *Kubelet) containerResources(pod *v1.Pod, c *v1.Container) *runtime.Resources {
	r := &runtime.Resources{
		CPUMillis:        c.Resources.Requests.Cpu().MilliValue(),
		CPULimitMillis:   c.Resources.Limits.Cpu().MilliValue(),
		MemoryRequest:    c.Resources.Requests.Memory().Value(),
		MemoryLimitBytes: c.Resources.Limits.Memory().Value(),
	}
	if _, ok := c.Resources.Requests[v1.ResourceCPU]; !ok {
		r.CPUMillis = r.CPULimitMillis
	}
	if mem := k.capacity.Memory().Value(); mem > 0 {
		adj := int64(kubeletqos.GetContainerOOMScoreAdjust(pod, c, mem))
		r.OOMScoreAdj = &adj
	}
	return r
}

// startContainer starts one container (upstream's startContainer with the
// crash-loop back-off check in front): image, config, create, start,
// postStart hook, with their events.
func (k *Kubelet) startContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, rt runtime.Runtime, sandboxID string, state *podstate.PodState, podIPs []string) startResult {
	res := startResult{name: c.Name}
	cref := containerRef(pod, c)

	// Back-off: measured from when the latest instance exited.
	for _, cs := range state.ByName(c.Name) {
		if cs.State != runtime.ContainerExited {
			continue
		}
		key := backoff.Key(pod, c)
		d := k.crashBackoff.Check(key, cs.FinishedAt)
		if d.InBackOff {
			// one BackOff event per back-off: not again at the sync that
			// shows CrashLoopBackOff just before the restart
			if prev, seen := k.backoffNoticed.Swap(key, d.Until); !seen || !prev.(time.Time).Equal(d.Until) {
				k.recorder.Eventf(cref, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, podFullName(pod))
			}
			res.reason = status.CrashLoopBackOff
			res.message = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d.Delay, c.Name, podFullName(pod))
			res.backoffUntil = d.Until
			return res
		}
		break
	}

	fail := func(reason, msg string) startResult {
		k.recorder.Eventf(cref, v1.EventTypeWarning, "Failed", "Error: %s", msg)
		res.reason, res.message = reason, msg
		return res
	}

	image, reason, msg := k.ensureImage(ctx, pod, c, rt)
	if reason != "" {
		k.recorder.Eventf(cref, v1.EventTypeWarning, "Failed", "Error: %s", reason)
		res.reason, res.message = reason, msg
		return res
	}

	restartCount := uint32(0)
	if latest := state.Find(c.Name); latest != nil {
		restartCount = uint32(podstate.RestartCount(latest)) + 1
	} else {
		restartCount = k.restartCountFromLogs(pod, c.Name)
	}

	cfg, err := k.containerConfig(ctx, pod, c, restartCount, podIPs)
	if err != nil {
		return fail(status.CreateContainerConfigError, err.Error())
	}
	cfg.Image = image
	id, err := rt.CreateContainer(ctx, sandboxID, cfg)
	if err != nil {
		if errors.Is(err, runtime.ErrInvalidConfig) {
			return fail(status.CreateContainerConfigError, err.Error())
		}
		return fail(status.CreateContainerError, err.Error())
	}
	k.pleg.knowContainer(id, pod.UID)
	k.recorder.Event(cref, v1.EventTypeNormal, "Created", "Container created")
	if err := rt.StartContainer(ctx, id); err != nil {
		return fail(status.RunContainerError, err.Error())
	}
	k.recorder.Event(cref, v1.EventTypeNormal, "Started", "Container started")

	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		cid := status.ContainerID(rt.Name(), id)
		msg, err := k.hooks.Run(ctx, cid, pod, c, c.Lifecycle.PostStart, first(podIPs))
		if err != nil {
			k.recorder.Event(cref, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed")
			k.killContainer(ctx, pod, c, rt, id, "FailedPostStartHook", killFailedPostStartHook, nil)
			res.reason, res.message = status.PostStartHookError, msg
			return res
		}
	}
	res.id = id
	return res
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// restartCountFromLogs continues the attempt numbering of a container whose
// runtime instances are gone (<attempt>.log files remain).
func (k *Kubelet) restartCountFromLogs(pod *v1.Pod, name string) uint32 {
	entries, err := os.ReadDir(filepath.Join(k.podLogDir(pod), name))
	if err != nil {
		return 0
	}
	max := -1
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err == nil && n > max {
			max = n
		}
	}
	return uint32(max + 1)
}

// containerConfig builds the runtime config of one attempt: environment,
// expanded command, mounts (volumes and the termination message file).
func (k *Kubelet) containerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, attempt uint32, podIPs []string) (*runtime.ContainerConfig, error) {
	envs, err := env.Make(ctx, &apiSource{k: k}, env.Input{Pod: pod, Container: c, PodIPs: podIPs, HostIPs: []string{k.hostIP}, NodeAllocatable: k.allocatable})
	if err != nil {
		return nil, err
	}
	paths, err := k.volumes.Setup(ctx, pod, podIPs)
	if err != nil {
		return nil, err
	}
	mounts, err := volume.Mounts(c, paths)
	if err != nil {
		return nil, err
	}
	annotations := map[string]string{
		podstate.AnnotationContainerHash:            podstate.HashContainer(c),
		podstate.AnnotationRestartCount:             strconv.Itoa(int(attempt)),
		podstate.AnnotationTerminationMessagePolicy: string(c.TerminationMessagePolicy),
	}
	if path := c.TerminationMessagePath; path != "" {
		host := filepath.Join(k.volumes.PodDir(pod.UID), "containers", c.Name, randomID())
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(host, nil, 0o666); err != nil {
			return nil, err
		}
		os.Chmod(host, 0o666)
		mounts = append(mounts, runtime.Mount{Name: "termination-log", HostPath: host, ContainerPath: path})
		annotations[podstate.AnnotationTerminationMessageHostPath] = host
	}
	cmd, args := env.ExpandCommandAndArgs(c, envs)
	logPath := filepath.Join(k.podLogDir(pod), c.Name, fmt.Sprintf("%d.log", attempt))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	cfg := &runtime.ContainerConfig{
		Name:       c.Name,
		Attempt:    attempt,
		Image:      c.Image,
		Command:    cmd,
		Args:       args,
		Env:        envs,
		WorkingDir: c.WorkingDir,
		Mounts:     mounts,
		LogPath:    logPath,
		Stdin:      c.Stdin,
		StdinOnce:  c.StdinOnce,
		TTY:        c.TTY,
		Resources:  k.containerResources(pod, c),
		Labels: map[string]string{
			podstate.LabelPodUID: string(pod.UID), podstate.LabelPodName: pod.Name,
			podstate.LabelPodNamespace: pod.Namespace, podstate.LabelContainerName: c.Name,
		},
		Annotations: annotations,
	}
	if err := k.applySecurityContext(cfg, pod, c); err != nil {
		return nil, err
	}
	cfg.PodQOSClass = string(v1qos.GetPodQOS(pod))
	cfg.PodResources = podResources(pod)
	return cfg, nil
}

// applySecurityContext fills cfg's security fields from the container's
// effective security context (upstream's determineEffectiveSecurityContext);
// runAsUser 0 with runAsNonRoot is refused here with upstream's message
// (the image's user is checked by the runtime, which knows it).
func (k *Kubelet) applySecurityContext(cfg *runtime.ContainerConfig, pod *v1.Pod, c *v1.Container) error {
	sc := securitycontext.DetermineEffectiveSecurityContext(pod, c)
	cfg.RunAsNonRoot = sc.RunAsNonRoot != nil && *sc.RunAsNonRoot
	if cfg.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", format.Pod(pod), c.Name)
	}
	cfg.RunAsUser, cfg.RunAsGroup = sc.RunAsUser, sc.RunAsGroup
	cfg.Privileged = sc.Privileged != nil && *sc.Privileged
	cfg.ReadOnlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	cfg.NoNewPrivileges = securitycontext.AddNoNewPrivileges(sc)
	if caps := sc.Capabilities; caps != nil {
		cfg.Capabilities = &runtime.Capabilities{}
		for _, a := range caps.Add {
			cfg.Capabilities.Add = append(cfg.Capabilities.Add, string(a))
		}
		for _, d := range caps.Drop {
			cfg.Capabilities.Drop = append(cfg.Capabilities.Drop, string(d))
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			cfg.SupplementalGroups = append(cfg.SupplementalGroups, *psc.FSGroup)
		}
		cfg.SupplementalGroups = append(cfg.SupplementalGroups, psc.SupplementalGroups...)
	}
	// Container field first, then the pod's; none: Unconfined (upstream
	// without the SeccompDefault option).
	var profile *v1.SeccompProfile
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		profile = c.SecurityContext.SeccompProfile
	} else if psc := pod.Spec.SecurityContext; psc != nil {
		profile = psc.SeccompProfile
	}
	if profile != nil {
		cfg.Seccomp = &runtime.SeccompProfile{Type: string(profile.Type)}
		if profile.Type == v1.SeccompProfileTypeLocalhost && profile.LocalhostProfile != nil && *profile.LocalhostProfile != "" {
			cfg.Seccomp.LocalhostPath = filepath.Join(k.deps.RootDir, "seccomp", *profile.LocalhostProfile)
		}
	}
	return nil
}

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// gracePeriod of a container kill (upstream's setTerminationGracePeriod):
// the deletion's, else the probe's override, else the pod's.
func gracePeriod(pod *v1.Pod, c *v1.Container, reason killReason) int64 {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return *pod.DeletionGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		if c != nil {
			if reason == killStartupProbe && c.StartupProbe != nil && c.StartupProbe.TerminationGracePeriodSeconds != nil {
				return *c.StartupProbe.TerminationGracePeriodSeconds
			}
			if reason == killLivenessProbe && c.LivenessProbe != nil && c.LivenessProbe.TerminationGracePeriodSeconds != nil {
				return *c.LivenessProbe.TerminationGracePeriodSeconds
			}
		}
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return minimumGracePeriod
}

// killContainer runs the preStop hook, then stops the container with the
// rest of its grace period (never less than 2 s), emitting Killing.
func (k *Kubelet) killContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, rt runtime.Runtime, id, message string, reason killReason, override *int64) error {
	if c == nil {
		c = &v1.Container{Name: "unknown"}
	}
	grace := gracePeriod(pod, c, reason)
	if message == "" {
		message = fmt.Sprintf("Stopping container %s", c.Name)
	}
	k.recorder.Event(containerRef(pod, c), v1.EventTypeNormal, "Killing", message)
	if override != nil {
		grace = *override
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		start := k.clock.Now()
		hctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			podIPs := []string{k.hostIP}
			if st, ok := k.status.GetPodStatus(pod.UID); ok && st.PodIP != "" {
				podIPs = []string{st.PodIP}
			}
			if _, err := k.hooks.Run(hctx, status.ContainerID(rt.Name(), id), pod, c, c.Lifecycle.PreStop, first(podIPs)); err != nil {
				k.recorder.Event(containerRef(pod, c), v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed")
			}
		}()
		select {
		case <-done:
		case <-k.clock.After(time.Duration(grace) * time.Second):
		case <-ctx.Done():
		}
		cancel()
		grace -= int64(k.clock.Since(start).Seconds())
	}
	if grace < minimumGracePeriod {
		grace = minimumGracePeriod
	}
	if err := rt.StopContainer(ctx, id, time.Duration(grace)*time.Second); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return ctx.Err()
}

// killPod stops every running container of the pod, regular ones first (in
// parallel), sidecars after them in reverse order, then its sandboxes.
func (k *Kubelet) killPod(ctx context.Context, pod *v1.Pod, state *podstate.PodState, rt runtime.Runtime, override *int64) error {
	var regular, sidecars []*runtime.ContainerStatus
	for _, c := range state.Running() {
		spec := containerSpec(pod, podstate.ContainerName(c))
		if spec != nil && podutil.IsRestartableInitContainer(spec) {
			sidecars = append(sidecars, c)
		} else {
			regular = append(regular, c)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(regular)+len(sidecars))
	for _, c := range regular {
		wg.Add(1)
		go func(c *runtime.ContainerStatus) {
			defer wg.Done()
			if err := k.killContainer(ctx, pod, containerSpec(pod, podstate.ContainerName(c)), rt, c.ID, "", killUnknown, override); err != nil {
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	order := map[string]int{}
	for i, c := range pod.Spec.InitContainers {
		order[c.Name] = i
	}
	sort.Slice(sidecars, func(i, j int) bool {
		return order[podstate.ContainerName(sidecars[i])] > order[podstate.ContainerName(sidecars[j])]
	})
	for _, c := range sidecars {
		if err := k.killContainer(ctx, pod, containerSpec(pod, podstate.ContainerName(c)), rt, c.ID, "", killUnknown, override); err != nil {
			errs <- err
		}
	}
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	for _, sb := range state.Sandboxes {
		if sb.State == runtime.SandboxReady {
			if err := rt.StopPodSandbox(ctx, sb.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// purgeInitContainers removes every init container before a new sandbox
// runs them again.
func (k *Kubelet) purgeInitContainers(ctx context.Context, pod *v1.Pod, state *podstate.PodState, rt runtime.Runtime) {
	for _, c := range pod.Spec.InitContainers {
		for _, cs := range state.ByName(c.Name) {
			k.removeContainer(ctx, rt, cs)
		}
	}
}

// pruneContainers removes exited instances nobody will ask for: each
// container keeps its latest two (the current and previous attempts, for
// lastState and logs --previous).
func (k *Kubelet) pruneContainers(ctx context.Context, pod *v1.Pod, state *podstate.PodState, rt runtime.Runtime) {
	seen := map[string]int{}
	for _, cs := range state.Containers {
		if cs.State != runtime.ContainerExited {
			continue
		}
		name := podstate.ContainerName(cs)
		seen[name]++
		if seen[name] > 2 {
			k.removeContainer(ctx, rt, cs)
		}
	}
}

func (k *Kubelet) removeContainer(ctx context.Context, rt runtime.Runtime, cs *runtime.ContainerStatus) {
	if err := rt.RemoveContainer(ctx, cs.ID); err == nil {
		k.pleg.forgetContainer(cs.ID)
		if cs.LogPath != "" {
			os.Remove(cs.LogPath)
		}
		if p := cs.Annotations[podstate.AnnotationTerminationMessageHostPath]; p != "" {
			os.Remove(p)
		}
		k.termMsgs.Delete(cs.ID)
	}
}
