package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Agent is one `k1s agent` process started by a benchmark (a second node
// joining a Server). Only this process, by its PID, is ever signalled.
type Agent struct {
	DataDir  string
	NodeName string
	LogPath  string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// StartAgent execs `binary agent --server URL --token TOKEN --data-dir
// dataDir --node-name nodeName --kubelet-port 0 args...`; its output goes to
// dataDir + ".log". The token is read from the server's data dir.
func StartAgent(binary string, s *Server, dataDir, nodeName string, args ...string) (*Agent, error) {
	token, err := os.ReadFile(filepath.Join(s.DataDir, "node-token"))
	if err != nil {
		return nil, err
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{DataDir: dataDir, NodeName: nodeName, LogPath: dataDir + ".log", done: make(chan struct{})}
	a.logFile, err = os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	full := append([]string{"agent", "--server", s.URL, "--token", string(trimSpace(token)),
		"--data-dir", dataDir, "--node-name", nodeName, "--kubelet-port", "0"}, withDefaultRuntime(args)...)
	a.cmd = exec.Command(binary, full...)
	a.cmd.Stdout, a.cmd.Stderr = a.logFile, a.logFile
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		a.logFile.Close()
		return nil, err
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.done) }()
	return a, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// PID of the agent process.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Kill sends SIGKILL to the agent's PID (only that process: the shims of
// its containers live on, as they would on a real node) and waits for it.
func (a *Agent) Kill() error {
	defer a.logFile.Close()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-a.done
	return nil
}

// Stop sends SIGTERM to the agent's PID and waits for it to exit (SIGKILL
// to the same PID after 15 s).
func (a *Agent) Stop() error {
	defer a.logFile.Close()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-a.done:
		return nil
	case <-time.After(15 * time.Second):
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
		return fmt.Errorf("agent pid %d did not stop within 15s after SIGTERM (killed)", a.PID())
	}
}

// CopyFile copies an executable to dst (mode 0755), e.g. a private copy of
// the k1s binary for an agent that stands for another machine.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
