// Package runtime is the CRI-shaped contract between the node agent's
// lifecycle logic (pkg/kubelet) and the things that actually run containers
// (process/ for host processes, later oci/ and a remote CRI client).
//
// Contracts every implementation keeps:
//   - Methods are safe for concurrent use.
//   - Stop and Remove of something already stopped / removed / unknown return
//     nil (they may be called twice, e.g. after an agent restart).
//   - Returned structs are fresh copies: callers may keep and mutate them.
//   - Errors wrap the sentinel errors below (check with errors.Is).
//   - Nothing here knows about the Kubernetes API: the kubelet translates a
//     v1.Pod into these configs and runtime states back into v1 statuses.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

var (
	// ErrNotFound: no sandbox / container / image with that id.
	ErrNotFound = errors.New("not found")
	// ErrInvalidConfig: the config cannot be run by this runtime (e.g. the
	// host runtime and a container with neither command nor args). The
	// kubelet maps it to CreateContainerConfigError / RunContainerError.
	ErrInvalidConfig = errors.New("invalid container config")
)

// SandboxState of a pod sandbox.
type SandboxState int

const (
	SandboxReady SandboxState = iota
	SandboxNotReady
)

// PodSandboxConfig describes the pod-level environment all its containers share.
type PodSandboxConfig struct {
	UID       string
	Name      string
	Namespace string
	Attempt   uint32
	Hostname  string
	// Domain is the pod's DNS domain when it has spec.subdomain
	// (<subdomain>.<ns>.svc.<cluster domain>): /etc/hosts names the pod
	// <hostname>.<domain> too.
	Domain string
	// HostAliases are spec.hostAliases, added to /etc/hosts.
	HostAliases []HostAlias
	// LogDirectory holds the pod's container logs (kubelet layout:
	// <root>/pods/<uid>/... or /var/log/pods/<ns>_<name>_<uid>).
	LogDirectory string
	HostNetwork  bool
	// Ports the pod declares (hostPort mappings for runtimes that isolate).
	Ports       []PortMapping
	DNS         *DNSConfig
	Labels      map[string]string
	Annotations map[string]string
	// CgroupParent and resources: honoured by isolating runtimes only.
	Resources *Resources
}

// HostAlias is one /etc/hosts line added by the pod's spec.hostAliases.
type HostAlias struct {
	IP        string
	Hostnames []string
}

type PortMapping struct {
	Protocol      string // TCP, UDP, SCTP
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// SandboxStatus is what the runtime knows of a sandbox.
type SandboxStatus struct {
	ID        string
	UID       string
	Name      string
	Namespace string
	Attempt   uint32
	State     SandboxState
	CreatedAt time.Time
	// IP is the pod IP; for host-network sandboxes the runtime reports the
	// node IP it was configured with (or empty: the kubelet uses the host IP).
	IP          string
	Labels      map[string]string
	Annotations map[string]string
}

// Mount places a host path (already prepared by the kubelet's volume setup)
// into the container. The host runtime cannot place it at ContainerPath; it
// exposes it to the process instead (see process.Runtime docs).
type Mount struct {
	Name          string // volume name
	HostPath      string
	ContainerPath string
	ReadOnly      bool
	// SubPath is the volumeMount's subPath, for information: HostPath
	// already points at it.
	SubPath string
}

type KeyValue struct {
	Key   string
	Value string
}

// Resources in runtime units (0 = unset).
type Resources struct {
	CPUMillis        int64 // request
	CPULimitMillis   int64
	MemoryRequest    int64 // bytes
	MemoryLimitBytes int64
	PidsLimit        int64
	// OOMScoreAdj of the container's processes (upstream's QoS policy:
	// Guaranteed -997, BestEffort 1000, Burstable by memory request); nil
	// leaves the runtime's own.
	OOMScoreAdj *int64
}

// QoS classes as the API names them (PodQOSClass on ContainerConfig).
const (
	QOSGuaranteed = "Guaranteed"
	QOSBurstable  = "Burstable"
	QOSBestEffort = "BestEffort"
)

// Capabilities to add to / drop from the runtime's default set. Names
// with or without the CAP_ prefix, any case; "ALL" means every
// capability. Drops apply after adds, as on containerd.
type Capabilities struct {
	Add  []string
	Drop []string
}

// Seccomp profile types (SeccompProfile.Type), as the API names them.
const (
	SeccompUnconfined     = "Unconfined"
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompLocalhost      = "Localhost"
)

// SeccompProfile of a container; nil is Unconfined (upstream's default
// without the SeccompDefault kubelet option).
type SeccompProfile struct {
	Type string
	// LocalhostPath is the profile file on the node for Localhost
	// (<kubelet root>/seccomp/<localhostProfile>).
	LocalhostPath string
}

// ContainerConfig is one attempt of one container.
type ContainerConfig struct {
	Name    string
	Attempt uint32 // restart count of this container at creation
	Image   string
	// Command and Args are the final argv pieces after $(VAR) expansion: the
	// runtime runs Command+Args, or the image's Entrypoint/Cmd where empty.
	Command    []string
	Args       []string
	Env        []KeyValue
	WorkingDir string
	Mounts     []Mount
	// LogPath is where the runtime writes stdout/stderr in the CRI log format
	// ("2006-01-02T15:04:05.000000000Z07:00 stdout F line"). Absolute.
	LogPath   string
	Stdin     bool
	StdinOnce bool
	TTY       bool
	Resources *Resources
	// SecurityContext basics (honoured by isolating runtimes).
	RunAsUser      *int64
	RunAsGroup     *int64
	Privileged     bool
	ReadOnlyRootfs bool
	Labels         map[string]string
	Annotations    map[string]string
	// RunAsNonRoot (with RunAsUser unset): isolating runtimes refuse the
	// container with ErrInvalidConfig and upstream's message when the
	// image would run it as root (or as a user name they cannot verify).
	// The message names the pod from the io.kubernetes.pod.* labels.
	RunAsNonRoot bool
	// SupplementalGroups: the pod's fsGroup and supplementalGroups.
	SupplementalGroups []int64
	Capabilities       *Capabilities
	// NoNewPrivileges: allowPrivilegeEscalation is false.
	NoNewPrivileges bool
	Seccomp         *SeccompProfile
	// PodQOSClass and PodResources describe the pod's cgroup (isolating
	// runtimes): QoS sub-tree and pod-level limits, as upstream's
	// ResourceConfigForPod (limits only when every container has one).
	// Empty / nil: derived from this container's Resources alone.
	PodQOSClass  string
	PodResources *Resources
}

type ContainerState int

const (
	ContainerCreated ContainerState = iota
	ContainerRunning
	ContainerExited
	ContainerUnknown
)

func (s ContainerState) String() string {
	switch s {
	case ContainerCreated:
		return "Created"
	case ContainerRunning:
		return "Running"
	case ContainerExited:
		return "Exited"
	}
	return "Unknown"
}

// ContainerStatus is what the runtime knows of a container.
type ContainerStatus struct {
	ID        string
	SandboxID string
	Name      string
	Attempt   uint32
	State     ContainerState
	CreatedAt time.Time
	StartedAt time.Time
	// FinishedAt, ExitCode, Signal, Reason, Message are set once Exited.
	FinishedAt time.Time
	ExitCode   int32
	Signal     int32 // signal number that killed it, 0 if it exited
	// Reason: "Completed" (exit 0), "Error", "OOMKilled" (as CRI runtimes report).
	Reason      string
	Message     string
	Image       string
	ImageRef    string // resolved image id / digest
	LogPath     string
	Labels      map[string]string
	Annotations map[string]string
}

// ContainerFilter selects containers for ListContainers (zero value: all).
type ContainerFilter struct {
	SandboxID string
	State     *ContainerState
	Labels    map[string]string
}

// ContainerEvent tells the kubelet something changed (like CRI container
// events / PLEG) so it resyncs the pod at once instead of at the next poll.
type ContainerEvent struct {
	ContainerID string
	SandboxID   string
	Type        ContainerEventType
	Time        time.Time
}

type ContainerEventType int

const (
	ContainerCreatedEvent ContainerEventType = iota
	ContainerStartedEvent
	ContainerStoppedEvent
	ContainerDeletedEvent
)

// TermSize is a terminal size for TTY sessions.
type TermSize struct {
	Width  uint16
	Height uint16
}

// Streams of an interactive exec or attach. Nil members are not connected.
type Streams struct {
	Stdin  io.Reader
	Stdout io.WriteCloser
	Stderr io.WriteCloser
	TTY    bool
	Resize <-chan TermSize
}

// ExitError is returned by Exec when the command ran and exited non-zero.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "command terminated with non-zero exit code" }

// ContainerStats: cumulative CPU and current memory of one container.
type ContainerStats struct {
	Timestamp             time.Time
	CPUUsageNanoSeconds   uint64 // cumulative
	MemoryWorkingSetBytes uint64
	MemoryRSSBytes        uint64
}

// ImageStatus of an image present on the node.
type ImageStatus struct {
	Ref       string // as the user wrote it, normalised
	ID        string // digest / image id (goes to containerStatuses[].imageID)
	SizeBytes int64
}

// Runtime runs pod sandboxes and containers.
type Runtime interface {
	// Name is the RuntimeClass handler name ("host", "oci").
	Name() string

	RunPodSandbox(ctx context.Context, cfg *PodSandboxConfig) (id string, err error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	PodSandboxStatus(ctx context.Context, id string) (*SandboxStatus, error)
	ListPodSandboxes(ctx context.Context) ([]*SandboxStatus, error)

	// ImageStatus returns ErrNotFound if the image is absent. PullImage
	// fetches it. The host runtime treats every image as present.
	ImageStatus(ctx context.Context, image string) (*ImageStatus, error)
	PullImage(ctx context.Context, image string, auth []RegistryAuth) (*ImageStatus, error)

	CreateContainer(ctx context.Context, sandboxID string, cfg *ContainerConfig) (id string, err error)
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM (or the image's stop signal), waits up to
	// timeout, then SIGKILLs; returns once the container has exited.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	ContainerStatus(ctx context.Context, id string) (*ContainerStatus, error)
	ListContainers(ctx context.Context, filter ContainerFilter) ([]*ContainerStatus, error)

	// ExecSync runs cmd in the container's context (env, working dir,
	// filesystem and namespaces as the runtime defines them) and returns its
	// output; a timeout kills the command and returns context.DeadlineExceeded.
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error)
	// Exec runs cmd interactively; a non-zero exit is *ExitError.
	Exec(ctx context.Context, id string, cmd []string, streams Streams) error
	// Attach connects to the container's main process stdio.
	Attach(ctx context.Context, id string, streams Streams) error
	// PortForward connects stream to port inside the sandbox's network.
	PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error

	ContainerStats(ctx context.Context, id string) (*ContainerStats, error)

	// Events delivers container state changes; the channel is shared by all
	// callers and never closed while the runtime lives.
	Events() <-chan ContainerEvent
}

// ContainerStatsLister is implemented by runtimes that read the stats of
// many containers at once for less than one ContainerStats call each (the
// kubelet's stats summary asks for every running container).
type ContainerStatsLister interface {
	// ListContainerStats returns the stats of the given containers by id;
	// a container that is gone is left out.
	ListContainerStats(ctx context.Context, ids []string) (map[string]*ContainerStats, error)
}

// RegistryAuth for pulls (from imagePullSecrets / docker config).
// ImageInfo is one image of a runtime's image store.
type ImageInfo struct {
	ID        string
	RepoTags  []string
	SizeBytes int64
	// InUse: a container (running or not) uses it.
	InUse bool
}

// ImageService is implemented by runtimes with an image store of their
// own (oci): the kubelet's image garbage collection uses it.
type ImageService interface {
	ListImages(ctx context.Context) ([]ImageInfo, error)
	// RemoveImage removes an image by id; an image in use is refused.
	RemoveImage(ctx context.Context, id string) error
	// ImageFsStats is the image filesystem's capacity and free bytes.
	ImageFsStats(ctx context.Context) (capacity, available uint64, err error)
}

type RegistryAuth struct {
	Server   string
	Username string
	Password string
	Auth     string
}
