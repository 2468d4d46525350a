package kubelet

import (
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// setupPodSource feeds the pods bound to this node to the pod workers. A
// change of spec, metadata or deletion syncs the pod; a status-only change
// (often our own write) only refreshes the cached object.
func (k *Kubelet) setupPodSource() {
	k.podInformers.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if pod, ok := obj.(*v1.Pod); ok {
				k.workers.update(pod)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := oldObj.(*v1.Pod)
			pod, ok2 := newObj.(*v1.Pod)
			if !ok1 || !ok2 {
				return
			}
			k.status.UpdatePod(pod)
			if needsSync(old, pod) {
				k.workers.update(pod)
			} else {
				k.workers.updateQuiet(pod)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				k.workers.remove(pod)
			}
		},
	})
	// services feed the containers' service environment variables
	k.informers.Core().V1().Services().Informer()
}

func needsSync(old, pod *v1.Pod) bool {
	if old.Generation != pod.Generation || !reflect.DeepEqual(old.Spec, pod.Spec) {
		return true
	}
	if !reflect.DeepEqual(old.Labels, pod.Labels) || !reflect.DeepEqual(old.Annotations, pod.Annotations) {
		return true
	}
	if (old.DeletionTimestamp == nil) != (pod.DeletionTimestamp == nil) {
		return true
	}
	if !reflect.DeepEqual(old.DeletionGracePeriodSeconds, pod.DeletionGracePeriodSeconds) {
		return true
	}
	// a terminal phase written by someone else (eviction) must be honoured
	if old.Status.Phase != pod.Status.Phase && (pod.Status.Phase == v1.PodFailed || pod.Status.Phase == v1.PodSucceeded) {
		return true
	}
	return false
}
