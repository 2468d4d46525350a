// Package prober runs liveness, readiness and startup probes, one worker
// goroutine per probe, as upstream's pkg/kubelet/prober does. Results go to a
// cache plus one update channel per probe type; the kubelet reads them.
//
// This file is the contract pkg/kubelet codes against; keep these names and
// signatures.
package prober

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// ProbeType is liveness, readiness or startup.
type ProbeType int

const (
	Liveness ProbeType = iota
	Readiness
	Startup
)

func (t ProbeType) String() string {
	switch t {
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	}
	return "Startup"
}

// Result of the latest probes of one container.
type Result int

const (
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	}
	return "UNKNOWN"
}

// Update is sent when a probe's result changes (and, for liveness/startup
// failures, each time the threshold is crossed).
type Update struct {
	ContainerID string // the v1 form "host://abc" as in containerStatuses
	PodUID      types.UID
	Type        ProbeType
	Result      Result
}

// StatusProvider gives workers the kubelet's latest computed status of a pod
// (container IDs, running/started state, pod IP).
type StatusProvider interface {
	GetPodStatus(uid types.UID) (v1.PodStatus, bool)
}

// Execer runs exec probes in the container's context (runtime.Runtime fits).
type Execer interface {
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error)
}

// Options wire a Manager.
type Options struct {
	Status   StatusProvider
	Exec     Execer
	Recorder record.EventRecorder // Unhealthy / ProbeWarning events, component kubelet
	Clock    clock.WithTicker
	// RuntimeContainerID maps a v1 containerID ("host://abc") to the
	// runtime's id ("abc"). Nil: strip the "<scheme>://" prefix.
	RuntimeContainerID func(string) string
}
