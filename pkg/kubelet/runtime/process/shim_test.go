package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// entry is one CRI log entry without its time.
type entry struct {
	Tag     string
	Content string
}

// readEntries returns the entries of a CRI log, by stream.
func readEntries(t *testing.T, path string) map[string][]entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]entry{}
	for _, line := range bytes.SplitAfter(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		if line[len(line)-1] != '\n' {
			t.Fatalf("unterminated log entry %q", line)
		}
		e, err := parseLogEntry(line[:len(line)-1])
		if err != nil {
			t.Fatalf("log entry %.80q: %v", line, err)
		}
		tag := "F"
		if e.Partial {
			tag = "P"
		}
		out[e.Stream] = append(out[e.Stream], entry{tag, string(e.Content)})
	}
	return out
}

// goEntries is what copyLog, the reference implementation of the CRI log
// format, writes for input.
func goEntries(t *testing.T, input string) []entry {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ref.log")
	l, err := openLogFile(path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := copyLog(l, streamStdout, strings.NewReader(input), maxLogLine); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return readEntries(t, path)[streamStdout]
}

// The shim splits and tags lines exactly as copyLog does, whatever sizes
// the process writes its output in.
func TestShimLogFormat(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	cases := map[string]string{
		"lines":              "one\ntwo\n\nfour\n",
		"unterminated":       "a\nrest",
		"crlf":               "tty\r\n\r\nx\ry\r\r\n",
		"lone cr at the end": "abc\r",
		"spaces and tabs":    "a b\t c  \n",
	}
	for _, n := range []int{maxLogLine - 1, maxLogLine, maxLogLine + 1, 2*maxLogLine - 1, 2 * maxLogLine, 2*maxLogLine + 1, 3*maxLogLine + 5} {
		cases["long "+itoa(n)] = a(n) + "\nnext\n"
		cases["long cr "+itoa(n)] = a(n-1) + "\r\nnext\r\n"
		cases["long unterminated "+itoa(n)] = "x\n" + a(n)
		cases["long cr unterminated "+itoa(n)] = a(n-1) + "\r"
	}
	f := newFixture(t)
	inputs := t.TempDir()
	i := 0
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			file := filepath.Join(inputs, itoa(i))
			if err := os.WriteFile(file, []byte(input), 0o644); err != nil {
				t.Fatal(err)
			}
			// stdout in one write (mostly), stderr in odd small ones.
			cfg := f.config("log"+itoa(i), "sh", "-c", `cat "$0"; dd if="$0" bs=4099 status=none >&2`, file)
			id := f.run(cfg)
			if st := f.waitExited(f.r, id); st.ExitCode != 0 {
				t.Fatalf("exit code %d", st.ExitCode)
			}
			want := goEntries(t, input)
			got := readEntries(t, cfg.LogPath)
			for _, stream := range []string{streamStdout, streamStderr} {
				if diff := cmp.Diff(abbreviate(want), abbreviate(got[stream])); diff != "" {
					t.Errorf("%s entries (-copyLog +shim):\n%s", stream, diff)
				}
			}
		})
	}
}

// abbreviate keeps long entries readable in diffs.
func abbreviate(es []entry) []string {
	var out []string
	for _, e := range es {
		c := e.Content
		if len(c) > 40 {
			c = c[:10] + "..." + c[len(c)-10:] + " (" + itoa(len(c)) + " bytes)"
		}
		out = append(out, e.Tag+" "+c)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// Start errors are reported with containerd's wording.
func TestShimStartErrors(t *testing.T) {
	f := newFixture(t)
	tmp := t.TempDir()
	noExec := filepath.Join(tmp, "noexec")
	badFormat := filepath.Join(tmp, "badformat")
	aFile := filepath.Join(tmp, "file")
	for path, mode := range map[string]os.FileMode{noExec: 0o644, badFormat: 0o755, aFile: 0o644} {
		if err := os.WriteFile(path, []byte("\x00\x01\x02 not a program\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*runtime.ContainerConfig)
		want   string
	}{
		{"not found", func(c *runtime.ContainerConfig) { c.Command = []string{"no-such-program-k1s"} },
			`failed to start container process: exec: "no-such-program-k1s": executable file not found in $PATH`},
		{"missing path", func(c *runtime.ContainerConfig) { c.Command = []string{tmp + "/missing"} },
			`failed to start container process: exec: "` + tmp + `/missing": stat ` + tmp + `/missing: no such file or directory`},
		{"not executable", func(c *runtime.ContainerConfig) { c.Command = []string{noExec} },
			`failed to start container process: exec: "` + noExec + `": permission denied`},
		{"relative, not executable", func(c *runtime.ContainerConfig) { c.Command = []string{"./noexec"}; c.WorkingDir = tmp },
			`failed to start container process: exec: "./noexec": permission denied`},
		{"exec format", func(c *runtime.ContainerConfig) { c.Command = []string{badFormat} },
			`failed to start container process: fork/exec ` + badFormat + `: exec format error`},
		{"working dir is a file", func(c *runtime.ContainerConfig) { c.WorkingDir = aFile },
			`failed to start container process: chdir to cwd ("` + aFile + `") set in config failed: not a directory`},
		{"log dir is a file", func(c *runtime.ContainerConfig) { c.LogPath = filepath.Join(aFile, "sub", "0.log") },
			`failed to create container log "` + filepath.Join(aFile, "sub", "0.log") + `": mkdir ` + aFile + `: not a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(strings.ReplaceAll(tc.name, " ", "-"), "true")
			tc.mutate(cfg)
			id, err := f.r.CreateContainer(f.ctx, f.sb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = f.r.StartContainer(f.ctx, id)
			if err == nil || err.Error() != tc.want {
				t.Errorf("StartContainer error:\n got %v\nwant %s", err, tc.want)
			}
			st := statusOf(t, f.r, id)
			if st.State != runtime.ContainerExited || st.ExitCode != 128 || st.Reason != "StartError" || st.Message != tc.want {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

// `k1s shim --dir D --report-fd 3` typed by hand (without K1S_SHIM) runs the
// shim too: ShimMain re-executes the binary so that the C shim runs.
func TestShimStartedByHand(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("byhand", "sh", "-c", "echo hello; exec sleep 30")
	id, err := f.r.CreateContainer(f.ctx, f.sb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := f.r.getContainer(id)
	if err := writeShimSpec(c.dir, &c.spec); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "shim", "--dir", c.dir, "--report-fd", "3")
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, shimMarkerEnv+"=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, shimEnv+"=1")
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var st shimState
	if err := json.NewDecoder(bufio.NewReader(pr)).Decode(&st); err != nil {
		t.Fatalf("report: %v", err)
	}
	if st.Status != statusRunning || st.ShimPID != cmd.Process.Pid || st.PID == 0 {
		t.Fatalf("report = %+v, want running with shim pid %d", st, cmd.Process.Pid)
	}
	checkShimProcess(t, st.ShimPID)
	f.waitLog(cfg, "stdout F hello\n")
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} { // ignored by the shim
		if err := unix.Kill(cmd.Process.Pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Kill(-st.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shim: %v", err)
	}
	st = readState(t, f.r, id)
	if st.Status != statusExited || st.ExitCode != 137 || st.Signal != 9 || st.Reason != reasonError || st.FinishedAt.IsZero() {
		t.Errorf("state = %+v, want exited 137 by SIGKILL", st)
	}
}

// Every shim the runtime starts is the C one.
func TestShimIsSmall(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("small", "sh", "-c", "echo ready; exec sleep 30")
	id := f.run(cfg)
	f.waitLog(cfg, "ready")
	checkShimProcess(t, readState(t, f.r, id).ShimPID)
	if err := f.r.StopContainer(f.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
}

// Input larger than the shim's buffers goes through whole, while the
// container's output keeps flowing (no dead lock between the two).
func TestShimLargeStdin(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("bigcat", "cat")
	cfg.Stdin, cfg.StdinOnce = true, true
	id := f.run(cfg)
	var in strings.Builder
	const lines = 50000
	for i := range lines {
		in.WriteString("line " + itoa(i) + "\n")
	}
	out := &lockedBuffer{}
	if err := f.r.Attach(f.ctx, id, runtime.Streams{Stdin: strings.NewReader(in.String()), Stdout: out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != in.String() {
		t.Errorf("attach output: %d bytes, want %d", len(out.String()), in.Len())
	}
	if st := f.waitExited(f.r, id); st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
	if got := readEntries(t, cfg.LogPath)[streamStdout]; len(got) != lines || got[lines-1] != (entry{"F", "line " + itoa(lines-1)}) {
		t.Errorf("log has %d entries, want %d", len(got), lines)
	}
}

// Without StdinOnce, the stdin stays open across attaches.
func TestShimStdinAcrossAttaches(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("reader", "sh", "-c", `while read x; do echo "got $x"; [ "$x" = last ] && exit 0; done`)
	cfg.Stdin = true
	id := f.run(cfg)
	for _, word := range []string{"first", "second", "last"} {
		ctx, cancel := context.WithCancel(f.ctx)
		done := make(chan error, 1)
		go func() {
			done <- f.r.Attach(ctx, id, runtime.Streams{Stdin: strings.NewReader(word + "\n"), Stdout: &lockedBuffer{}})
		}()
		f.waitLog(cfg, "stdout F got "+word+"\n")
		cancel()
		<-done
	}
	if st := f.waitExited(f.r, id); st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
}

// When the main process exits, processes that escaped its process group
// (re-parented to the shim, a subreaper) are killed and reaped too.
func TestShimKillsEscapedProcesses(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("escape", "sh", "-c", `setsid sleep 60 & echo "escaped $!"; sleep 0.2`)
	id := f.run(cfg)
	st := f.waitExited(f.r, id)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
	e := readEntries(t, cfg.LogPath)[streamStdout]
	if len(e) != 1 || !strings.HasPrefix(e[0].Content, "escaped ") {
		t.Fatalf("log = %v", e)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(e[0].Content, "escaped "))
	if err != nil {
		t.Fatal(err)
	}
	if alive(pid, 0) {
		t.Errorf("escaped process %d still runs", pid)
	}
}

// The output of a TTY container is complete even when it exits at once.
func TestShimTTYOutputComplete(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("seq", "seq", "1", "20000")
	cfg.TTY = true
	id := f.run(cfg)
	if st := f.waitExited(f.r, id); st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
	e := readEntries(t, cfg.LogPath)[streamStdout]
	if len(e) != 20000 || e[0] != (entry{"F", "1"}) || e[19999] != (entry{"F", "20000"}) {
		t.Errorf("log has %d entries (first %v), want 1..20000", len(e), e[:min(len(e), 1)])
	}
}
