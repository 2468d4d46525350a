package kubelet

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/server"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crilogs "k8s.io/cri-client/pkg/logs"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

var _ server.Host = (*Kubelet)(nil)

// listen opens the kubelet API's port (0 picks a free one).
func (k *Kubelet) listen() error {
	addr := net.JoinHostPort(k.deps.ServerAddress, strconv.Itoa(k.deps.ServerPort))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kubelet: listen on %s: %w", addr, err)
	}
	k.nodeMu.Lock()
	k.serverPort = l.Addr().(*net.TCPAddr).Port
	k.nodeMu.Unlock()
	if cfg := k.deps.ServerTLS; cfg != nil {
		cfg = cfg.Clone()
		if cfg.ClientCAs != nil && cfg.ClientAuth == tls.NoClientCert {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		l = tls.NewListener(l, cfg)
	}
	k.listener = l
	return nil
}

func (k *Kubelet) serve(ctx context.Context) {
	opts := server.Options{RequireClientCert: k.deps.ServerTLS != nil && k.deps.ServerTLS.ClientCAs != nil,
		Authorize: k.deps.AuthorizeClient}
	srv := &http.Server{Handler: server.New(k, opts), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(k.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("kubelet: API server: %v", err)
		}
	}()
	<-ctx.Done()
	srv.Close()
	<-done
}

// GetPod finds a pod bound to this node.
func (k *Kubelet) GetPod(namespace, name string) (*v1.Pod, bool) {
	p, err := k.podLister.Pods(namespace).Get(name)
	if err != nil {
		return nil, false
	}
	return p, true
}

// ListPods lists the pods bound to this node.
func (k *Kubelet) ListPods() []*v1.Pod {
	pods, _ := k.podLister.List(labels.Everything())
	return pods
}

func (k *Kubelet) podStatus(pod *v1.Pod) v1.PodStatus {
	if st, ok := k.status.GetPodStatus(pod.UID); ok {
		return st
	}
	return pod.Status
}

// logContainerID picks the container whose logs are asked for (upstream's
// validateContainerLogStatus, with its error texts).
func logContainerID(pod *v1.Pod, st *v1.PodStatus, name string, previous bool) (string, error) {
	cs, ok := podutil.GetContainerStatus(st.ContainerStatuses, name)
	if !ok {
		cs, ok = podutil.GetContainerStatus(st.InitContainerStatuses, name)
	}
	if !ok {
		cs, ok = podutil.GetContainerStatus(st.EphemeralContainerStatuses, name)
	}
	if !ok {
		return "", fmt.Errorf("container %q in pod %q is not available", name, pod.Name)
	}
	last := cs.LastTerminationState
	switch {
	case previous:
		if last.Terminated == nil || last.Terminated.ContainerID == "" {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found", name, pod.Name)
		}
		return last.Terminated.ContainerID, nil
	case cs.State.Running != nil:
		return cs.ContainerID, nil
	case cs.State.Terminated != nil:
		if cs.State.Terminated.ContainerID == "" {
			if last.Terminated != nil && last.Terminated.ContainerID != "" {
				return last.Terminated.ContainerID, nil
			}
			return "", fmt.Errorf("container %q in pod %q is terminated", name, pod.Name)
		}
		return cs.State.Terminated.ContainerID, nil
	case last.Terminated != nil:
		if last.Terminated.ContainerID == "" {
			return "", fmt.Errorf("container %q in pod %q is terminated", name, pod.Name)
		}
		return last.Terminated.ContainerID, nil
	case cs.State.Waiting != nil:
		switch cs.State.Waiting.Reason {
		case "ErrImagePull":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: image can't be pulled", name, pod.Name)
		case "ImagePullBackOff":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: trying and failing to pull image", name, pod.Name)
		}
		return "", fmt.Errorf("container %q in pod %q is waiting to start: %v", name, pod.Name, cs.State.Waiting.Reason)
	}
	return "", fmt.Errorf("container %q in pod %q is waiting to start - no logs yet", name, pod.Name)
}

// ContainerLogs writes a container's logs from its CRI log file.
func (k *Kubelet) ContainerLogs(ctx context.Context, pod *v1.Pod, name string, opts *v1.PodLogOptions, stdout, stderr io.Writer) error {
	st := k.podStatus(pod)
	id, err := logContainerID(pod, &st, name, opts.Previous)
	if err != nil {
		return err
	}
	rt, rid, err := k.runtimes.byContainerID(id)
	if err != nil {
		return err
	}
	c, err := rt.ContainerStatus(ctx, rid)
	if err != nil {
		return fmt.Errorf("failed to get container status %q: %v", id, err)
	}
	lo := &crilogs.LogOptions{TailLines: opts.TailLines, LimitBytes: opts.LimitBytes, Follow: opts.Follow, Timestamp: opts.Timestamps}
	if opts.SinceSeconds != nil {
		lo.Since = k.clock.Now().Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	if opts.SinceTime != nil {
		lo.Since = opts.SinceTime.Time
	}
	if stdout != nil {
		stdout.Write(nil) // headers go out before a follow blocks
	}
	if _, err := os.Stat(c.LogPath); os.IsNotExist(err) {
		return nil
	}
	return crilogs.ReadLogs(ctx, c.LogPath, rid, lo, &statusShim{rt: rt}, stdout, stderr)
}

// statusShim gives the CRI log reader the one runtime call it makes (is the
// container still running, to stop following).
type statusShim struct {
	internalapi.RuntimeService
	rt runtime.Runtime
}

func (s *statusShim) ContainerStatus(ctx context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.rt.ContainerStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	state := runtimeapi.ContainerState_CONTAINER_EXITED
	switch c.State {
	case runtime.ContainerRunning:
		state = runtimeapi.ContainerState_CONTAINER_RUNNING
	case runtime.ContainerCreated:
		state = runtimeapi.ContainerState_CONTAINER_CREATED
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: c.ID, State: state, LogPath: c.LogPath}}, nil
}

// runningContainer finds the running instance of a container.
func (k *Kubelet) runningContainer(ctx context.Context, pod *v1.Pod, name string) (runtime.Runtime, string, error) {
	st, rt, err := k.podStateAnywhere(ctx, pod, false)
	if err != nil {
		return nil, "", err
	}
	for _, c := range st.ByName(name) {
		if c.State == runtime.ContainerRunning {
			return rt, c.ID, nil
		}
	}
	return nil, "", fmt.Errorf("container not found (%q)", name)
}

func (k *Kubelet) CheckRunning(ctx context.Context, pod *v1.Pod, name string) error {
	_, _, err := k.runningContainer(ctx, pod, name)
	return err
}

func (k *Kubelet) Exec(ctx context.Context, pod *v1.Pod, name string, cmd []string, s runtime.Streams) error {
	rt, id, err := k.runningContainer(ctx, pod, name)
	if err != nil {
		return err
	}
	return rt.Exec(ctx, id, cmd, s)
}

func (k *Kubelet) Attach(ctx context.Context, pod *v1.Pod, name string, s runtime.Streams) error {
	rt, id, err := k.runningContainer(ctx, pod, name)
	if err != nil {
		return err
	}
	return rt.Attach(ctx, id, s)
}

func (k *Kubelet) PortForward(ctx context.Context, pod *v1.Pod, port int32, stream io.ReadWriteCloser) error {
	st, rt, err := k.podStateAnywhere(ctx, pod, false)
	if err != nil {
		return err
	}
	sb := st.ActiveSandbox()
	if sb == nil || sb.State != runtime.SandboxReady {
		return fmt.Errorf("pod %s has no running sandbox", pod.Name)
	}
	return rt.PortForward(ctx, sb.ID, port, stream)
}

// rateCache turns cumulative CPU usage into nano-cores.
type rateCache struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

type cpuSample struct {
	t     time.Time
	usage uint64
}

func (r *rateCache) rate(key string, t time.Time, usage uint64) *uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]cpuSample{}
	}
	prev, ok := r.last[key]
	r.last[key] = cpuSample{t, usage}
	if !ok || !t.After(prev.t) || usage < prev.usage {
		return nil
	}
	v := uint64(float64(usage-prev.usage) / t.Sub(prev.t).Seconds())
	return &v
}

// Summary is the stats summary of the node and its running pods. Each
// runtime is listed once and asked for the stats of all its running
// containers at once when it can (ContainerStatsLister); nothing here
// counts as a sync (no PLEG bookkeeping).
func (k *Kubelet) Summary(ctx context.Context) (*statsapi.Summary, error) {
	now := metav1.NewTime(k.clock.Now())
	sum := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: k.nodeName, StartTime: metav1.NewTime(bootTime())}}
	if cpu, ok := nodeCPU(); ok {
		sum.Node.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &cpu, UsageNanoCores: k.rates.rate("node", now.Time, cpu)}
	}
	if total, avail, ok := nodeMemory(); ok {
		ws := total - avail
		sum.Node.Memory = &statsapi.MemoryStats{Time: now, WorkingSetBytes: &ws, AvailableBytes: &avail, UsageBytes: &ws}
	}
	running := map[types.UID][]*runtime.ContainerStatus{}
	stats := map[string]*runtime.ContainerStats{}
	for _, rt := range k.runtimes.all() {
		state := runtime.ContainerRunning
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{State: &state})
		if err != nil {
			continue
		}
		var ids []string
		for _, c := range cs {
			if c.State != runtime.ContainerRunning {
				continue
			}
			if uid := types.UID(c.Labels[podstate.LabelPodUID]); uid != "" {
				running[uid] = append(running[uid], c)
				ids = append(ids, c.ID)
			}
		}
		for id, s := range containerStats(ctx, rt, ids) {
			stats[id] = s
		}
	}
	for _, pod := range k.ListPods() {
		ps := statsapi.PodStats{PodRef: statsapi.PodReference{Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID)}}
		if pod.Status.StartTime != nil {
			ps.StartTime = *pod.Status.StartTime
		}
		var cpuSum, memSum uint64
		any := false
		for _, c := range running[pod.UID] {
			s, ok := stats[c.ID]
			if !ok {
				continue
			}
			t := metav1.NewTime(s.Timestamp)
			cpu, mem, rss := s.CPUUsageNanoSeconds, s.MemoryWorkingSetBytes, s.MemoryRSSBytes
			ps.Containers = append(ps.Containers, statsapi.ContainerStats{
				Name: podstate.ContainerName(c), StartTime: metav1.NewTime(c.StartedAt),
				CPU:    &statsapi.CPUStats{Time: t, UsageCoreNanoSeconds: &cpu, UsageNanoCores: k.rates.rate(c.ID, s.Timestamp, cpu)},
				Memory: &statsapi.MemoryStats{Time: t, WorkingSetBytes: &mem, RSSBytes: &rss, UsageBytes: &mem},
			})
			cpuSum += cpu
			memSum += mem
			any = true
		}
		if !any {
			continue
		}
		ps.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &cpuSum, UsageNanoCores: k.rates.rate(string(pod.UID), now.Time, cpuSum)}
		ps.Memory = &statsapi.MemoryStats{Time: now, WorkingSetBytes: &memSum, UsageBytes: &memSum}
		sum.Pods = append(sum.Pods, ps)
	}
	return sum, nil
}

// containerStats reads the stats of the containers ids of rt, all at once
// when rt can.
func containerStats(ctx context.Context, rt runtime.Runtime, ids []string) map[string]*runtime.ContainerStats {
	if len(ids) == 0 {
		return nil
	}
	if l, ok := rt.(runtime.ContainerStatsLister); ok {
		if out, err := l.ListContainerStats(ctx, ids); err == nil {
			return out
		}
	}
	out := make(map[string]*runtime.ContainerStats, len(ids))
	for _, id := range ids {
		if s, err := rt.ContainerStats(ctx, id); err == nil {
			out[id] = s
		}
	}
	return out
}

// nodeCPU is the node's cumulative busy CPU time in nanoseconds (/proc/stat).
func nodeCPU() (uint64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += v
	}
	return busy * uint64(time.Second/100), true // USER_HZ is 100
}

func nodeMemory() (total, avail uint64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			total = v * 1024
		case "MemAvailable:":
			avail = v * 1024
		}
	}
	return total, avail, total > 0
}

func bootTime() time.Time {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return time.Time{}
	}
	up, _ := strconv.ParseFloat(f[0], 64)
	return time.Now().Add(-time.Duration(up * float64(time.Second))).Truncate(time.Second)
}
