package process

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxLogLine is containerd's default max_container_log_line_size: longer
// lines are split into partial ("P") entries.
const maxLogLine = 16 * 1024

// Stream names and tags of the CRI log format.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
	tagFull      = 'F'
	tagPartial   = 'P'
)

// logFile is a CRI-format log file shared by the stdout and stderr copiers.
// Reopen lets a log rotator move the file away.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
	now  func() time.Time
	buf  []byte
}

func openLogFile(path string, now func() time.Time) (*logFile, error) {
	l := &logFile{path: path, now: now}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reopen (re)opens the log path for appending.
func (l *logFile) Reopen() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// writeEntry appends one "<time> <stream> <tag> <content>\n" entry in a
// single write.
func (l *logFile) writeEntry(stream string, tag byte, content []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	b := l.now().AppendFormat(l.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, content...)
	b = append(b, '\n')
	l.buf = b[:0]
	_, err := l.f.Write(b)
	return err
}

// copyLog copies r into l as stream until r ends, the way containerd's
// redirectLogs does: one F entry per line ("\n" or "\r\n" stripped), lines
// over maxLen split into P entries, an unterminated last line written as P.
func copyLog(l *logFile, stream string, r io.Reader, maxLen int) error {
	br := bufio.NewReaderSize(r, maxLen)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		complete := err == nil
		if complete {
			chunk = bytes.TrimSuffix(chunk[:len(chunk)-1], []byte{'\r'})
		}
		line = append(line, chunk...)
		for len(line) > maxLen {
			if werr := l.writeEntry(stream, tagPartial, line[:maxLen]); werr != nil {
				return werr
			}
			line = append(line[:0], line[maxLen:]...)
		}
		switch {
		case complete:
			if werr := l.writeEntry(stream, tagFull, line); werr != nil {
				return werr
			}
			line = line[:0]
		case errors.Is(err, bufio.ErrBufferFull):
			// the line goes on
		default:
			if len(line) > 0 {
				if werr := l.writeEntry(stream, tagPartial, line); werr != nil {
					return werr
				}
			}
			if err == io.EOF || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// logEntry is one parsed line of a CRI log file.
type logEntry struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content []byte
}

// parseLogEntry parses one line (without its trailing newline) of a CRI
// log file, as the kubelet does.
func parseLogEntry(line []byte) (logEntry, error) {
	var e logEntry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, errors.New("timestamp is not found")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, err
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || (string(stream) != streamStdout && string(stream) != streamStderr) {
		return e, errors.New("stream type is not found")
	}
	tag, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return e, errors.New("log tag is not found")
	}
	e.Time = t
	e.Stream = string(stream)
	e.Partial = len(tag) > 0 && tag[0] == tagPartial
	e.Content = content
	return e, nil
}
