package harness

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Quantile of samples (0 ≤ q ≤ 1), interpolating linearly between the two
// closest ranks; 0 for no samples. samples is not modified.
func Quantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return s[lo] + time.Duration(frac*float64(s[hi]-s[lo]))
}

// Median is Quantile(samples, 0.5).
func Median(samples []time.Duration) time.Duration { return Quantile(samples, 0.5) }

// Ms formats a duration in milliseconds with precision fitting its size.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

// Rate formats n events over d as events per second.
func Rate(n int, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f /s", float64(n)/d.Seconds())
}
