// Package kubelet is k1s's node agent: it registers its Node, renews its
// Lease, watches the pods bound to it and runs them on a runtime.Runtime
// with upstream kubelet 1.37's lifecycle (pod workers, init containers,
// sidecars, restart back-off, probes, hooks, graceful termination), reports
// their status, and serves logs, exec, attach and port-forward.
//
// Wiring (cmd/k1s):
//
//	rt, _ := process.New(process.Options{RootDir: dataDir + "/agent/runtime", HostIP: nodeIP})
//	ready := make(chan struct{})
//	k, err := kubelet.New(kubelet.Dependencies{
//		KubeClient: client, NodeName: nodeName, NodeIP: nodeIP,
//		Runtimes: map[string]runtime.Runtime{process.Name: rt}, DefaultRuntime: process.Name,
//		RootDir: dataDir + "/agent", ServerAddress: "0.0.0.0", ServerPort: 10250,
//		ServerTLS: servingTLS, // with ClientCAs: the API server's client cert is required
//		ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local",
//		Ready: ready, Version: version.K1s,
//	})
//	go k.Run(ctx) // returns after ctx is cancelled; containers keep running
//	<-ready       // the Node is registered; k.ServerPort() is the kubelet API port
package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k1s.dev/k1s/pkg/cachetrim"
	"k1s.dev/k1s/pkg/kubelet/backoff"
	"k1s.dev/k1s/pkg/kubelet/lifecycle"
	"k1s.dev/k1s/pkg/kubelet/prober"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/status"
	"k1s.dev/k1s/pkg/kubelet/volume"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// KubeletVersion is what the node reports (the Kubernetes version k1s
// follows).
const KubeletVersion = "v1.37.2"

// Dependencies are everything the kubelet needs; nothing is global.
type Dependencies struct {
	KubeClient kubernetes.Interface
	NodeName   string
	// NodeIP is the node's InternalIP and every pod's hostIP (and podIP on
	// runtimes without pod networking). Empty: the first non-loopback IPv4.
	NodeIP string
	// Runtimes by RuntimeClass handler name; DefaultRuntime runs pods
	// without runtimeClassName.
	Runtimes       map[string]runtime.Runtime
	DefaultRuntime string
	// RootDir holds pods' directories (<RootDir>/pods/<uid>/...) and logs
	// (<RootDir>/logs/<ns>_<name>_<uid>/<container>/<attempt>.log).
	RootDir string
	Clock   clock.WithTicker
	// ServerAddress/ServerPort: the kubelet API (0: pick a free port).
	ServerAddress string
	ServerPort    int
	// ServerTLS: serving certificate and ClientCAs; nil serves plain HTTP.
	ServerTLS     *tls.Config
	ClusterDNS    []string
	ClusterDomain string
	// Ready is closed once the Node is registered.
	Ready chan<- struct{}
	// StopPodsOnExit stops every container when Run returns; by default
	// they keep running and a restarted agent adopts them.
	StopPodsOnExit bool
	// AuthorizeClient, when set, decides which verified client
	// certificates may use the kubelet API (nil: any the CA signed).
	AuthorizeClient func(cert *x509.Certificate) bool
	// Version is k1s's version (containerRuntimeVersion "host://<Version>").
	Version string
	// Probes overrides the probe manager (tests); nil: prober.NewManager.
	Probes ProbeManager
	// NodeLabels are added to the Node's labels.
	NodeLabels map[string]string
	// Capacity overrides the machine's (tests).
	Capacity v1.ResourceList
}

// ProbeManager is what the kubelet needs of pkg/kubelet/prober.Manager.
type ProbeManager interface {
	AddPod(pod *v1.Pod)
	RemovePod(pod *v1.Pod)
	StopLivenessAndStartup(pod *v1.Pod)
	CleanupPods(desired map[types.UID]struct{})
	UpdatePodStatus(pod *v1.Pod, status *v1.PodStatus)
	LivenessUpdates() <-chan prober.Update
	ReadinessUpdates() <-chan prober.Update
	StartupUpdates() <-chan prober.Update
	Result(containerID string, t prober.ProbeType) (prober.Result, bool)
}

var _ ProbeManager = (*prober.Manager)(nil)

// Kubelet is the node agent.
type Kubelet struct {
	deps     Dependencies
	client   kubernetes.Interface
	clock    clock.WithTicker
	nodeName string
	hostIP   string

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	status       *status.Manager
	probes       ProbeManager
	crashBackoff *backoff.Tracker
	imageBackoff *backoff.Tracker
	reasons      *reasonCache
	volumes      *volume.Manager
	hooks        *lifecycle.Runner
	workers      *podWorkers
	pleg         *pleg
	runtimes     *runtimeSet

	informers     informers.SharedInformerFactory
	podInformers  informers.SharedInformerFactory
	podLister     corelisters.PodLister
	serviceLister corelisters.ServiceLister

	nodeMu       sync.Mutex
	allocatable  v1.ResourceList
	capacity     v1.ResourceList
	serverPort   int
	listener     net.Listener
	registered   bool
	readyOnce    sync.Once
	lastReported time.Time
	lastNode     *v1.Node
	podCIDR      string // last Node.spec.podCIDR handed to the runtimes
	podStarts    podStartTracker
	imageGC      imageGC
	// evictions: pod uid → the message of its eviction by the kubelet.
	evictions sync.Map
	// backoffNoticed: back-off key → the end of the back-off a BackOff
	// event was recorded for.
	backoffNoticed sync.Map
	started        time.Time // when Run began

	termMsgs sync.Map // runtime container id -> termination message
	pullErrs pullErrors
	rates    rateCache // CPU usage rates for /stats/summary
	// deadlineEvents: pods whose DeadlineExceeded event was emitted.
	deadlineEvents sync.Map
	// mountRefused: when each pod's volumes were first refused (uid ->
	// time.Time), until they mount.
	mountRefused sync.Map
}

// New checks the dependencies and builds the kubelet; nothing runs before Run.
func New(deps Dependencies) (*Kubelet, error) {
	registerMetrics()
	if deps.KubeClient == nil {
		return nil, errors.New("kubelet: KubeClient is required")
	}
	if deps.NodeName == "" {
		return nil, errors.New("kubelet: NodeName is required")
	}
	if len(deps.Runtimes) == 0 {
		return nil, errors.New("kubelet: at least one runtime is required")
	}
	if deps.DefaultRuntime == "" {
		if len(deps.Runtimes) != 1 {
			return nil, errors.New("kubelet: DefaultRuntime is required with several runtimes")
		}
		for name := range deps.Runtimes {
			deps.DefaultRuntime = name
		}
	}
	if _, ok := deps.Runtimes[deps.DefaultRuntime]; !ok {
		return nil, fmt.Errorf("kubelet: default runtime %q is not among the runtimes", deps.DefaultRuntime)
	}
	if deps.RootDir == "" {
		return nil, errors.New("kubelet: RootDir is required")
	}
	root, err := filepath.Abs(deps.RootDir)
	if err != nil {
		return nil, fmt.Errorf("kubelet: %w", err)
	}
	deps.RootDir = root
	if deps.Clock == nil {
		deps.Clock = clock.RealClock{}
	}
	if deps.ClusterDomain == "" {
		deps.ClusterDomain = "cluster.local"
	}
	if deps.Version == "" {
		deps.Version = "v0.0.0"
	}
	for _, d := range []string{"pods", "logs"} {
		if err := os.MkdirAll(filepath.Join(deps.RootDir, d), 0o750); err != nil {
			return nil, fmt.Errorf("kubelet: %w", err)
		}
	}
	hostIP := deps.NodeIP
	if hostIP == "" {
		hostIP = detectNodeIP()
	}

	k := &Kubelet{
		deps:         deps,
		client:       deps.KubeClient,
		clock:        deps.Clock,
		nodeName:     deps.NodeName,
		hostIP:       hostIP,
		crashBackoff: backoff.NewCrashLoop(deps.Clock),
		imageBackoff: backoff.NewImagePull(deps.Clock),
		reasons:      newReasonCache(),
		runtimes:     newRuntimeSet(deps.Runtimes, deps.DefaultRuntime),
	}
	k.broadcaster = record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{Clock: deps.Clock}))
	k.recorder = k.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: deps.NodeName})
	k.workers = newPodWorkers(k)
	k.status = status.NewManager(deps.KubeClient, deps.Clock, k.workers.couldHaveRunningContainers)
	k.volumes = volume.NewManager(filepath.Join(deps.RootDir, "pods"), &apiSource{k: k}, deps.Clock)
	k.hooks = lifecycle.NewRunner(k.runtimes.execSync, deps.Clock)
	k.pleg = newPLEG(k)
	if deps.Probes != nil {
		k.probes = deps.Probes
	} else {
		k.probes = prober.NewManager(prober.Options{
			Status:             k.status,
			Exec:               execerFunc(k.runtimes.execSync),
			Recorder:           k.recorder,
			Clock:              deps.Clock,
			RuntimeContainerID: func(id string) string { return id },
		})
	}
	k.capacity, k.allocatable = machineResources(deps.RootDir, deps.Capacity)
	k.volumes.NodeAllocatable = k.allocatable

	// The kubelet never reads managedFields and only patches what it
	// changes: its caches leave them out (a pod's are a few kB).
	k.informers = informers.NewSharedInformerFactoryWithOptions(deps.KubeClient, 0,
		informers.WithTransform(cachetrim.StripManagedFields))
	k.podInformers = informers.NewSharedInformerFactoryWithOptions(deps.KubeClient, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + deps.NodeName
		}),
		informers.WithTransform(cachetrim.StripManagedFields))
	k.podLister = k.podInformers.Core().V1().Pods().Lister()
	k.serviceLister = k.informers.Core().V1().Services().Lister()
	return k, nil
}

// execerFunc adapts a function to prober.Execer.
type execerFunc func(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error)

func (f execerFunc) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	return f(ctx, id, cmd, timeout)
}

// ServerPort is the kubelet API's port once Run has started listening.
func (k *Kubelet) ServerPort() int {
	k.nodeMu.Lock()
	defer k.nodeMu.Unlock()
	return k.serverPort
}

// StatusManager exposes the pod status cache (the prober's status provider).
func (k *Kubelet) StatusManager() *status.Manager { return k.status }

// Run starts the agent and blocks until ctx is cancelled; it then stops its
// workers (leaving containers running unless StopPodsOnExit).
func (k *Kubelet) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k.nodeMu.Lock()
	k.started = k.clock.Now()
	k.nodeMu.Unlock()

	k.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	defer k.broadcaster.Shutdown()

	if err := k.listen(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	goRun := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	goRun(k.serve)

	k.recorder.Eventf(k.nodeRef(), v1.EventTypeNormal, "Starting", "Starting kubelet.")
	goRun(k.registerRuntimeClasses)
	goRun(k.nodeLoop)
	goRun(k.leaseLoop)
	goRun(k.imageGCLoop)
	goRun(k.status.Run)

	k.setupPodSource()
	k.informers.Start(ctx.Done())
	k.podInformers.Start(ctx.Done())
	k.informers.WaitForCacheSync(ctx.Done())
	k.podInformers.WaitForCacheSync(ctx.Done())
	if ctx.Err() != nil {
		wg.Wait()
		return nil
	}

	// Adopt what the runtimes run for pods still bound here, remove the rest.
	k.housekeeping(ctx)
	k.workers.start(ctx)
	for _, p := range k.podsFromLister() {
		k.workers.update(p)
	}
	goRun(k.pleg.run)
	goRun(k.probeLoop)
	goRun(k.housekeepingLoop)

	<-ctx.Done()
	k.workers.wait()
	k.probes.CleanupPods(map[types.UID]struct{}{}) // stop every probe worker
	wg.Wait()
	if k.deps.StopPodsOnExit {
		k.stopAllPods()
	}
	return nil
}

func (k *Kubelet) podsFromLister() []*v1.Pod {
	pods, err := k.podLister.List(labels.Everything())
	if err != nil {
		log.Printf("kubelet: list pods: %v", err)
	}
	return pods
}

// probeLoop turns probe results into pod syncs: a liveness or startup
// failure restarts the container, a readiness or startup change updates the
// pod's status.
func (k *Kubelet) probeLoop(ctx context.Context) {
	for {
		var u prober.Update
		select {
		case <-ctx.Done():
			return
		case u = <-k.probes.LivenessUpdates():
		case u = <-k.probes.ReadinessUpdates():
		case u = <-k.probes.StartupUpdates():
		}
		k.workers.wake(u.PodUID)
	}
}

// stopAllPods stops and removes every pod sandbox of every runtime
// (StopPodsOnExit).
func (k *Kubelet) stopAllPods() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, rt := range k.runtimes.all() {
		sbs, _ := rt.ListPodSandboxes(ctx)
		var wg sync.WaitGroup
		for _, sb := range sbs {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				cs, _ := rt.ListContainers(ctx, runtime.ContainerFilter{SandboxID: id})
				var cw sync.WaitGroup
				for _, c := range cs {
					if c.State == runtime.ContainerRunning {
						cw.Add(1)
						go func(cid string) {
							defer cw.Done()
							rt.StopContainer(ctx, cid, 2*time.Second)
						}(c.ID)
					}
				}
				cw.Wait()
				rt.StopPodSandbox(ctx, id)
				// nothing stays behind: rootfs mounts, pod networks, logs
				// of the runtime (the API keeps the pods; the next start
				// runs them anew)
				rt.RemovePodSandbox(ctx, id)
			}(sb.ID)
		}
		wg.Wait()
	}
	k.volumes.UnmountAll()
}

func detectNodeIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
