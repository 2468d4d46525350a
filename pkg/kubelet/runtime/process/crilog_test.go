package process

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cri-client/pkg/logs"
)

func TestCopyLog(t *testing.T) {
	ts := time.Date(2026, 11, 26, 15, 59, 59, 123456000, time.UTC)
	stamp := ts.Format(time.RFC3339Nano)
	for _, tc := range []struct {
		name   string
		input  string
		maxLen int
		want   []string
	}{
		{"empty", "", 8, nil},
		{"lines", "a\nbb\n", 8, []string{"F a", "F bb"}},
		{"empty line", "\n", 8, []string{"F "}},
		{"crlf stripped", "tty\r\n", 8, []string{"F tty"}},
		{"unterminated last line is partial", "a\nrest", 8, []string{"F a", "P rest"}},
		{"exactly max is full", "12345678\n", 8, []string{"F 12345678"}},
		{"long line split", "1234567890\n", 8, []string{"P 12345678", "F 90"}},
		{"very long line", "12345678abcdefghXY\n", 8, []string{"P 12345678", "P abcdefgh", "F XY"}},
		{"long unterminated", "12345678abc", 8, []string{"P 12345678", "P abc"}},
		{"spaces kept", "a b  c\n", 8, []string{"F a b  c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "0.log")
			l, err := openLogFile(path, func() time.Time { return ts })
			if err != nil {
				t.Fatal(err)
			}
			if err := copyLog(l, streamStdout, strings.NewReader(tc.input), tc.maxLen); err != nil {
				t.Fatal(err)
			}
			l.Close()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.SplitAfter(string(data), "\n") {
				if line == "" {
					continue
				}
				rest, ok := strings.CutPrefix(line, stamp+" stdout ")
				if !ok || !strings.HasSuffix(rest, "\n") {
					t.Fatalf("malformed entry %q", line)
				}
				got = append(got, strings.TrimSuffix(rest, "\n"))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

// The kubelet's own reader (cri-client's ReadLogs) gives back exactly what
// the process wrote, per stream.
func TestCopyLogReadByKubelet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, err := openLogFile(path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxLogLine+100)
	stdoutText := "hello\n" + long + "\nno newline"
	if err := copyLog(l, streamStdout, strings.NewReader(stdoutText), maxLogLine); err != nil {
		t.Fatal(err)
	}
	if err := copyLog(l, streamStderr, strings.NewReader("oops\n"), maxLogLine); err != nil {
		t.Fatal(err)
	}
	l.Close()
	var stdout, stderr bytes.Buffer
	if err := logs.ReadLogs(context.Background(), path, "", &logs.LogOptions{}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != stdoutText {
		t.Errorf("stdout read back: %d bytes, want %d", stdout.Len(), len(stdoutText))
	}
	if stderr.String() != "oops\n" {
		t.Errorf("stderr read back %q", stderr.String())
	}
}

func TestParseLogEntry(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    logEntry
		wantErr bool
	}{
		{line: "2026-11-26T15:59:59.5Z stdout F hello world", want: logEntry{Time: time.Date(2026, 11, 26, 15, 59, 59, 5e8, time.UTC), Stream: "stdout", Content: []byte("hello world")}},
		{line: "2026-11-26T15:59:59Z stderr P part", want: logEntry{Time: time.Date(2026, 11, 26, 15, 59, 59, 0, time.UTC), Stream: "stderr", Partial: true, Content: []byte("part")}},
		{line: "2026-11-26T15:59:59Z stdout F ", want: logEntry{Time: time.Date(2026, 11, 26, 15, 59, 59, 0, time.UTC), Stream: "stdout", Content: []byte{}}},
		{line: "nonsense", wantErr: true},
		{line: "2026-11-26T15:59:59Z stdin F x", wantErr: true},
		{line: "2026-11-26T15:59:59Z stdout", wantErr: true},
	} {
		got, err := parseLogEntry([]byte(tc.line))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v, wantErr %v", tc.line, err, tc.wantErr)
			continue
		}
		if err == nil {
			if !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Partial != tc.want.Partial || string(got.Content) != string(tc.want.Content) {
				t.Errorf("%q: got %+v, want %+v", tc.line, got, tc.want)
			}
		}
	}
}
