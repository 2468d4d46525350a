package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"reflect"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubeletmetrics "k8s.io/kubernetes/pkg/kubelet/metrics"
)

const (
	// nodeStatusUpdateFrequency: how often the node status is computed.
	nodeStatusUpdateFrequency = 10 * time.Second
	// nodeStatusReportFrequency: an unchanged status is still written this
	// often (the heartbeat); the Lease is the liveness signal.
	nodeStatusReportFrequency = 5 * time.Minute
	leaseRenewInterval        = 10 * time.Second
	leaseDurationSeconds      = 40
	maxPods                   = 110
)

func (k *Kubelet) nodeRef() *v1.ObjectReference {
	return &v1.ObjectReference{Kind: "Node", Name: k.nodeName, UID: types.UID(k.nodeName)}
}

// registerRuntimeClasses creates a RuntimeClass per runtime handler, if absent.
func (k *Kubelet) registerRuntimeClasses(ctx context.Context) {
	for _, name := range k.runtimes.names() {
		for ctx.Err() == nil {
			_, err := k.client.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: name}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				break
			}
			log.Printf("kubelet: register RuntimeClass %q: %v", name, err)
			select {
			case <-ctx.Done():
			case <-k.clock.After(5 * time.Second):
			}
		}
	}
}

// nodeLoop registers the Node (again if it is deleted) and keeps its status.
func (k *Kubelet) nodeLoop(ctx context.Context) {
	for {
		wait := nodeStatusUpdateFrequency
		if k.awaitingPodCIDR() {
			// the node IPAM controller assigns it right after registration;
			// pods on the pod network wait for it (upstream: the runtime's
			// NetworkReady), so look again soon.
			wait = podCIDRPollInterval
		}
		if err := k.syncNode(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Printf("kubelet: node status: %v", err)
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(wait):
		}
	}
}

func (k *Kubelet) syncNode(ctx context.Context) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = k.initialNode()
		k.setNodeStatus(node)
		created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("register node %s: %w", k.nodeName, err)
		}
		if err == nil {
			log.Printf("kubelet: registered node %s", k.nodeName)
			kubeletmetrics.SetNodeName(types.NodeName(k.nodeName))
			// some API servers drop status on create: write it
			if len(created.Status.Conditions) == 0 {
				created.Status = node.Status
				if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
					return err
				}
			}
			k.recordNodeEvents(nil, node)
			k.nodeMu.Lock()
			k.lastReported = k.clock.Now()
			k.lastNode = node
			k.nodeMu.Unlock()
		}
		k.signalReady()
		return nil
	}
	if err != nil {
		return err
	}
	k.updatePodCIDR(node.Spec.PodCIDR)
	// keep our labels
	if missing := k.missingLabels(node); len(missing) > 0 {
		n := node.DeepCopy()
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		for key, v := range missing {
			n.Labels[key] = v
		}
		if node, err = k.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	desired := node.DeepCopy()
	k.setNodeStatus(desired)
	k.nodeMu.Lock()
	due := k.clock.Since(k.lastReported) >= nodeStatusReportFrequency
	k.nodeMu.Unlock()
	if !due && nodeStatusEqual(&node.Status, &desired.Status) {
		k.signalReady()
		return nil
	}
	now := metav1.NewTime(k.clock.Now())
	for i := range desired.Status.Conditions {
		desired.Status.Conditions[i].LastHeartbeatTime = now
	}
	if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, desired, metav1.UpdateOptions{}); err != nil {
		return err
	}
	k.recordNodeEvents(node, desired)
	k.nodeMu.Lock()
	k.lastReported = k.clock.Now()
	k.lastNode = desired
	k.nodeMu.Unlock()
	k.signalReady()
	return nil
}

// podCIDRPollInterval is how often the node is read while it has no
// spec.podCIDR yet and a runtime needs one.
const podCIDRPollInterval = 100 * time.Millisecond

// podCIDRSetter is a runtime with pod networking (CRI's
// UpdateRuntimeConfig): it learns the node's pod CIDR from the kubelet.
type podCIDRSetter interface {
	SetPodCIDR(cidr string) error
}

// podCIDRFastPoll bounds the fast polling: a cluster without node IPAM
// (no --cluster-cidr, or no controllers) never assigns one.
const podCIDRFastPoll = time.Minute

// networkReadier is a runtime whose pod network may not be ready yet
// (CRI's NetworkReady condition).
type networkReadier interface {
	NetworkReady() error
}

// networkNotReady is the default runtime's network error while the node
// waits for its pod CIDR (bounded by podCIDRFastPoll, as the wait).
func (k *Kubelet) networkNotReady() error {
	nr, ok := k.runtimes.byName[k.runtimes.def].(networkReadier)
	if !ok || !k.awaitingPodCIDR() {
		return nil
	}
	return nr.NetworkReady()
}

func (k *Kubelet) awaitingPodCIDR() bool {
	k.nodeMu.Lock()
	done := k.podCIDR != "" || k.clock.Since(k.started) > podCIDRFastPoll
	k.nodeMu.Unlock()
	if done {
		return false
	}
	for _, rt := range k.runtimes.all() {
		if _, ok := rt.(podCIDRSetter); ok {
			return true
		}
	}
	return false
}

// updatePodCIDR hands a new Node.spec.podCIDR to the runtimes, as the
// kubelet's updatePodCIDR does.
func (k *Kubelet) updatePodCIDR(cidr string) {
	k.nodeMu.Lock()
	same := cidr == k.podCIDR
	k.nodeMu.Unlock()
	if cidr == "" || same {
		return
	}
	for _, rt := range k.runtimes.all() {
		if s, ok := rt.(podCIDRSetter); ok {
			if err := s.SetPodCIDR(cidr); err != nil {
				log.Printf("kubelet: pod CIDR %s: %v", cidr, err)
				return
			}
		}
	}
	log.Printf("kubelet: pod CIDR %s", cidr)
	k.nodeMu.Lock()
	k.podCIDR = cidr
	k.nodeMu.Unlock()
}

func (k *Kubelet) signalReady() {
	k.readyOnce.Do(func() {
		if k.deps.Ready != nil {
			close(k.deps.Ready)
		}
	})
}

func (k *Kubelet) nodeLabels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname":  k.nodeName,
		"kubernetes.io/os":        goruntime.GOOS,
		"kubernetes.io/arch":      goruntime.GOARCH,
		"beta.kubernetes.io/os":   goruntime.GOOS,
		"beta.kubernetes.io/arch": goruntime.GOARCH,
	}
	for key, v := range k.deps.NodeLabels {
		l[key] = v
	}
	return l
}

func (k *Kubelet) missingLabels(node *v1.Node) map[string]string {
	out := map[string]string{}
	for key, v := range k.nodeLabels() {
		if _, ok := node.Labels[key]; !ok {
			out[key] = v
		}
	}
	return out
}

func (k *Kubelet) initialNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   k.nodeName,
			Labels: k.nodeLabels(),
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":                           "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			},
		},
	}
}

// setNodeStatus fills the node's status as upstream's setters do; condition
// transition and heartbeat times are kept while unchanged.
func (k *Kubelet) setNodeStatus(node *v1.Node) {
	s := &node.Status
	s.Capacity = k.capacity.DeepCopy()
	s.Allocatable = k.allocatable.DeepCopy()
	s.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: k.hostIP}, {Type: v1.NodeHostName, Address: k.nodeName}}
	s.DaemonEndpoints.KubeletEndpoint.Port = int32(k.ServerPort())
	s.NodeInfo = k.nodeInfo()
	s.Phase = ""
	now := metav1.NewTime(k.clock.Now())
	want := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	if err := k.networkNotReady(); err != nil {
		// upstream's text when the runtime's network is not ready
		want[3] = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady",
			Message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: " + err.Error()}
	}
	var conds []v1.NodeCondition
	for _, w := range want {
		w.LastHeartbeatTime, w.LastTransitionTime = now, now
		for _, old := range s.Conditions {
			if old.Type == w.Type {
				w.LastHeartbeatTime = old.LastHeartbeatTime
				if old.Status == w.Status {
					w.LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		conds = append(conds, w)
	}
	// keep conditions others own
	for _, old := range s.Conditions {
		switch old.Type {
		case v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure, v1.NodeReady:
		default:
			conds = append(conds, old)
		}
	}
	s.Conditions = conds
}

// nodeStatusEqual compares statuses ignoring heartbeat times.
func nodeStatusEqual(a, b *v1.NodeStatus) bool {
	ac, bc := a.DeepCopy(), b.DeepCopy()
	for i := range ac.Conditions {
		ac.Conditions[i].LastHeartbeatTime = metav1.Time{}
	}
	for i := range bc.Conditions {
		bc.Conditions[i].LastHeartbeatTime = metav1.Time{}
	}
	return reflect.DeepEqual(ac, bc)
}

// recordNodeEvents emits upstream's "Node X status is now: ..." events for
// conditions that appeared or changed.
func (k *Kubelet) recordNodeEvents(old, node *v1.Node) {
	prev := map[v1.NodeConditionType]v1.ConditionStatus{}
	if old != nil {
		for _, c := range old.Status.Conditions {
			prev[c.Type] = c.Status
		}
	}
	ev := func(reason string) {
		k.recorder.Eventf(k.nodeRef(), v1.EventTypeNormal, reason, "Node %s status is now: %s", k.nodeName, reason)
	}
	for _, c := range node.Status.Conditions {
		if p, ok := prev[c.Type]; ok && p == c.Status {
			continue
		}
		switch {
		case c.Type == v1.NodeMemoryPressure && c.Status == v1.ConditionFalse:
			ev("NodeHasSufficientMemory")
		case c.Type == v1.NodeDiskPressure && c.Status == v1.ConditionFalse:
			ev("NodeHasNoDiskPressure")
		case c.Type == v1.NodePIDPressure && c.Status == v1.ConditionFalse:
			ev("NodeHasSufficientPID")
		case c.Type == v1.NodeReady && c.Status == v1.ConditionTrue:
			ev("NodeReady")
		}
	}
	if old == nil {
		k.recorder.Event(k.nodeRef(), v1.EventTypeNormal, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods")
	}
}

func (k *Kubelet) nodeInfo() v1.NodeSystemInfo {
	info := v1.NodeSystemInfo{
		MachineID:               readTrim("/etc/machine-id"),
		SystemUUID:              readTrim("/sys/class/dmi/id/product_uuid"),
		BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: k.runtimes.def + "://" + k.deps.Version,
		KubeletVersion:          KubeletVersion,
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
	if info.SystemUUID == "" {
		info.SystemUUID = info.MachineID
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		info.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	return info
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return goruntime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}

// machineResources returns the node's capacity and allocatable (capacity
// minus upstream's hard eviction thresholds: 100Mi of memory, 10% of disk).
func machineResources(root string, override v1.ResourceList) (capacity, allocatable v1.ResourceList) {
	capacity = v1.ResourceList{
		v1.ResourceCPU:                   *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory:                *resource.NewQuantity(memTotal(), resource.BinarySI),
		v1.ResourcePods:                  *resource.NewQuantity(maxPods, resource.DecimalSI),
		v1.ResourceEphemeralStorage:      *resource.NewQuantity(diskTotal(root), resource.BinarySI),
		v1.ResourceName("hugepages-1Gi"): resource.MustParse("0"),
		v1.ResourceName("hugepages-2Mi"): resource.MustParse("0"),
	}
	for name, q := range override {
		capacity[name] = q
	}
	allocatable = capacity.DeepCopy()
	mem := allocatable[v1.ResourceMemory]
	mem.Sub(resource.MustParse("100Mi"))
	if mem.Sign() < 0 {
		mem = resource.MustParse("0")
	}
	allocatable[v1.ResourceMemory] = mem
	disk := capacity[v1.ResourceEphemeralStorage]
	allocatable[v1.ResourceEphemeralStorage] = *resource.NewQuantity(disk.Value()-disk.Value()/10, resource.DecimalSI)
	return capacity, allocatable
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func diskTotal(path string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0
	}
	return int64(st.Blocks) * int64(st.Bsize)
}

// leaseLoop renews the node's Lease in kube-node-lease.
func (k *Kubelet) leaseLoop(ctx context.Context) {
	for {
		if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
			log.Printf("kubelet: node lease: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(leaseRenewInterval):
		}
	}
}

func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(k.clock.Now())
	l, err := leases.Get(ctx, k.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		dur := int32(leaseDurationSeconds)
		holder := k.nodeName
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Namespace: v1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}
		if node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{}); err == nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	if len(l.OwnerReferences) == 0 {
		if node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{}); err == nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
	}
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}
