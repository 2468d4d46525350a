package procmem

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func fileRSS(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssFile:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

func TestExecutableMappings(t *testing.T) {
	maps, err := ExecutableMappings()
	if err != nil {
		t.Fatal(err)
	}
	var code, writable bool
	for _, m := range maps {
		if m.End <= m.Start {
			t.Errorf("mapping %+v is empty", m)
		}
		code = code || strings.HasPrefix(m.Perms, "r-x")
		writable = writable || m.Perms[1] == 'w'
	}
	if !code || !writable {
		t.Fatalf("want the test binary's code and data mappings, got %+v", maps)
	}
}

func TestDropStartupPages(t *testing.T) {
	before := fileRSS(t)
	dropped, err := DropStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	if dropped == 0 {
		t.Fatal("nothing of the executable was resident")
	}
	if after := fileRSS(t); after >= before {
		t.Errorf("file-backed RSS %d before, %d after dropping %d bytes", before, after, dropped)
	}
	// The process runs on: code faults back in, maps and strings still read.
	out, err := exec.Command("/bin/sh", "-c", "echo ok").Output()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("after the drop: %q, %v", out, err)
	}
	if _, err := ExecutableMappings(); err != nil {
		t.Fatal(err)
	}
}

func TestIdleGCDecisions(t *testing.T) {
	s := idleState{cfg: IdleGC{Busy: 100, Idle: 25, IdleBelow: 1000, IdleAfter: 3}, percent: 100}
	steps := []struct {
		rate float64
		want int
	}{
		{10, 100}, {10, 100}, // two idle samples: not yet
		{10, 25},             // third: idle target
		{10, 25},             // stays
		{999, 25},            // still below the threshold
		{1000, 100},          // busy at once
		{10, 100}, {10, 100}, // idle again only after three
		{5000, 100},
		{10, 100}, {10, 100}, {10, 25},
	}
	for i, st := range steps {
		if got := s.next(st.rate); got != st.want {
			t.Fatalf("step %d (rate %v): GOGC %d, want %d", i, st.rate, got, st.want)
		}
	}
}

// A read-only shared mapping of a file (as bbolt maps etcd's database):
// its resident pages are unmapped, its contents still read.
func TestDropSharedFilePages(t *testing.T) {
	const size = 4 << 20
	path := filepath.Join(t.TempDir(), "db")
	want := bytes.Repeat([]byte("k1s-page"), size/8)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	resident := func() uint64 {
		maps, err := mappings(func(_ string, _ uint64, _, p string) bool { return p == path })
		if err != nil || len(maps) != 1 {
			t.Fatalf("mappings of %s: %+v, %v", path, maps, err)
		}
		return maps[0].Rss
	}
	var sum int
	for i := 0; i < size; i += 4096 {
		sum += int(data[i])
	}
	if sum != int('k')*(size/4096) {
		t.Fatalf("read %d", sum)
	}
	if r := resident(); r < size/2 {
		t.Fatalf("%d bytes resident after reading %d", r, size)
	}
	dropped, err := DropSharedFilePages()
	if err != nil {
		t.Fatal(err)
	}
	if dropped < size/2 {
		t.Errorf("dropped %d bytes, want the mapping's %d", dropped, size)
	}
	if r := resident(); r != 0 {
		t.Errorf("%d bytes still resident", r)
	}
	if !bytes.Equal(data, want) {
		t.Fatal("the mapping reads differently after the drop")
	}
}

// The first call drops the executable's pages; a second one within the
// interval does nothing.
func TestDropBurstPages(t *testing.T) {
	drop := DropBurstPages(time.Hour)
	before := fileRSS(t)
	drop()
	after := fileRSS(t)
	if after >= before {
		t.Fatalf("file-backed RSS %d before, %d after", before, after)
	}
	// fault some code back in, then call again: nothing is dropped
	if out, err := exec.Command("/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	again := fileRSS(t)
	drop()
	if now := fileRSS(t); now+64<<10 < again {
		t.Errorf("second call within the interval dropped pages: %d -> %d", again, now)
	}
}
