package lifecycle

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	testingclock "k8s.io/utils/clock/testing"
)

func TestRun(t *testing.T) {
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits = append(hits, r.URL.Path) }))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_ = host

	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := &v1.Container{Name: "c", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 1}}}
	exec := func(ctx context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, int, error) {
		if cmd[0] == "fail" {
			return []byte("out"), []byte("bad"), 2, nil
		}
		return nil, nil, 0, nil
	}
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	r := NewRunner(exec, clk)
	cases := []struct {
		name    string
		h       *v1.LifecycleHandler
		wantErr string
	}{
		{"exec ok", &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}, ""},
		{"exec fails", &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"fail"}}},
			`Exec lifecycle hook ([fail]) for Container "c" in Pod "p_ns(u)" failed - error: command 'fail' exited with 2: bad, message: "outbad"`},
		{"http ok", &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/hook", Port: intstr.Parse(port), Host: "127.0.0.1"}}, ""},
		{"http refused", &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/x", Port: intstr.FromInt32(1), Host: "127.0.0.1"}},
			`HTTP lifecycle hook (/x) for Container "c" in Pod "p_ns(u)" failed - error: `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := r.Run(context.Background(), "id", pod, c, tc.h, "127.0.0.1")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err %v (%s)", err, msg)
				}
				return
			}
			if err == nil || !strings.HasPrefix(msg, tc.wantErr) {
				t.Fatalf("msg %q err %v, want prefix %q", msg, err, tc.wantErr)
			}
		})
	}
	if len(hits) != 1 || hits[0] != "/hook" {
		t.Fatalf("hits %v", hits)
	}
}

func TestSleepHook(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	r := NewRunner(nil, clk)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	done := make(chan error)
	go func() {
		_, err := r.Run(context.Background(), "id", pod, &v1.Container{Name: "c"}, &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}, "")
		done <- err
	}()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msg, err := r.Run(ctx, "id", pod, &v1.Container{Name: "c"}, &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}, "")
	if err == nil || msg != `Sleep lifecycle hook (5) for Container "c" in Pod "p_ns(u)" failed - error: container terminated before sleep hook finished` {
		t.Fatalf("%q %v", msg, err)
	}
}
