package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestDrift(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(msOffsets ...int) []time.Time {
		var out []time.Time
		for _, o := range msOffsets {
			out = append(out, base.Add(time.Duration(o)*time.Millisecond))
		}
		return out
	}
	tests := []struct {
		name     string
		ts       []time.Time
		from, to int
		want     []time.Duration
	}{
		{"exact period", at(0, 1000, 2000), 0, 5000, ms(0, 0)},
		{"late and early", at(0, 1010, 1995), 0, 5000, ms(10, 15)},
		{"missed probe", at(0, 2000), 0, 5000, ms(1000)},
		{"outside the window ignored", at(0, 1000, 2003, 3000, 9000), 500, 3500, ms(3, 3)},
		{"one sample", at(100), 0, 5000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := drift(tt.ts, base.Add(time.Duration(tt.from)*time.Millisecond), base.Add(time.Duration(tt.to)*time.Millisecond), time.Second)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestHealthzTimes(t *testing.T) {
	raw := []byte("2026-11-26T19:27:11.206427501Z stdout F [Thu Nov 26 19:27:11 UTC 2026] k1s app probe-000: serving HTTP on [::]:20005\n" +
		"2026-11-26T19:27:12.157835485Z stdout F [Thu Nov 26 19:27:12 UTC 2026] probe-000 192.0.2.2:47722 GET /healthz 200\n" +
		"garbage\n" +
		"2026-11-26T19:27:12.5Z stdout F [Thu Nov 26 19:27:12 UTC 2026] probe-000 192.0.2.2:47723 GET /hostname 200\n" +
		"2026-11-26T19:27:13.024904219Z stdout F [Thu Nov 26 19:27:13 UTC 2026] probe-000 192.0.2.2:47732 GET /healthz 500\n")
	got := healthzTimes(raw)
	if len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	if want := time.Date(2026, 11, 26, 19, 27, 12, 157835485, time.UTC); !got[0].Equal(want) {
		t.Errorf("first %v, want %v", got[0], want)
	}
	if d := got[1].Sub(got[0]); d != 867068734*time.Nanosecond {
		t.Errorf("interval %v", d)
	}
}

func TestNthProbeAfter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p")
	// unsorted, a cut line, an empty line
	if err := os.WriteFile(path, []byte("3000000000\n1000000000\n2000000000\n\n4000x\n4000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after   int64 // seconds
		n       int
		want    int64
		wantErr bool
	}{
		{0, 1, 1, false},
		{1, 1, 2, false},
		{1, 3, 4, false},
		{2, 3, 0, true},
	}
	for _, tt := range tests {
		got, err := nthProbeAfter(path, time.Unix(tt.after, 0), tt.n)
		if (err != nil) != tt.wantErr {
			t.Errorf("after %d, n %d: err %v", tt.after, tt.n, err)
			continue
		}
		if err == nil && got.Unix() != tt.want {
			t.Errorf("after %d, n %d: got %v, want %d", tt.after, tt.n, got.Unix(), tt.want)
		}
	}
	if _, err := nthProbeAfter(filepath.Join(dir, "missing"), time.Unix(0, 0), 1); err == nil {
		t.Error("missing file: no error")
	}
}

func TestProbePod(t *testing.T) {
	b := &bench{config: config{binary: "/x/k1s"}, node: "n1"}
	p := b.probePod("probe-007", 20007, "/d")
	c := p.Spec.Containers[0]
	if got := c.Command; len(got) != 4 || got[0] != "/x/k1s" || got[1] != "app" || got[3] != "20007" {
		t.Errorf("command %v", got)
	}
	if got := c.ReadinessProbe.Exec.Command; got[2] != "date +%s%N >> /d/probe-007.exec" {
		t.Errorf("exec probe %v", got)
	}
	if h := c.LivenessProbe.HTTPGet; h.Path != "/healthz" || h.Port != intstr.FromInt32(20007) {
		t.Errorf("http probe %+v", h)
	}
	if c.ReadinessProbe.PeriodSeconds != 1 || c.LivenessProbe.PeriodSeconds != 1 || p.Spec.NodeName != "n1" {
		t.Errorf("period / node: %+v", p.Spec)
	}
	b.appBinary = "/x/k1s-app"
	if got := b.probePod("probe-008", 20008, "/d").Spec.Containers[0].Command; len(got) != 3 || got[0] != "/x/k1s-app" || got[2] != "20008" {
		t.Errorf("command with -app: %v", got)
	}
	b.stampBinary = "/x/stamp"
	if got := b.probePod("probe-009", 20009, "/d").Spec.Containers[0].ReadinessProbe.Exec.Command; len(got) != 2 || got[0] != "/x/stamp" || got[1] != "/d/probe-009.exec" {
		t.Errorf("exec probe with -stamp: %v", got)
	}
}

func TestPortPicker(t *testing.T) {
	p := &portPicker{next: 40000}
	a, err := p.pick()
	if err != nil {
		t.Skip(err)
	}
	b, err := p.pick()
	if err != nil || b <= a {
		t.Errorf("picked %d then %d (%v)", a, b, err)
	}
}
