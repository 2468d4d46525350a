package backoff

import (
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// A container that exits one second after each start: the restarts wait
// 0, 10, 20, 40, ... 300, 300 seconds, as the reference shows.
func TestCrashLoopDelays(t *testing.T) {
	c := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tr := NewCrashLoop(c)
	want := []time.Duration{0, 10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		c.Step(time.Second) // the container ran one second
		finished := c.Now()
		waited := time.Duration(0)
		for {
			d := tr.Check("k", finished)
			if !d.InBackOff {
				break
			}
			if d.Until != finished.Add(d.Delay) {
				t.Fatalf("restart %d: until %v, want finished+%v", i, d.Until, d.Delay)
			}
			c.SetTime(d.Until)
			waited = c.Since(finished)
		}
		if waited != w*time.Second {
			t.Errorf("restart %d waited %v, want %v", i, waited, w*time.Second)
		}
	}
}

func TestCrashLoopMessageDelay(t *testing.T) {
	c := testingclock.NewFakeClock(time.Unix(1000, 0))
	tr := NewCrashLoop(c)
	tr.Check("k", c.Now()) // first exit: immediate restart
	c.Step(2 * time.Second)
	d := tr.Check("k", c.Now())
	if !d.InBackOff || d.Delay != 10*time.Second {
		t.Fatalf("second exit: %+v, want in back-off 10s", d)
	}
}

func TestCrashLoopResetAfterTenMinutes(t *testing.T) {
	cases := []struct {
		name string
		ran  time.Duration
		want bool // in back-off after the exit
	}{
		{"ran 9m59s", 9*time.Minute + 59*time.Second, true},
		{"ran 10m1s", 10*time.Minute + time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testingclock.NewFakeClock(time.Unix(1000, 0))
			tr := NewCrashLoop(c)
			tr.Check("k", c.Now()) // restart 1 (immediate), delay 10s
			c.Step(time.Second)
			f := c.Now()
			c.Step(10 * time.Second)
			tr.Check("k", f) // restart 2 after 10s, delay 20s
			c.Step(tc.ran)
			d := tr.Check("k", c.Now())
			if d.InBackOff != tc.want {
				t.Fatalf("in back-off = %v, want %v (%+v)", d.InBackOff, tc.want, d)
			}
			if !tc.want && d.Delay != CrashLoopInitial {
				t.Fatalf("delay after reset = %v, want %v", d.Delay, CrashLoopInitial)
			}
		})
	}
}

func TestImagePull(t *testing.T) {
	c := testingclock.NewFakeClock(time.Unix(1000, 0))
	tr := NewImagePull(c)
	if tr.InBackOffSinceUpdate("img", c.Now()) {
		t.Fatal("unknown key in back-off")
	}
	tr.Next("img", c.Now())
	if !tr.InBackOffSinceUpdate("img", c.Now().Add(9*time.Second)) {
		t.Fatal("not in back-off 9s after a failure")
	}
	if tr.InBackOffSinceUpdate("img", c.Now().Add(10*time.Second)) {
		t.Fatal("still in back-off 10s after a failure")
	}
}
