package harness

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"odd median", ms(5, 1, 3), 0.5, 3 * time.Millisecond},
		{"even median interpolates", ms(4, 1, 2, 3), 0.5, 2500 * time.Microsecond},
		{"max", ms(4, 1, 2, 3), 1, 4 * time.Millisecond},
		{"min", ms(4, 1, 2, 3), 0, 1 * time.Millisecond},
		{"p99 of 1..101", ms(seq(1, 101)...), 0.99, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tt.samples...)
			if got := Quantile(tt.samples, tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
			for i := range before {
				if before[i] != tt.samples[i] {
					t.Fatalf("samples modified")
				}
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{Ms(1234 * time.Microsecond), "1.23 ms"},
		{Ms(12345 * time.Microsecond), "12.3 ms"},
		{Ms(812 * time.Millisecond), "812 ms"},
		{Rate(1000, 2*time.Second), "500 /s"},
		{Rate(1, 0), "n/a"},
		{MB(150 << 20), "150.0 MB"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTablePrint(t *testing.T) {
	var tb Table
	tb.Add("a|b", "1 ms", "< 1 s")
	var buf bytes.Buffer
	tb.Print(&buf, true)
	want := Header + "| a\\|b | 1 ms | < 1 s |\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestTableInsert(t *testing.T) {
	var tb Table
	tb.Add("a", "", "")
	tb.Add("c", "", "")
	tb.Insert(1, "b", "", "")
	tb.Insert(3, "d", "", "")
	var got []string
	for _, r := range tb.Rows {
		got = append(got, r.Measure)
	}
	if strings.Join(got, "") != "abcd" {
		t.Errorf("rows %v", got)
	}
}

func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if m.RSS <= 0 || m.RSSAnon <= 0 || m.RSSAnon+m.RSSFile > m.RSS+1<<20 {
		t.Errorf("RSS = %d, anon %d, file %d", m.RSS, m.RSSAnon, m.RSSFile)
	}
	if m.HavePSS && (m.PSS <= 0 || m.USS <= 0 || m.USS > m.RSS) {
		t.Errorf("PSS %d USS %d RSS %d", m.PSS, m.USS, m.RSS)
	}
}
