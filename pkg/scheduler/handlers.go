package scheduler

import (
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// Informer handlers: assigned pods feed the cache, pending pods the queue,
// nodes the cache; changes that can make a rejected pod fit are offered to
// the queue as cluster events.

func terminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

func (s *Scheduler) responsibleFor(pod *v1.Pod) bool {
	return pod.Spec.SchedulerName == s.opts.SchedulerName
}

// pending says whether pod waits for this scheduler.
func (s *Scheduler) pending(pod *v1.Pod) bool {
	return pod.Spec.NodeName == "" && s.responsibleFor(pod) && !terminal(pod) &&
		pod.DeletionTimestamp == nil && len(pod.Spec.SchedulingGates) == 0
}

func (s *Scheduler) onPodAdd(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	switch {
	case pod.Spec.NodeName != "":
		if !terminal(pod) {
			s.cache.setPod(pod)
		}
	case s.pending(pod):
		s.queue.Add(pod)
	}
}

func (s *Scheduler) onPodUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*v1.Pod)
	pod, ok2 := newObj.(*v1.Pod)
	if !ok1 || !ok2 {
		return
	}
	if pod.Spec.NodeName != "" {
		s.queue.Delete(pod.UID)
		if terminal(pod) {
			// A finished pod frees its node's resources.
			s.cache.removePod(pod.UID)
			if !terminal(old) {
				s.queue.MoveOnEvent(clusterEvent{assignedPodGone: pod})
			}
			return
		}
		s.cache.setPod(pod)
		return
	}
	if s.cache.isAssumed(pod.UID) {
		// Being bound by us; the update that shows the node is on its way.
		return
	}
	if s.pending(pod) {
		s.queue.Update(pod)
	} else {
		s.queue.Delete(pod.UID)
	}
}

func (s *Scheduler) onPodDelete(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*v1.Pod); !ok {
			return
		}
	}
	s.queue.Delete(pod.UID)
	if pod.Spec.NodeName != "" {
		s.cache.removePod(pod.UID)
		if !terminal(pod) {
			s.queue.MoveOnEvent(clusterEvent{assignedPodGone: pod})
		}
	}
}

func (s *Scheduler) onNodeAdd(obj any) {
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	s.cache.setNode(node)
	s.queue.MoveOnEvent(clusterEvent{newNode: node})
}

func (s *Scheduler) onNodeUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*v1.Node)
	node, ok2 := newObj.(*v1.Node)
	if !ok1 || !ok2 {
		return
	}
	s.cache.setNode(node)
	if nodeSchedulingChanged(old, node) {
		s.queue.MoveOnEvent(clusterEvent{oldNode: old, newNode: node})
	}
}

func (s *Scheduler) onNodeDelete(obj any) {
	node, ok := obj.(*v1.Node)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if node, ok = tomb.Obj.(*v1.Node); !ok {
			return
		}
	}
	s.cache.removeNode(node.Name)
}

// nodeSchedulingChanged mirrors upstream's node update events: a change to
// schedulability, allocatable, labels, taints, annotations or conditions
// (heartbeat times aside). Kubelet heartbeats alone move nothing.
func nodeSchedulingChanged(old, cur *v1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		!reflect.DeepEqual(old.Labels, cur.Labels) ||
		!reflect.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!reflect.DeepEqual(old.Annotations, cur.Annotations) ||
		conditionsChanged(old.Status.Conditions, cur.Status.Conditions)
}

func conditionsChanged(a, b []v1.NodeCondition) bool {
	if len(a) != len(b) {
		return true
	}
	status := make(map[v1.NodeConditionType]v1.ConditionStatus, len(a))
	for _, c := range a {
		status[c.Type] = c.Status
	}
	for _, c := range b {
		if s, ok := status[c.Type]; !ok || s != c.Status {
			return true
		}
	}
	return false
}
