package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/bench/internal/harness"
)

// section returns the rows of one measure; the table prints the sections
// in reportOrder whatever order they ran in.
func (b *bench) section(name string) *harness.Table {
	if b.sections == nil {
		b.sections = map[string]*harness.Table{}
	}
	t := b.sections[name]
	if t == nil {
		t = &harness.Table{}
		b.sections[name] = t
	}
	return t
}

var reportOrder = []string{"na", "single", "burst", "memory", "import", "cleanup"}

// assemble puts the sections into b.table.
func (b *bench) assemble() {
	for _, s := range reportOrder {
		if t := b.sections[s]; t != nil {
			b.table.Rows = append(b.table.Rows, t.Rows...)
		}
	}
}

// podRun is one server and the pod measures made on it.
type podRun struct {
	*bench
	server      *harness.Server
	clusterCIDR string
	node        string
	c           kubernetes.Interface
	clients     []kubernetes.Interface
	tr          *tracker
}

func (r *podRun) measure(ctx context.Context) error {
	cfg, err := r.server.RESTConfig()
	if err != nil {
		return err
	}
	if r.c, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if r.node, err = waitReadyNode(ctx, r.c, r.nodeWait); err != nil {
		return err
	}
	if r.node == "" {
		r.log("no Node Ready with a pod CIDR within %s", r.nodeWait)
		r.section("na").Add("oci pod measures", fmt.Sprintf("n/a (no Node Ready with a pod CIDR within %s)", r.nodeWait), "")
		return nil
	}
	r.log("node %s is Ready", r.node)
	if err := harness.EnsureNamespace(ctx, r.c, ns); err != nil {
		return err
	}
	if r.tr, err = newTracker(ctx, r.c); err != nil {
		return err
	}
	r.clients = make([]kubernetes.Interface, r.bench.clients)
	for i := range r.clients {
		if r.clients[i], err = kubernetes.NewForConfig(harness.OwnConnection(cfg)); err != nil {
			return err
		}
	}
	if r.only["memory"] {
		r.memory(ctx)
	}
	if r.only["single"] && ctx.Err() == nil {
		r.singles(ctx)
	}
	if r.only["burst"] && ctx.Err() == nil {
		r.burstRun(ctx)
	}
	return ctx.Err()
}

// waitReadyNode returns the name of a Node that is Ready and has a pod
// CIDR (the oci runtime's pod networks need it), or "" after wait.
func waitReadyNode(ctx context.Context, c kubernetes.Interface, wait time.Duration) (string, error) {
	var name string
	var lastErr error
	harness.WaitEvery(ctx, 200*time.Millisecond, wait, func() bool {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			lastErr = err
			return false
		}
		lastErr = nil
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && n.Spec.PodCIDR != "" {
					name = n.Name
					return true
				}
			}
		}
		return false
	})
	return name, lastErr
}

// memory starts r.memPods pods at once, reads what every process of the
// node other than the containers' own costs, and deletes the pods.
func (r *podRun) memory(ctx context.Context) {
	rows := r.section("memory")
	harness.Sleep(ctx, r.settle)
	idle, err := harness.ReadMemory(r.server.PID())
	if err != nil {
		rows.Add("per-pod memory overhead", "n/a: "+err.Error(), "< 5 MB")
		return
	}
	r.log("idle server RSS %s", harness.MB(idle.RSS))
	n := r.memPods
	res := r.createAtOnce(ctx, "mem", n)
	defer r.deleteAll(ctx, res.names)
	label := fmt.Sprintf("per-pod memory overhead on the node, %d running oci pods: private memory (USS = Private_Clean + Private_Dirty) of every process that is not a container's own, summed, / %d (PSS in brackets)", n, n)
	if !res.allOK {
		rows.Add(label, "n/a: "+res.failure, "< 5 MB")
		return
	}
	run, _, last := res.latencies()
	r.log("%d memory pods Running in %s (per pod %s)", n, harness.Ms(last.Sub(res.first)), p50p99(run))
	harness.Sleep(ctx, r.settle)
	snap, err := takeSnapshot(r.server.PID(), r.work)
	if err != nil {
		rows.Add(label, "n/a: "+err.Error(), "< 5 MB")
		return
	}
	loaded, err := harness.ReadMemory(r.server.PID())
	if err != nil {
		rows.Add(label, "n/a: "+err.Error(), "< 5 MB")
		return
	}
	r.log("processes: %s", snap.summary())
	rows.Add(label, snap.overheadValue(n), "< 5 MB")
	rows.Add("… split per pod: shim (k1s binary, C shim) / `runc run` / other non-container processes — USS (PSS), process count", snap.splitValue(n), "")
	rows.Add("… plus kernel memory of those processes that smaps does not show: page tables (VmPTE) + a 16 KiB kernel stack per thread", snap.kernelValue(n), "")
	rows.Add("… the container's PID 1: its parent process", snap.parentValue(), "")
	rows.Add("… the containers' own processes (`sleep`, not overhead): USS (PSS) per pod", snap.workloadValue(n), "")
	rows.Add("… sandbox: /dev/shm tmpfs used per pod; mounts per pod under the data dir", snap.mountsValue(n), "")
	rows.Add("… pod cgroups (container processes + kernel memory charged to them; not the shim or runc): memory usage / of which kmem, per pod", snap.cgroupValue(n), "")
	sv, bl, tot := res.cpu.per(n)
	rows.Add(fmt.Sprintf("… (the %d pods, created at once: first create → all Running; per pod p50 / p99; CPU per pod: total (server + below it))", n),
		fmt.Sprintf("%s; %s; %s (%s + %s)", harness.Ms(last.Sub(res.first)), p50p99(run), tot, sv, bl), "")
	rows.Add(fmt.Sprintf("server RSS growth per pod: (RSS with %d pods − RSS idle) / %d", n, n),
		fmt.Sprintf("%s / pod (idle %s → %s; anon %s → %s)", signedMB((loaded.RSS-idle.RSS)/int64(n)),
			harness.MB(idle.RSS), harness.MB(loaded.RSS), harness.MB(idle.RSSAnon), harness.MB(loaded.RSSAnon)), "")
}

func signedMB(b int64) string {
	if b >= 0 {
		return "+" + harness.MB(b)
	}
	return "−" + harness.MB(-b)
}

// snapshotShims counts the shims running under the server.
func (r *podRun) snapshotShims() int {
	snap, err := takeSnapshot(r.server.PID(), r.work)
	if err != nil {
		return -1
	}
	return snap.cats[catShim].count
}

// cleanup stops the server (SIGTERM to its PID; --stop-pods-on-exit stops
// the pods and removes their sandboxes and the node network), then checks
// that nothing of it is left: processes, mounts under the temp dir, the
// node bridge and nftables tables of this run's cluster CIDR. Whatever is
// left is removed (it is this run's by name and path) and reported.
func (r *podRun) cleanup() error {
	if r.tr != nil {
		r.tr.stop()
	}
	rows := r.section("cleanup")
	var errs []error
	took, err := r.server.Stop()
	if err != nil {
		errs = append(errs, err)
	}
	r.log("server stopped in %s", harness.Ms(took))
	var left []string
	if n := harness.KillLeftoverContainers(r.work) + harness.KillProcessesIn(r.work); n > 0 {
		left = append(left, fmt.Sprintf("%d processes (killed)", n))
	}
	if snap, err := takeSnapshot(0, r.work); err == nil && len(snap.outside) > 0 {
		for _, p := range snap.outside {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		left = append(left, fmt.Sprintf("%d processes naming the temp dir (killed)", len(snap.outside)))
	}
	if ms, err := mountsUnder(r.work); err != nil {
		errs = append(errs, err)
	} else if len(ms) > 0 {
		var names []string
		// deepest first
		sort.Slice(ms, func(i, j int) bool { return len(ms[i].point) > len(ms[j].point) })
		for _, m := range ms {
			names = append(names, m.fstype+" "+strings.TrimPrefix(m.point, r.work+"/"))
			if err := unix.Unmount(m.point, unix.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m.point, err))
			}
		}
		r.log("mounts left after the server stopped (unmounted now): %s", strings.Join(names, ", "))
		left = append(left, fmt.Sprintf("%d mounts (unmounted)", len(ms)))
	}
	if r.node != "" {
		bridge, proxyTable := networkNames(r.node, r.clusterCIDR)
		if _, err := os.Stat(filepath.Join("/sys/class/net", bridge)); err == nil {
			left = append(left, "bridge "+bridge+" (deleted)")
			if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", bridge, err, out))
			}
		}
		tables, err := removeTables("k1s-net-"+bridge, proxyTable)
		if err != nil {
			errs = append(errs, err)
		}
		for _, t := range tables {
			left = append(left, "nftables table "+t+" (deleted)")
		}
	}
	value := "nothing left"
	if len(left) > 0 {
		value = "left: " + strings.Join(left, ", ")
	}
	rows.Add("clean-up: server SIGTERM (--stop-pods-on-exit) → exit; what was left (processes, mounts under the temp dir, bridge, nftables tables)",
		harness.Ms(took)+"; "+value, "")
	return errors.Join(errs...)
}

// networkNames are the node bridge and the service proxy's nftables table
// of a node with a cluster CIDR of its own (pkg/agent.NetworkNames).
func networkNames(node, clusterCIDR string) (bridge, proxyTable string) {
	sum := sha256.Sum256([]byte(clusterCIDR + "/" + node))
	h := hex.EncodeToString(sum[:4])
	return "k1s-" + h, "k1s-proxy-" + h
}

// removeTables deletes the nftables tables (any family) with these names
// and returns the names of those that existed.
func removeTables(names ...string) ([]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, err
	}
	all, err := conn.ListTables()
	if err != nil {
		return nil, err
	}
	var found []string
	for _, t := range all {
		if slices.Contains(names, t.Name) {
			found = append(found, t.Name)
			conn.DelTable(t)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	return found, conn.Flush()
}
