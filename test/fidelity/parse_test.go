package fidelity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The reviewed allowlist must always parse (make fidelity reads it).
func TestAllowlistFile(t *testing.T) {
	if _, err := loadAllowlist("allowlist.txt"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAllowlist(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
		want                map[string][]string
	}{
		{name: "comments and blank lines", text: "# c\n\n", want: map[string][]string{}},
		{name: "an extra state with its reason",
			text: "06-crashloop | pod crasher table: extra    0/1 Error 4 | the reference ended on a race\n",
			want: map[string][]string{"06-crashloop": {"pod crasher table: extra    0/1 Error 4"}}},
		{name: "a status line keeps its own separators",
			text: "05-exit-codes | pod retry status: extra    phase=Running | Ready=False | main=waiting/X | why\n",
			want: map[string][]string{"05-exit-codes": {"pod retry status: extra    phase=Running | Ready=False | main=waiting/X"}}},
		{name: "no reason", text: "06-crashloop | pod crasher table: extra    0/1 Error 4 | \n", wantErr: "want"},
		{name: "an order may not be excused", text: "06-crashloop | pod crasher table: order    reference a → b | timing\n", wantErr: "only a missing or extra"},
		{name: "an exit status may not be excused", text: "05-exit-codes | scenario: exit 1 on ours (reference: 0) | slow\n", wantErr: "only a missing or extra"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "allow.txt")
			os.WriteFile(p, []byte(tc.text), 0o644)
			got, err := loadAllowlist(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for sc, lines := range tc.want {
				for _, l := range lines {
					if !got[sc][l] {
						t.Errorf("%s: %q not allowed; got %v", sc, l, got[sc])
					}
				}
			}
		})
	}
}

func TestParseCompareAndTable(t *testing.T) {
	out := `pod crasher table: extra    0/1 Error 4
events: missing  Warning BackOff Pod/x [kubelet] Back-off

first seen               reference      ours    ours/ref
web-<rs>-<1>         Pending                     481 ms      240 ms    0.50
web-<rs>-<2>         Pending                     400 ms      300 ms    0.75
web-<rs>-<1>         Init:CrashLoopBackOff     22409 ms    14846 ms    0.66
`
	diffs, timings := parseCompare(out)
	if len(diffs) != 2 || diffs[0] != "pod crasher table: extra    0/1 Error 4" {
		t.Errorf("diffs = %q", diffs)
	}
	if len(timings) != 3 || timings[2] != (timing{pod: "web-<rs>-<1>", status: "Init:CrashLoopBackOff", ref: 22409, ours: 14846}) {
		t.Errorf("timings = %+v", timings)
	}
	if d, tm := parseCompare("shown: identical (timing aside)\n"); len(d)+len(tm) != 0 {
		t.Errorf("identical: %q %v", d, tm)
	}
	res := map[string]*result{
		"01-a": {timing: timings},
		"02-b": {diffs: diffs[:1]},
		"03-c": {excused: diffs[:1]},
	}
	table := renderTable([]string{"01-a", "02-b", "03-c"}, res)
	for _, want := range []string{
		"| scenario | identical | first seen: STATUS k1s / reference (ratio) |",
		// per STATUS the earliest over the pods, on each side
		"| 01-a | yes | Pending 0.2s / 0.4s (0.60), Init:CrashLoopBackOff 14.8s / 22.4s (0.66) |",
		"| 02-b | no (1) |  |",
		"| 03-c | yes (1 allowlisted) |  |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
