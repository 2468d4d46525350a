package process

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// fixture is a host runtime with one sandbox.
type fixture struct {
	t    *testing.T
	r    *Runtime
	root string
	sb   string
	logs string
	ctx  context.Context
}

func newFixture(t *testing.T) *fixture {
	root := t.TempDir()
	f := &fixture{t: t, root: root, r: newTestRuntime(t, root), logs: t.TempDir(), ctx: context.Background()}
	id, err := f.r.RunPodSandbox(f.ctx, &runtime.PodSandboxConfig{UID: "uid-1", Name: "pod1", Namespace: "default", Hostname: "pod1", HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	f.sb = id
	t.Cleanup(func() { f.removeAll() })
	return f
}

// removeAll kills every container left, whichever runtime instance knows it.
func (f *fixture) removeAll() {
	r, err := New(f.r.opts)
	if err != nil {
		f.t.Error(err)
		return
	}
	defer r.Close()
	sbs, _ := r.ListPodSandboxes(f.ctx)
	for _, sb := range sbs {
		if err := r.RemovePodSandbox(f.ctx, sb.ID); err != nil {
			f.t.Errorf("cleanup: %v", err)
		}
	}
}

func (f *fixture) config(name string, argv ...string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Name:    name,
		Image:   "busybox",
		Command: argv,
		LogPath: filepath.Join(f.logs, name+".log"),
	}
}

func (f *fixture) run(cfg *runtime.ContainerConfig) string {
	f.t.Helper()
	id, err := f.r.CreateContainer(f.ctx, f.sb, cfg)
	if err != nil {
		f.t.Fatalf("CreateContainer: %v", err)
	}
	if err := f.r.StartContainer(f.ctx, id); err != nil {
		f.t.Fatalf("StartContainer: %v", err)
	}
	return id
}

func (f *fixture) waitLog(cfg *runtime.ContainerConfig, text string) {
	f.t.Helper()
	f.eventually("log "+text, func() bool {
		data, _ := os.ReadFile(cfg.LogPath)
		return strings.Contains(string(data), text)
	})
}

func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(t *testing.T, r *Runtime, id string) *runtime.ContainerStatus {
	t.Helper()
	st, err := r.ContainerStatus(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) waitExited(r *Runtime, id string) *runtime.ContainerStatus {
	f.t.Helper()
	var st *runtime.ContainerStatus
	f.eventually("exit", func() bool {
		st = statusOf(f.t, r, id)
		return st.State == runtime.ContainerExited
	})
	return st
}

func readState(t *testing.T, r *Runtime, id string) shimState {
	t.Helper()
	var st shimState
	if err := readJSON(filepath.Join(r.containerDir(id), stateFile), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestNameAndSandboxIP(t *testing.T) {
	f := newFixture(t)
	if f.r.Name() != "host" {
		t.Errorf("Name() = %q", f.r.Name())
	}
	st, err := f.r.PodSandboxStatus(f.ctx, f.sb)
	if err != nil || st.IP != "127.0.0.1" {
		t.Errorf("sandbox IP = %v, %v; want the host IP", st, err)
	}
}

func TestCreateWithoutCommand(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("nocmd")
	_, err := f.r.CreateContainer(f.ctx, f.sb, cfg)
	if !errors.Is(err, runtime.ErrInvalidConfig) || !strings.Contains(err.Error(), "no command specified") {
		t.Errorf("CreateContainer without command: %v, want ErrInvalidConfig: no command specified", err)
	}
	cfg.Args = []string{"echo", "args only"}
	if _, err := f.r.CreateContainer(f.ctx, f.sb, cfg); err != nil {
		t.Errorf("args without command: %v", err)
	}
}

func TestStartErrorMessage(t *testing.T) {
	f := newFixture(t)
	id, err := f.r.CreateContainer(f.ctx, f.sb, f.config("nf", "no-such-program-k1s"))
	if err != nil {
		t.Fatal(err)
	}
	err = f.r.StartContainer(f.ctx, id)
	want := `failed to start container process: exec: "no-such-program-k1s": executable file not found in $PATH`
	if err == nil || err.Error() != want {
		t.Errorf("StartContainer error = %v, want %q", err, want)
	}
	st := statusOf(t, f.r, id)
	if st.State != runtime.ContainerExited || st.ExitCode != 128 || st.Reason != "StartError" || st.Message != want {
		t.Errorf("status = %+v", st)
	}
}

func TestVolumesAndHostnameInEnv(t *testing.T) {
	f := newFixture(t)
	vol := t.TempDir()
	cfg := f.config("vol", "sh", "-c", `echo "$K1S_VOLUME_MY_DATA $HOSTNAME"`)
	cfg.Mounts = []runtime.Mount{{Name: "my-data", HostPath: vol, ContainerPath: "/data"}}
	id := f.run(cfg)
	f.waitExited(f.r, id)
	f.waitLog(cfg, " stdout F "+vol+" pod1\n")
}

func TestStopPID1Semantics(t *testing.T) {
	for _, tc := range []struct {
		name       string
		group      bool
		minTime    time.Duration
		maxTime    time.Duration
		exitCode   int32
		signal     int32
		reasonText string
	}{
		// sh does not handle SIGTERM: as PID 1 it never sees it.
		{name: "pid1", minTime: 500 * time.Millisecond, maxTime: 5 * time.Second, exitCode: 137, signal: 9},
		// The exit code tells SIGTERM (143) from the SIGKILL after the timeout (137).
		{name: "process group", group: true, maxTime: 5 * time.Second, exitCode: 143, signal: 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.r.opts.SignalProcessGroup = tc.group
			id := f.run(f.config("sleeper", "sh", "-c", "sleep 30; echo never"))
			begin := time.Now()
			if err := f.r.StopContainer(f.ctx, id, 500*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			d := time.Since(begin)
			if d < tc.minTime || d > tc.maxTime {
				t.Errorf("stop took %v, want between %v and %v", d, tc.minTime, tc.maxTime)
			}
			st := statusOf(t, f.r, id)
			if st.ExitCode != tc.exitCode || st.Signal != tc.signal || st.Reason != "Error" {
				t.Errorf("exit %d signal %d reason %q, want %d %d Error", st.ExitCode, st.Signal, st.Reason, tc.exitCode, tc.signal)
			}
		})
	}
}

func TestStopKillsWholeGroup(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("family", "sh", "-c", "sleep 30 & echo child $!; wait")
	id := f.run(cfg)
	f.waitLog(cfg, "child ")
	pgid := readState(t, f.r, id).PID
	if err := f.r.StopContainer(f.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	f.eventually("group gone", func() bool { return len(groupMembers(pgid)) == 0 })
}

func TestAdoptAfterAgentRestart(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("survivor", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	before := statusOf(t, f.r, id)
	state := readState(t, f.r, id)

	// The agent goes away; the shim and the container stay.
	f.r.Close()
	if !alive(state.ShimPID, state.ShimStart) || !alive(state.PID, state.PIDStart) {
		t.Fatalf("shim or container died with the agent")
	}

	r2 := newTestRuntime(t, f.root)
	after := statusOf(t, r2, id)
	if after.State != runtime.ContainerRunning || !after.StartedAt.Equal(before.StartedAt) || after.Name != "survivor" {
		t.Errorf("adopted status = %+v, want Running since %v", after, before.StartedAt)
	}
	if sbs, _ := r2.ListPodSandboxes(f.ctx); len(sbs) != 1 || sbs[0].ID != f.sb {
		t.Errorf("sandboxes after restart = %v", sbs)
	}
	if out, _, code, err := r2.ExecSync(f.ctx, id, []string{"echo", "still here"}, time.Second); err != nil || code != 0 || string(out) != "still here\n" {
		t.Errorf("ExecSync after restart = %q %d %v", out, code, err)
	}
	if err := r2.StopContainer(f.ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, r2, id)
	if st.State != runtime.ContainerExited || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("after stop: %+v", st)
	}
	f.waitLog(cfg, "stdout F bye\n")
	select {
	case ev := <-r2.Events():
		if ev.ContainerID != id || ev.Type != runtime.ContainerStoppedEvent {
			t.Errorf("event = %+v, want stopped %s", ev, id)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no stopped event from the adopting runtime")
	}
}

func TestContainerSurvivesAgentKill(t *testing.T) {
	root := t.TempDir()
	exe, _ := os.Executable()
	agent := exec.Command(exe)
	agent.Env = append(os.Environ(), agentEnv+"="+root)
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		agent.Process.Kill()
		t.Fatalf("agent: %v", err)
	}
	id := strings.TrimSpace(line)
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()

	r := newTestRuntime(t, root)
	st := statusOf(t, r, id)
	if st.State != runtime.ContainerRunning {
		t.Fatalf("after the agent was killed the container is %v", st.State)
	}
	if err := r.StopContainer(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, r, id); st.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", st.ExitCode)
	}
	if err := r.RemoveContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestShimKilled(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("orphan", "sh", "-c", "echo ready; sleep 30")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	state := readState(t, f.r, id)
	if err := unix.Kill(state.ShimPID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := f.waitExited(f.r, id)
	if st.ExitCode != 137 || st.Signal != 9 || st.Reason != "Error" || !strings.Contains(st.Message, "shim exited unexpectedly") {
		t.Errorf("status = %+v, want 137 Error after a dead shim", st)
	}
	if alive(state.PID, state.PIDStart) {
		t.Errorf("the container process survived its shim")
	}
}

func TestShimVanishedWhileAgentDown(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("lost", "sh", "-c", "echo ready; sleep 30")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	state := readState(t, f.r, id)
	f.r.Close()
	// Shim and container both disappear without a word.
	_ = unix.Kill(state.ShimPID, unix.SIGKILL)
	_ = unix.Kill(-state.PID, unix.SIGKILL)
	f.eventually("processes gone", func() bool {
		return !alive(state.ShimPID, state.ShimStart) && !alive(state.PID, state.PIDStart)
	})
	r2 := newTestRuntime(t, f.root)
	st := statusOf(t, r2, id)
	if st.State != runtime.ContainerExited || st.ExitCode != 255 || st.Reason != "Unknown" {
		t.Errorf("status = %+v, want Exited 255 Unknown", st)
	}
}

func TestExitedContainersSurviveRestart(t *testing.T) {
	f := newFixture(t)
	id := f.run(f.config("done", "sh", "-c", "exit 3"))
	before := f.waitExited(f.r, id)
	f.r.Close()
	r2 := newTestRuntime(t, f.root)
	after := statusOf(t, r2, id)
	if after.State != runtime.ContainerExited || after.ExitCode != 3 || !after.FinishedAt.Equal(before.FinishedAt) {
		t.Errorf("after restart: %+v, want %+v", after, before)
	}
}

func TestStats(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("busy", "sh", "-c", "echo ready; while true; do :; done")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	var st *runtime.ContainerStats
	f.eventually("cpu usage", func() bool {
		var err error
		st, err = f.r.ContainerStats(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.CPUUsageNanoSeconds > 0
	})
	if st.MemoryWorkingSetBytes == 0 || st.MemoryRSSBytes == 0 || st.MemoryRSSBytes > st.MemoryWorkingSetBytes {
		t.Errorf("memory: working set %d rss %d", st.MemoryWorkingSetBytes, st.MemoryRSSBytes)
	}
	// the one-pass listing reads the same process group
	all, err := f.r.ListContainerStats(f.ctx, []string{id, "no-such-container"})
	if err != nil {
		t.Fatal(err)
	}
	if l := all[id]; l == nil || l.CPUUsageNanoSeconds < st.CPUUsageNanoSeconds || l.MemoryWorkingSetBytes == 0 {
		t.Errorf("ListContainerStats = %+v, ContainerStats = %+v", l, st)
	}
	if _, ok := all["no-such-container"]; ok {
		t.Errorf("ListContainerStats reports an unknown container")
	}
	if err := f.r.StopContainer(f.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	st, err = f.r.ContainerStats(f.ctx, id)
	if err != nil || st.CPUUsageNanoSeconds != 0 {
		t.Errorf("stats of an exited container = %+v, %v", st, err)
	}
}

func TestReopenContainerLog(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("rotating", "sh", "-c", "trap 'echo after; exit 0' TERM; echo before; while true; do sleep 0.1; done")
	id := f.run(cfg)
	f.waitLog(cfg, "before")
	if err := os.Rename(cfg.LogPath, cfg.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := f.r.ReopenContainerLog(f.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.r.StopContainer(f.ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.LogPath)
	if !strings.Contains(string(data), "stdout F after") || strings.Contains(string(data), "before") {
		t.Errorf("new log = %q", data)
	}
}

func TestAttachTTY(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("term", "sh", "-c", "read x; stty size; echo got $x")
	cfg.Stdin, cfg.TTY = true, true
	id := f.run(cfg)
	resize := make(chan runtime.TermSize, 1)
	resize <- runtime.TermSize{Width: 120, Height: 50}
	in, inw := newPipe()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- f.r.Attach(f.ctx, id, runtime.Streams{Stdin: in, Stdout: out, TTY: true, Resize: resize})
	}()
	time.Sleep(200 * time.Millisecond) // the resize travels on its own connection
	inw.Write([]byte("hi\n"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end with the container")
	}
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if !strings.Contains(got, "50 120\n") || !strings.Contains(got, "got hi\n") {
		t.Errorf("tty output = %q", got)
	}
	// TTY output is logged as stdout.
	f.waitLog(cfg, "stdout F got hi\n")
}

func TestExecSyncCommandNotFound(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("idle", "sh", "-c", "echo ready; sleep 30")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	_, _, _, err := f.r.ExecSync(f.ctx, id, []string{"no-such-probe-cmd"}, time.Second)
	if err == nil || !strings.Contains(err.Error(), `exec: "no-such-probe-cmd": executable file not found in $PATH`) {
		t.Errorf("ExecSync(missing) = %v", err)
	}
}

func newPipe() (*os.File, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	return r, w
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Close() error { return nil }

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A socket path over sun_path's 108 bytes still works (through /proc/self/fd).
func TestAttachWithLongRootDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	r := newTestRuntime(t, root)
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.RemovePodSandbox(ctx, sb)
	id, err := r.CreateContainer(ctx, sb, &runtime.ContainerConfig{
		Name: "cat", Command: []string{"cat"}, Stdin: true, StdinOnce: true, LogPath: filepath.Join(root, "cat.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(filepath.Join(r.containerDir(id), attachSocket)) <= maxSocketPath {
		t.Fatalf("the socket path is not long enough for this test")
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	if err := r.Attach(ctx, id, runtime.Streams{Stdin: strings.NewReader("echoed\n"), Stdout: out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "echoed\n" {
		t.Errorf("attach output %q", out.String())
	}
}
