package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k1s.dev/k1s/bench/internal/harness"
)

// stages of one pod's start on the node, from the oci runtime's own files
// (same host, same clock as the watch):
//
//	bound     the watch saw spec.nodeName
//	sandbox   sandboxes/<sid>/sandbox.json written: network namespace,
//	          veth + IP, /dev/shm, /etc files done (RunPodSandbox)
//	created   containers/<id>/container.json written: image lease,
//	          overlay mount, config.json (CreateContainer)
//	shim      the shim's state.json startedAt: `runc run` started
//	runc      runc's state.json "created": namespaces, mounts, cgroup
//	          done, before the process runs
//	running   the watch saw phase Running
type stages struct {
	bound, sandbox, created, shim, runc, running time.Time
}

var stageNames = []string{"sandbox ready", "container created", "`runc run` started", "runc container created", "Running seen in the API"}

// steps are the durations between consecutive stages.
func (s stages) steps() []time.Duration {
	t := []time.Time{s.bound, s.sandbox, s.created, s.shim, s.runc, s.running}
	out := make([]time.Duration, len(t)-1)
	for i := range out {
		out[i] = t[i+1].Sub(t[i])
	}
	return out
}

// readStages reads a Running pod's stages; containerID is its container
// status's ("oci://<id>"), ociRoot the runtime's root dir
// (<data dir>/agent/runtime/oci).
func readStages(ociRoot, containerID string, bound, running time.Time) (stages, error) {
	s := stages{bound: bound, running: running}
	_, id, ok := strings.Cut(containerID, "://")
	if !ok || id == "" {
		return s, fmt.Errorf("container id %q", containerID)
	}
	cdir := filepath.Join(ociRoot, "containers", id)
	var rec struct{ ShimID, SandboxID string }
	if err := readJSON(filepath.Join(cdir, "container.json"), &rec); err != nil {
		return s, err
	}
	var err error
	if s.created, err = mtime(filepath.Join(cdir, "container.json")); err != nil {
		return s, err
	}
	if s.sandbox, err = mtime(filepath.Join(ociRoot, "sandboxes", rec.SandboxID, "sandbox.json")); err != nil {
		return s, err
	}
	var shim struct {
		StartedAt time.Time `json:"startedAt"`
	}
	if err := readJSON(filepath.Join(ociRoot, "shims", "containers", rec.ShimID, "state.json"), &shim); err != nil {
		return s, err
	}
	s.shim = shim.StartedAt
	var rs struct {
		Created time.Time `json:"created"`
	}
	if err := readJSON(filepath.Join(ociRoot, "runc", id, "state.json"), &rs); err != nil {
		return s, err
	}
	s.runc = rs.Created
	if s.shim.IsZero() || s.runc.IsZero() {
		return s, fmt.Errorf("container %s: no start times", id)
	}
	return s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func mtime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// stagesValue is p50 / p99 of each step over the pods.
func stagesValue(all []stages) string {
	if len(all) == 0 {
		return "n/a"
	}
	var parts []string
	for i, name := range stageNames {
		var d []time.Duration
		for _, s := range all {
			d = append(d, s.steps()[i])
		}
		parts = append(parts, "→ "+name+" "+harness.Ms(harness.Median(d))+" / "+harness.Ms(harness.Quantile(d, 0.99)))
	}
	return strings.Join(parts, " ")
}

// ociRoot is the oci runtime's root dir of the server's node agent.
func (r *podRun) ociRoot() string {
	return filepath.Join(r.server.DataDir, "agent", "runtime", "oci")
}

// stagesOf reads the stages of Running pods (those it can; the others
// are logged).
func (r *podRun) stagesOf(names []string) []stages {
	bound, running := r.tr.times(names)
	var out []stages
	for i, n := range names {
		r.tr.mu.Lock()
		p := r.tr.last[n]
		r.tr.mu.Unlock()
		if p == nil || len(p.Status.ContainerStatuses) == 0 || running[i].IsZero() {
			continue
		}
		s, err := readStages(r.ociRoot(), p.Status.ContainerStatuses[0].ContainerID, bound[i], running[i])
		if err != nil {
			r.log("stages of %s: %v", n, err)
			continue
		}
		out = append(out, s)
	}
	return out
}
