package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
)

// Code says whether a node's rejection could be undone by preemption, as
// upstream's framework status codes Unschedulable and
// UnschedulableAndUnresolvable do.
type Code int

const (
	// Unschedulable: removing lower-priority pods from the node might help.
	Unschedulable Code = iota + 1
	// UnschedulableAndUnresolvable: nothing on the node can change it.
	UnschedulableAndUnresolvable
)

// Status is one plugin's verdict for one node.
type Status struct {
	Code    Code
	Plugin  string
	Reasons []string
}

func newStatus(c Code, plugin string, reasons ...string) *Status {
	return &Status{Code: c, Plugin: plugin, Reasons: reasons}
}

// ErrNoNodesAvailable is upstream's error when no node is registered.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// FitError is why a pod fits no node. Error() renders upstream's message
// (k8s.io/kubernetes pkg/scheduler/framework FitError.Error):
//
//	0/N nodes are available: <count reason, ... sorted>. <postFilter message>
type FitError struct {
	NumAllNodes int
	// NodeStatus has the verdict of each node that was filtered.
	NodeStatus map[string]*Status
	// Absent is the verdict of every node not in NodeStatus (nodes a
	// prefilter excluded), nil when NodeStatus covers every node.
	Absent *Status
	// PreFilterMsg is set when a prefilter rejected the pod outright.
	PreFilterMsg string
	// PostFilterMsg is the preemption verdict ("preemption: ...").
	PostFilterMsg string
}

const noNodeAvailableMsg = "0/%v nodes are available"

func (f *FitError) Error() string {
	msg := fmt.Sprintf(noNodeAvailableMsg+":", f.NumAllNodes)
	if f.PreFilterMsg != "" {
		msg += fmt.Sprintf(" %v.", f.PreFilterMsg)
	} else if h := f.histogram(); len(h) > 0 {
		msg += fmt.Sprintf(" %v.", strings.Join(h, ", "))
	}
	if f.PostFilterMsg != "" {
		msg += " " + f.PostFilterMsg
	}
	return msg
}

// histogram counts nodes per reason, "<count> <reason>", sorted as strings
// (so "1 node(s) ..." sorts before "2 Insufficient cpu", as upstream).
func (f *FitError) histogram() []string {
	counts := map[string]int{}
	for _, s := range f.NodeStatus {
		for _, r := range s.Reasons {
			counts[r]++
		}
	}
	if absent := f.NumAllNodes - len(f.NodeStatus); absent > 0 && f.Absent != nil {
		for _, r := range f.Absent.Reasons {
			counts[r] += absent
		}
	}
	out := make([]string, 0, len(counts))
	for r, n := range counts {
		out = append(out, fmt.Sprintf("%v %v", n, r))
	}
	sort.Strings(out)
	return out
}

// rejectors are the plugins that rejected the pod on some node.
func (f *FitError) rejectors() sets.Set[string] {
	r := sets.New[string]()
	for _, s := range f.NodeStatus {
		r.Insert(s.Plugin)
	}
	if f.Absent != nil && len(f.NodeStatus) < f.NumAllNodes {
		r.Insert(f.Absent.Plugin)
	}
	return r
}
