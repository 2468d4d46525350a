package harness

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory of one process, in bytes. PSS and USS come from smaps_rollup and
// are zero when it cannot be read (HavePSS false).
type Memory struct {
	RSS, PSS, USS int64
	HavePSS       bool
	// RSS split: anonymous (Go heap, stacks) and file-backed (the binary's
	// text and data, etcd's mmapped bbolt file).
	RSSAnon, RSSFile int64
}

// ReadMemory reads VmRSS, RssAnon and RssFile from /proc/PID/status and Pss, Private_Clean and
// Private_Dirty (USS = the two private ones) from /proc/PID/smaps_rollup.
func ReadMemory(pid int) (Memory, error) {
	var m Memory
	status, err := readKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return m, err
	}
	rss, ok := status["VmRSS"]
	if !ok {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	m.RSS, m.RSSAnon, m.RSSFile = rss, status["RssAnon"], status["RssFile"]
	rollup, err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss", "Private_Clean", "Private_Dirty")
	if err == nil {
		if pss, ok := rollup["Pss"]; ok {
			m.PSS, m.USS, m.HavePSS = pss, rollup["Private_Clean"]+rollup["Private_Dirty"], true
		}
	}
	return m, nil
}

// readKB returns the named "Key:   123 kB" fields of a /proc file, in bytes.
func readKB(path string, keys ...string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, k, err)
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, sc.Err()
}

// MB formats bytes as mebibytes with one decimal ("123.4 MB").
func MB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
