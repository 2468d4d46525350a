package kubelet

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const housekeepingPeriod = 10 * time.Second

func (k *Kubelet) housekeepingLoop(ctx context.Context) {
	t := k.clock.NewTicker(housekeepingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			k.housekeeping(ctx)
			k.checkEmptyDirLimits()
		}
	}
}

// housekeeping removes what belongs to no pod bound here: runtime sandboxes
// and containers (after an agent restart, of pods deleted meanwhile), pod
// and log directories; and forgets stale probe workers and back-offs. Pods
// still bound here keep their running containers: their workers adopt them.
func (k *Kubelet) housekeeping(ctx context.Context) {
	desired := map[types.UID]struct{}{}
	for _, p := range k.podsFromLister() {
		desired[p.UID] = struct{}{}
	}
	for uid := range k.workers.known() {
		desired[uid] = struct{}{}
	}
	orphans := map[types.UID]bool{}
	for _, rt := range k.runtimes.all() {
		sbs, err := rt.ListPodSandboxes(ctx)
		if err != nil {
			log.Printf("kubelet: housekeeping: list sandboxes: %v", err)
			continue
		}
		for _, sb := range sbs {
			uid := types.UID(sb.UID)
			if uid == "" {
				uid = types.UID(sb.Labels[podstate.LabelPodUID])
			}
			if _, ok := desired[uid]; !ok && uid != "" {
				orphans[uid] = true
			}
		}
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{})
		if err != nil {
			continue
		}
		for _, c := range cs {
			uid := types.UID(c.Labels[podstate.LabelPodUID])
			if _, ok := desired[uid]; !ok && uid != "" {
				orphans[uid] = true
			}
		}
	}
	for uid := range orphans {
		log.Printf("kubelet: removing containers of pod %s, no longer bound to this node", uid)
		k.removeRuntimePod(ctx, uid, time.Second)
		k.pleg.forget(uid)
	}
	for _, uid := range k.volumes.PodDirs() {
		if _, ok := desired[uid]; !ok {
			k.volumes.Cleanup(uid)
		}
	}
	logs := filepath.Join(k.deps.RootDir, "logs")
	if entries, err := os.ReadDir(logs); err == nil {
		for _, e := range entries {
			i := strings.LastIndex(e.Name(), "_")
			if i < 0 {
				continue
			}
			if _, ok := desired[types.UID(e.Name()[i+1:])]; !ok {
				os.RemoveAll(filepath.Join(logs, e.Name()))
			}
		}
	}
	k.probes.CleanupPods(desired)
	k.crashBackoff.GC()
}
