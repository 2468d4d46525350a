package conformance

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

var scenarios = []scenario{
	{"Sandbox", testSandbox},
	{"ContainerLifecycle", testContainerLifecycle},
	{"ExitCodes", testExitCodes},
	{"StartError", testStartError},
	{"StopGraceful", testStopGraceful},
	{"StopIgnoringSIGTERM", testStopIgnoringSIGTERM},
	{"StopAndRemoveAreIdempotent", testIdempotent},
	{"MainExitEndsContainer", testMainExitEndsContainer},
	{"Logs", testLogs},
	{"LogsLongLine", testLogsLongLine},
	{"EnvAndWorkingDir", testEnvAndWorkingDir},
	{"ExecSync", testExecSync},
	{"ExecSyncTimeout", testExecSyncTimeout},
	{"Exec", testExec},
	{"ExecTTY", testExecTTY},
	{"Attach", testAttach},
	{"PortForward", testPortForward},
	{"ListContainers", testListContainers},
	{"Events", testEvents},
	{"Stats", testStats},
	{"Images", testImages},
}

func testSandbox(t *testing.T, h *harness) {
	cfg := h.sandboxConfig("sb")
	id, err := h.rt.RunPodSandbox(h.ctx, cfg)
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	st, err := h.rt.PodSandboxStatus(h.ctx, id)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	if st.ID != id || st.UID != cfg.UID || st.Name != "sb" || st.Namespace != "conformance" || st.State != runtime.SandboxReady {
		t.Errorf("status = %+v, want id %s uid %s name sb namespace conformance Ready", st, id, cfg.UID)
	}
	if st.CreatedAt.IsZero() || st.Labels["io.kubernetes.pod.name"] != "sb" || st.Annotations["note"] != "conformance" {
		t.Errorf("status = %+v: want CreatedAt, labels and annotations", st)
	}
	// Returned structs are copies.
	st.Labels["io.kubernetes.pod.name"] = "changed"
	if again, _ := h.rt.PodSandboxStatus(h.ctx, id); again.Labels["io.kubernetes.pod.name"] != "sb" {
		t.Errorf("mutating a returned status changed the runtime's labels")
	}
	list, err := h.rt.ListPodSandboxes(h.ctx)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("ListPodSandboxes = %v, %v; want [%s]", list, err, id)
	}
	for i := 0; i < 2; i++ {
		if err := h.rt.StopPodSandbox(h.ctx, id); err != nil {
			t.Fatalf("StopPodSandbox #%d: %v", i+1, err)
		}
	}
	if st, _ := h.rt.PodSandboxStatus(h.ctx, id); st.State != runtime.SandboxNotReady {
		t.Errorf("after stop: state %v, want NotReady", st.State)
	}
	for i := 0; i < 2; i++ {
		if err := h.rt.RemovePodSandbox(h.ctx, id); err != nil {
			t.Fatalf("RemovePodSandbox #%d: %v", i+1, err)
		}
	}
	if _, err := h.rt.PodSandboxStatus(h.ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status after remove: %v, want ErrNotFound", err)
	}
	if err := h.rt.StopPodSandbox(h.ctx, "no-such-sandbox"); err != nil {
		t.Errorf("StopPodSandbox(unknown) = %v, want nil", err)
	}
	if _, err := h.rt.CreateContainer(h.ctx, "no-such-sandbox", h.containerConfigFor("c")); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("CreateContainer in unknown sandbox: %v, want ErrNotFound", err)
	}
}

// containerConfigFor is a config that needs no sandbox (for error cases).
func (h *harness) containerConfigFor(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{Name: name, Image: h.s.Image, Command: []string{"sh", "-c", "exit 0"}, LogPath: h.logRoot + "/" + name + ".log"}
}

func testContainerLifecycle(t *testing.T, h *harness) {
	sb := h.sandbox("lifecycle")
	cfg := h.containerConfig(sb, "app", idleCmd)
	cfg.Attempt = 2
	id := h.create(sb, cfg)
	st := h.status(id)
	if st.State != runtime.ContainerCreated || st.ID != id || st.SandboxID != sb || st.Name != "app" || st.Attempt != 2 ||
		st.Image != h.s.Image || st.LogPath != cfg.LogPath || st.CreatedAt.IsZero() || !st.StartedAt.IsZero() {
		t.Errorf("created status = %+v", st)
	}
	if st.Labels["io.kubernetes.container.name"] != "app" || st.Annotations["io.kubernetes.container.restartCount"] != "0" {
		t.Errorf("labels/annotations = %v / %v", st.Labels, st.Annotations)
	}
	h.start(id)
	st = h.status(id)
	h.waitLog(cfg.LogPath, "ready")
	if st.State != runtime.ContainerRunning || st.StartedAt.IsZero() {
		t.Errorf("started status = %+v, want Running with StartedAt", st)
	}
	if err := h.rt.StartContainer(h.ctx, id); err == nil {
		t.Errorf("starting a running container again succeeded")
	}
	if err := h.rt.StopContainer(h.ctx, id, 10*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st = h.status(id)
	if st.State != runtime.ContainerExited || st.ExitCode != 0 || st.Reason != "Completed" || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("stopped status = %+v, want Exited 0 Completed", st)
	}
}

func testExitCodes(t *testing.T, h *harness) {
	sb := h.sandbox("exits")
	for _, tc := range []struct {
		script string
		code   int32
		reason string
	}{
		{"exit 0", 0, "Completed"},
		{"exit 1", 1, "Error"},
		{"exit 42", 42, "Error"},
		{"echo bye; exit 3", 3, "Error"},
	} {
		id, _ := h.run(sb, "exit-"+strconv.Itoa(int(tc.code)), tc.script)
		st := h.waitState(id, runtime.ContainerExited)
		if st.ExitCode != tc.code || st.Reason != tc.reason || st.Signal != 0 {
			t.Errorf("%q: exit %d reason %q signal %d, want %d %q 0", tc.script, st.ExitCode, st.Reason, st.Signal, tc.code, tc.reason)
		}
		if st.StartedAt.IsZero() || st.FinishedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
			t.Errorf("%q: started %v finished %v", tc.script, st.StartedAt, st.FinishedAt)
		}
	}
}

func testStartError(t *testing.T, h *harness) {
	sb := h.sandbox("starterr")
	cfg := h.containerConfig(sb, "bad", "")
	cfg.Command = []string{"/no/such/binary"}
	cfg.Args = nil
	id := h.create(sb, cfg)
	err := h.rt.StartContainer(h.ctx, id)
	if err == nil {
		t.Fatalf("StartContainer of a missing binary succeeded")
	}
	st := h.waitState(id, runtime.ContainerExited)
	if st.ExitCode != 128 || st.Reason != "StartError" || st.Message == "" {
		t.Errorf("status = exit %d reason %q message %q, want 128 StartError with a message", st.ExitCode, st.Reason, st.Message)
	}
}

func testStopGraceful(t *testing.T, h *harness) {
	sb := h.sandbox("graceful")
	id := h.runIdle(sb, "app")
	begin := time.Now()
	if err := h.rt.StopContainer(h.ctx, id, 20*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("stopping a container that exits on SIGTERM took %v", d)
	}
	st := h.status(id)
	if st.State != runtime.ContainerExited || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("status = %v exit %d %q, want Exited 0 Completed", st.State, st.ExitCode, st.Reason)
	}
}

func testStopIgnoringSIGTERM(t *testing.T, h *harness) {
	sb := h.sandbox("stubborn")
	id, cfg := h.run(sb, "app", "trap '' TERM; echo ready; while true; do sleep 0.1; done")
	h.waitLog(cfg.LogPath, "ready")
	begin := time.Now()
	if err := h.rt.StopContainer(h.ctx, id, time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	d := time.Since(begin)
	if d < 900*time.Millisecond || d > 6*time.Second {
		t.Errorf("stop took %v, want about the 1s timeout", d)
	}
	st := h.status(id)
	if st.State != runtime.ContainerExited || st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("status = %v exit %d %q, want Exited 137 Error", st.State, st.ExitCode, st.Reason)
	}
}

func testIdempotent(t *testing.T, h *harness) {
	sb := h.sandbox("twice")
	id, _ := h.run(sb, "app", "exit 0")
	h.waitState(id, runtime.ContainerExited)
	for i := 0; i < 2; i++ {
		if err := h.rt.StopContainer(h.ctx, id, time.Second); err != nil {
			t.Errorf("StopContainer #%d: %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := h.rt.RemoveContainer(h.ctx, id); err != nil {
			t.Errorf("RemoveContainer #%d: %v", i+1, err)
		}
	}
	if _, err := h.rt.ContainerStatus(h.ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStatus after remove: %v, want ErrNotFound", err)
	}
	if err := h.rt.StopContainer(h.ctx, "no-such-container", time.Second); err != nil {
		t.Errorf("StopContainer(unknown) = %v", err)
	}
	if err := h.rt.RemoveContainer(h.ctx, "no-such-container"); err != nil {
		t.Errorf("RemoveContainer(unknown) = %v", err)
	}
	if _, err := h.rt.ContainerStatus(h.ctx, "no-such-container"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStatus(unknown): %v, want ErrNotFound", err)
	}
	if err := h.rt.StartContainer(h.ctx, "no-such-container"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("StartContainer(unknown): %v, want ErrNotFound", err)
	}
	// Removing a running container kills it.
	running := h.runIdle(sb, "running")
	if err := h.rt.RemoveContainer(h.ctx, running); err != nil {
		t.Fatalf("RemoveContainer(running): %v", err)
	}
	if _, err := h.rt.ContainerStatus(h.ctx, running); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStatus after removing a running container: %v", err)
	}
	list, _ := h.rt.ListContainers(h.ctx, runtime.ContainerFilter{})
	if len(list) != 0 {
		t.Errorf("ListContainers after removals = %d containers", len(list))
	}
}

func testMainExitEndsContainer(t *testing.T, h *harness) {
	// When the main process exits the container is over, even if it left
	// a background process holding its stdout.
	sb := h.sandbox("bg")
	id, _ := h.run(sb, "app", "sleep 30 & echo started")
	st := h.waitState(id, runtime.ContainerExited)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}
	if d := st.FinishedAt.Sub(st.StartedAt); d > 5*time.Second {
		t.Errorf("container took %v to finish", d)
	}
}

func testLogs(t *testing.T, h *harness) {
	sb := h.sandbox("logs")
	id, cfg := h.run(sb, "app", "echo out; echo err >&2; echo out2; printf 'no newline'")
	h.waitState(id, runtime.ContainerExited)
	entries, err := readLog(cfg.LogPath)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	got := map[string][]string{}
	var last time.Time
	for _, e := range entries {
		got[e.Stream] = append(got[e.Stream], e.Tag+" "+e.Content)
		if e.Time.Before(last.Add(-time.Second)) {
			t.Errorf("timestamps go backwards: %v after %v", e.Time, last)
		}
		last = e.Time
	}
	want := map[string][]string{
		"stdout": {"F out", "F out2", "P no newline"},
		"stderr": {"F err"},
	}
	for stream, lines := range want {
		if strings.Join(got[stream], "|") != strings.Join(lines, "|") {
			t.Errorf("%s entries = %q, want %q", stream, got[stream], lines)
		}
	}
}

func testLogsLongLine(t *testing.T, h *harness) {
	sb := h.sandbox("longlog")
	// 20000 characters on one line.
	script := `s=aaaaaaaaaa; s=$s$s$s$s$s$s$s$s$s$s; s=$s$s$s$s$s$s$s$s$s$s; s=$s$s$s$s$s$s$s$s$s$s; s=$s$s; echo "$s"; echo short`
	id, cfg := h.run(sb, "app", script)
	h.waitState(id, runtime.ContainerExited)
	entries, err := readLog(cfg.LogPath)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	var line strings.Builder
	var tags []string
	for _, e := range entries {
		if len(e.Content) > 16*1024 {
			t.Errorf("entry of %d bytes, want at most 16KiB", len(e.Content))
		}
		tags = append(tags, e.Tag)
		line.WriteString(e.Content)
		if e.Tag == "F" {
			break
		}
	}
	if line.String() != strings.Repeat("a", 20000) {
		t.Errorf("reassembled line has %d bytes, want 20000 a's", line.Len())
	}
	if len(tags) < 2 || tags[0] != "P" || tags[len(tags)-1] != "F" {
		t.Errorf("tags = %v, want P... then F", tags)
	}
	if e := entries[len(entries)-1]; e.Tag != "F" || e.Content != "short" {
		t.Errorf("last entry = %+v, want F short", e)
	}
}

func testEnvAndWorkingDir(t *testing.T, h *harness) {
	sb := h.sandbox("env")
	id, cfg := h.run(sb, "app", `echo "foo=$FOO"; echo "pwd=$(pwd)"; echo "hostname=$HOSTNAME"`, func(c *runtime.ContainerConfig) {
		c.Env = []runtime.KeyValue{{Key: "FOO", Value: "bar baz"}}
		c.WorkingDir = "/tmp"
	})
	h.waitState(id, runtime.ContainerExited)
	entries, err := readLog(cfg.LogPath)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	var lines []string
	for _, e := range entries {
		lines = append(lines, e.Content)
	}
	want := []string{"foo=bar baz", "pwd=/tmp", "hostname=env"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("output = %q, want %q", lines, want)
	}
}

func testExecSync(t *testing.T, h *harness) {
	sb := h.sandbox("execsync")
	id := h.runIdle(sb, "app", func(c *runtime.ContainerConfig) {
		c.Env = []runtime.KeyValue{{Key: "FOO", Value: "bar"}}
	})
	for _, tc := range []struct {
		cmd            []string
		stdout, stderr string
		code           int
	}{
		{[]string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}, "hi\n", "oops\n", 3},
		{[]string{"sh", "-c", `echo "$FOO"`}, "bar\n", "", 0},
		{[]string{"echo", "plain"}, "plain\n", "", 0},
		{[]string{"cat", "/no/such/file"}, "", "", 1},
	} {
		stdout, stderr, code, err := h.rt.ExecSync(h.ctx, id, tc.cmd, 5*time.Second)
		if err != nil {
			t.Errorf("ExecSync(%q): %v", tc.cmd, err)
			continue
		}
		if string(stdout) != tc.stdout || code != tc.code || (tc.stderr != "" && string(stderr) != tc.stderr) {
			t.Errorf("ExecSync(%q) = %q, %q, %d; want %q, %q, %d", tc.cmd, stdout, stderr, code, tc.stdout, tc.stderr, tc.code)
		}
		if tc.cmd[0] == "cat" && len(stderr) == 0 {
			t.Errorf("ExecSync(%q): no stderr", tc.cmd)
		}
	}
	if _, _, _, err := h.rt.ExecSync(h.ctx, "no-such-container", []string{"true"}, time.Second); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ExecSync(unknown): %v, want ErrNotFound", err)
	}
	if err := h.rt.StopContainer(h.ctx, id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := h.rt.ExecSync(h.ctx, id, []string{"true"}, time.Second); err == nil {
		t.Errorf("ExecSync in an exited container succeeded")
	}
}

func testExecSyncTimeout(t *testing.T, h *harness) {
	sb := h.sandbox("exectimeout")
	id := h.runIdle(sb, "app")
	begin := time.Now()
	_, _, _, err := h.rt.ExecSync(h.ctx, id, []string{"sleep", "10"}, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ExecSync past its timeout: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(begin); d > 4*time.Second {
		t.Errorf("ExecSync with a 300ms timeout took %v", d)
	}
}

func testExec(t *testing.T, h *harness) {
	sb := h.sandbox("exec")
	id := h.runIdle(sb, "app")

	var out, errOut syncBuffer
	err := h.rt.Exec(h.ctx, id, []string{"cat"}, runtime.Streams{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || out.String() != "hello\nworld\n" {
		t.Errorf("Exec(cat) = %v, stdout %q; want nil, the input", err, out.String())
	}

	var out2, errOut2 syncBuffer
	err = h.rt.Exec(h.ctx, id, []string{"sh", "-c", "echo to-out; echo to-err >&2; exit 7"}, runtime.Streams{Stdout: &out2, Stderr: &errOut2})
	var ee *runtime.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Errorf("Exec(exit 7) = %v, want ExitError 7", err)
	}
	if out2.String() != "to-out\n" || errOut2.String() != "to-err\n" {
		t.Errorf("Exec output = %q / %q", out2.String(), errOut2.String())
	}

	// A cancelled context ends a command that would run for long.
	ctx, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := h.rt.Exec(ctx, id, []string{"sleep", "10"}, runtime.Streams{}); err == nil {
		t.Errorf("Exec with a cancelled context returned nil")
	}
	if d := time.Since(begin); d > 4*time.Second {
		t.Errorf("cancelled Exec took %v", d)
	}
}

func testExecTTY(t *testing.T, h *harness) {
	sb := h.sandbox("exectty")
	id := h.runIdle(sb, "app")
	resize := make(chan runtime.TermSize, 1)
	resize <- runtime.TermSize{Width: 100, Height: 40}
	var out syncBuffer
	err := h.rt.Exec(h.ctx, id, []string{"sh", "-c", "test -t 0 && echo is-a-tty; stty size"}, runtime.Streams{
		Stdout: &out, TTY: true, Resize: resize,
	})
	if err != nil {
		t.Fatalf("Exec(tty): %v", err)
	}
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if got != "is-a-tty\n40 100\n" {
		t.Errorf("tty output = %q, want %q", got, "is-a-tty\n40 100\n")
	}
}

func testAttach(t *testing.T, h *harness) {
	sb := h.sandbox("attach")
	id, _ := h.run(sb, "app", "cat; echo done", func(c *runtime.ContainerConfig) {
		c.Stdin = true
		c.StdinOnce = true
	})
	h.waitState(id, runtime.ContainerRunning)
	pr, pw := io.Pipe()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- h.rt.Attach(h.ctx, id, runtime.Streams{Stdin: pr, Stdout: &out, Stderr: &out}) }()
	if _, err := pw.Write([]byte("hello\n")); err != nil {
		t.Fatalf("write stdin: %v", err)
	}
	h.eventually("attached output", func() bool { return out.String() == "hello\n" })
	pw.Close() // StdinOnce: closing the attach stdin closes the container's
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Attach: %v", err)
		}
	case <-time.After(h.s.Timeout):
		t.Fatalf("Attach did not return after the container's stdin closed")
	}
	if out.String() != "hello\ndone\n" {
		t.Errorf("attach output = %q, want %q", out.String(), "hello\ndone\n")
	}
	st := h.waitState(id, runtime.ContainerExited)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}
}

func testPortForward(t *testing.T, h *harness) {
	sb := h.sandbox("pf")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "pong "+line)
			}()
		}
	}()
	port := int32(l.Addr().(*net.TCPAddr).Port)

	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- h.rt.PortForward(h.ctx, sb, port, server) }()
	if _, err := io.WriteString(client, "ping\n"); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(h.s.Timeout))
	reply, err := bufio.NewReader(client).ReadString('\n')
	if err != nil {
		t.Errorf("read reply: %v", err)
	}
	client.Close()
	if reply != "pong ping\n" {
		t.Errorf("reply = %q, want %q", reply, "pong ping\n")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("PortForward: %v", err)
		}
	case <-time.After(h.s.Timeout):
		t.Fatalf("PortForward did not return after both sides closed")
	}
	server.Close() // the caller owns the stream

	_, srv := net.Pipe()
	if err := h.rt.PortForward(h.ctx, "no-such-sandbox", port, srv); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("PortForward(unknown sandbox): %v, want ErrNotFound", err)
	}
	l.Close()
	_, srv = net.Pipe()
	if err := h.rt.PortForward(h.ctx, sb, port, srv); err == nil {
		t.Errorf("PortForward to a closed port succeeded")
	}
}

func testListContainers(t *testing.T, h *harness) {
	sb1 := h.sandbox("list1")
	sb2 := h.sandbox("list2")
	a := h.runIdle(sb1, "a", func(c *runtime.ContainerConfig) { c.Labels["tier"] = "web" })
	b, _ := h.run(sb1, "b", "exit 0", func(c *runtime.ContainerConfig) { c.Labels["tier"] = "web" })
	cfgC := h.containerConfig(sb2, "c", idleCmd)
	c := h.create(sb2, cfgC) // stays Created
	h.waitState(a, runtime.ContainerRunning)
	h.waitState(b, runtime.ContainerExited)

	running, exited, created := runtime.ContainerRunning, runtime.ContainerExited, runtime.ContainerCreated
	for _, tc := range []struct {
		name   string
		filter runtime.ContainerFilter
		want   []string
	}{
		{"all", runtime.ContainerFilter{}, []string{a, b, c}},
		{"sandbox", runtime.ContainerFilter{SandboxID: sb1}, []string{a, b}},
		{"other sandbox", runtime.ContainerFilter{SandboxID: sb2}, []string{c}},
		{"running", runtime.ContainerFilter{State: &running}, []string{a}},
		{"exited", runtime.ContainerFilter{State: &exited}, []string{b}},
		{"created", runtime.ContainerFilter{State: &created}, []string{c}},
		{"label", runtime.ContainerFilter{Labels: map[string]string{"tier": "web"}}, []string{a, b}},
		{"label and state", runtime.ContainerFilter{State: &exited, Labels: map[string]string{"tier": "web"}}, []string{b}},
		{"label value differs", runtime.ContainerFilter{Labels: map[string]string{"tier": "db"}}, nil},
		{"unknown sandbox", runtime.ContainerFilter{SandboxID: "nope"}, nil},
	} {
		list, err := h.rt.ListContainers(h.ctx, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := map[string]bool{}
		for _, st := range list {
			got[st.ID] = true
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d containers, want %d", tc.name, len(got), len(tc.want))
			continue
		}
		for _, id := range tc.want {
			if !got[id] {
				t.Errorf("%s: missing %s", tc.name, id)
			}
		}
	}
}

func testEvents(t *testing.T, h *harness) {
	sb := h.sandbox("events")
	id, _ := h.run(sb, "app", "sleep 0.2")
	want := []runtime.ContainerEventType{runtime.ContainerCreatedEvent, runtime.ContainerStartedEvent, runtime.ContainerStoppedEvent}
	h.eventually("created, started and stopped events", func() bool { return len(h.eventsFor(id)) >= 3 })
	if got := h.eventsFor(id); !equalEvents(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if st := h.status(id); st.State != runtime.ContainerExited {
		t.Errorf("after the stopped event the container is %v", st.State)
	}
	if err := h.rt.RemoveContainer(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	want = append(want, runtime.ContainerDeletedEvent)
	h.eventually("deleted event", func() bool { return len(h.eventsFor(id)) >= 4 })
	if got := h.eventsFor(id); !equalEvents(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func equalEvents(a, b []runtime.ContainerEventType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testStats(t *testing.T, h *harness) {
	sb := h.sandbox("stats")
	id := h.runIdle(sb, "app")
	st, err := h.rt.ContainerStats(h.ctx, id)
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if st.Timestamp.IsZero() || st.MemoryWorkingSetBytes == 0 {
		t.Errorf("stats = %+v, want a timestamp and some memory", st)
	}
	if _, err := h.rt.ContainerStats(h.ctx, "no-such-container"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ContainerStats(unknown): %v, want ErrNotFound", err)
	}
}

func testImages(t *testing.T, h *harness) {
	pulled, err := h.rt.PullImage(h.ctx, h.s.Image, nil)
	if err != nil {
		t.Fatalf("PullImage(%s): %v", h.s.Image, err)
	}
	if pulled.ID == "" || pulled.Ref == "" {
		t.Errorf("PullImage = %+v, want Ref and ID", pulled)
	}
	st, err := h.rt.ImageStatus(h.ctx, h.s.Image)
	if err != nil {
		t.Fatalf("ImageStatus(%s): %v", h.s.Image, err)
	}
	if st.ID != pulled.ID {
		t.Errorf("ImageStatus ID %q, PullImage ID %q", st.ID, pulled.ID)
	}
}
