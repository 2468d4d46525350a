package kubelet

import (
	"context"
	"fmt"
	"io"
	"os"

	"k1s.dev/k1s/pkg/kubelet/podstate"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	crilogs "k8s.io/cri-client/pkg/logs"
)

// Termination message bounds (upstream's).
const (
	maxTerminationMessageLength    = 1024 * 4
	maxTerminationMessageLogLength = 1024 * 2
	maxTerminationMessageLogLines  = 80
)

// addTerminationMessage appends the container's termination message (its
// terminationMessagePath file, or the tail of its log for
// FallbackToLogsOnError after a failure) to the runtime's message. It is
// read once per container and cached.
func (k *Kubelet) addTerminationMessage(c *runtime.ContainerStatus) {
	var msg string
	if v, ok := k.termMsgs.Load(c.ID); ok {
		msg = v.(string)
	} else {
		msg = readTerminationMessage(c)
		k.termMsgs.Store(c.ID, msg)
	}
	if msg == "" {
		return
	}
	if c.Message != "" {
		c.Message += ": "
	}
	c.Message += msg
}

func readTerminationMessage(c *runtime.ContainerStatus) string {
	fallback := c.Annotations[podstate.AnnotationTerminationMessagePolicy] == string(v1.TerminationMessageFallbackToLogsOnError) &&
		c.ExitCode != 0 && c.Reason != "ContainerCannotRun"
	checkLogs := fallback
	var msg string
	if path := c.Annotations[podstate.AnnotationTerminationMessageHostPath]; path != "" {
		data, err := readTail(path, maxTerminationMessageLength)
		switch {
		case os.IsNotExist(err):
		case err != nil:
			return fmt.Sprintf("Error on reading termination log %s: %v", path, err)
		default:
			msg = string(data)
			checkLogs = fallback && len(data) == 0
		}
	}
	if checkLogs && c.LogPath != "" {
		msg = lastLogLines(c.LogPath, maxTerminationMessageLogLines, maxTerminationMessageLogLength)
	}
	return msg
}

// readTail reads at most max bytes from the end of a file.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(f)
}

// ringBuffer keeps the last n bytes written to it.
type ringBuffer struct {
	n   int
	buf []byte
}

func (r *ringBuffer) Write(p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	if len(r.buf) > r.n {
		r.buf = r.buf[len(r.buf)-r.n:]
	}
	return len(p), nil
}

// lastLogLines returns the last lines of a CRI log file, bounded in bytes.
func lastLogLines(path string, lines int64, maxBytes int) string {
	buf := &ringBuffer{n: maxBytes}
	if err := crilogs.ReadLogs(context.Background(), path, "", &crilogs.LogOptions{TailLines: &lines}, nil, buf, buf); err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return string(buf.buf)
}
