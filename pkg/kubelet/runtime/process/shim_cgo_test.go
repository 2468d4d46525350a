//go:build cgo

package process

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// maxShimPrivateKB bounds the private memory of a C shim (the Go shim
// needed ~14 MB in k1s).
const maxShimPrivateKB = 2048

// checkShimProcess checks that pid is a shim that never started the Go
// runtime: one thread, little private memory.
func checkShimProcess(t *testing.T, pid int) {
	t.Helper()
	status := procFields(t, fmt.Sprintf("/proc/%d/status", pid))
	if status["Threads"] != "1" {
		t.Errorf("the shim has %s threads, want 1 (the Go runtime started)", status["Threads"])
	}
	rollup := procFields(t, fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	private := 0
	for _, k := range []string{"Private_Clean", "Private_Dirty"} {
		kb, _ := strconv.Atoi(strings.TrimSuffix(rollup[k], " kB"))
		private += kb
	}
	t.Logf("shim %d: Rss %s, private %d kB", pid, rollup["Rss"], private)
	if private == 0 || private > maxShimPrivateKB {
		t.Errorf("shim private memory %d kB, want at most %d kB", private, maxShimPrivateKB)
	}
}

func procFields(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
