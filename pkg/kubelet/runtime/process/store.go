package process

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// File names inside a container directory.
const (
	containerFile = "container.json"
	specFile      = "spec.json"
	stateFile     = "state.json"
	rootfsDir     = "rootfs"
	attachSocket  = "attach.sock"
	shimLogFile   = "shim.log"
	sandboxFile   = "sandbox.json"
)

// sandboxRecord is sandboxes/<id>/sandbox.json.
type sandboxRecord struct {
	ID        string                   `json:"id"`
	Config    runtime.PodSandboxConfig `json:"config"`
	CreatedAt time.Time                `json:"createdAt"`
	State     runtime.SandboxState     `json:"state"`
}

// containerRecord is containers/<id>/container.json, written once at create.
type containerRecord struct {
	ID        string                  `json:"id"`
	SandboxID string                  `json:"sandboxID"`
	CreatedAt time.Time               `json:"createdAt"`
	Config    runtime.ContainerConfig `json:"config"`
	ImageRef  string                  `json:"imageRef"`
}

// processSpec is containers/<id>/spec.json: everything the shim needs.
type processSpec struct {
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Dir       string   `json:"dir"`
	LogPath   string   `json:"logPath"`
	Stdin     bool     `json:"stdin,omitempty"`
	StdinOnce bool     `json:"stdinOnce,omitempty"`
	TTY       bool     `json:"tty,omitempty"`
	// HostPath is the PATH searched when the executable is not found in
	// the PATH of Env.
	HostPath string `json:"hostPath,omitempty"`
}

// Status values of shimState.
const (
	statusRunning = "running"
	statusExited  = "exited"
)

// shimState is containers/<id>/state.json. The shim writes it; the runtime
// writes it only when no shim can (start failures, a vanished shim).
type shimState struct {
	Status string `json:"status"`
	// ShimPID and ShimStart identify the shim process (start time in clock
	// ticks since boot, /proc/<pid>/stat field 22) so a reused pid is not
	// mistaken for it.
	ShimPID    int       `json:"shimPID,omitempty"`
	ShimStart  uint64    `json:"shimStart,omitempty"`
	PID        int       `json:"pid,omitempty"`
	PIDStart   uint64    `json:"pidStart,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int32     `json:"exitCode"`
	Signal     int32     `json:"signal,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// Reasons and exit codes, as containerd's CRI plugin reports them.
const (
	reasonCompleted  = "Completed"
	reasonError      = "Error"
	reasonStartError = "StartError"
	reasonUnknown    = "Unknown"
	exitCodeStart    = 128
	exitCodeUnknown  = 255
)

// exitReason is the terminated reason for an exit code.
func exitReason(code int32) string {
	if code == 0 {
		return reasonCompleted
	}
	return reasonError
}

// newID returns a 64 hex digit id, the shape of containerd's ids.
func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// writeJSON writes v to path atomically (temp file + rename).
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// readJSON reads path into v; a missing file is reported with os.ErrNotExist.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
