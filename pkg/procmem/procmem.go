// Package procmem trims what a long-running k1s process keeps resident of
// its own binary.
//
// k1s is one ~250 MB binary (kube-apiserver, etcd, controllers, kubectl and
// the node agent). Package initialisation and start-up touch code and
// read-only data scattered over all of it, and the kernel maps file pages
// around each touched one (fault-around, or whole 2 MB folios of the page
// cache), so a process that has just started has ~80–140 MB of the binary
// mapped, most of which it never uses again. Those pages are shared page
// cache, but they count in the process's RSS and, while mapped, the kernel
// keeps them as a mapped executable's pages. DropStartupPages unmaps the
// clean file-backed pages of the executable once start-up is over: the
// page cache keeps them, and whatever the process still runs faults back
// in (minor faults, no I/O).
package procmem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Mapping is one mapping of the executable's file.
type Mapping struct {
	Start, End uint64
	Perms      string
	Rss        uint64 // bytes
	Anonymous  uint64 // bytes (copy-on-write pages: never dropped)
	Path       string
}

// ExecutableMappings lists the mappings of the running executable's file
// (matched by device and inode, so a binary replaced or deleted on disk
// since it started is still found), from /proc/self/smaps.
func ExecutableMappings() ([]Mapping, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return nil, err
	}
	return mappings(func(dev string, inode uint64, _, _ string) bool {
		return inode == st.Ino && sameDevice(dev, st.Dev)
	})
}

// mappings lists the mappings of /proc/self/smaps that match (by the
// header's device, inode, permissions and path).
func mappings(match func(dev string, inode uint64, perms, path string) bool) ([]Mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out []Mapping
		cur *Mapping
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping header: start-end perms offset dev inode [path].
			cur = nil
			inode, err := strconv.ParseUint(fields[4], 10, 64)
			path := ""
			if len(fields) >= 6 {
				path = fields[5]
			}
			if err != nil || !match(fields[3], inode, fields[1], path) {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			if !ok {
				continue
			}
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			out = append(out, Mapping{Start: start, End: end, Perms: fields[1], Path: path})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Rss:":
			cur.Rss = kb(fields[1])
		case "Anonymous:":
			cur.Anonymous = kb(fields[1])
		}
	}
	return out, sc.Err()
}

// DropSharedFilePages unmaps the pages of the process's read-only shared
// mappings of regular files: the embedded etcd's bbolt database is one,
// and a server restarted on an existing data dir reads all of it while
// etcd rebuilds its index (a fresh cluster's 16 MB database stayed
// resident). The pages stay in the page cache; those still read come back
// on access (minor faults). It returns how many bytes were resident.
func DropSharedFilePages() (uint64, error) {
	maps, err := mappings(func(_ string, inode uint64, perms, path string) bool {
		return inode != 0 && len(perms) == 4 && perms[1] != 'w' && perms[3] == 's' && strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "/dev/")
	})
	if err != nil {
		return 0, err
	}
	var dropped uint64
	for _, m := range maps {
		if m.Rss == 0 {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("madvise %s %x-%x: %w", m.Path, m.Start, m.End, errno)
		}
		dropped += m.Rss
	}
	return dropped, nil
}

// sameDevice compares smaps' "major:minor" (hex) with a stat device number.
func sameDevice(s string, dev uint64) bool {
	ma, mi, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	major, err1 := strconv.ParseUint(ma, 16, 32)
	minor, err2 := strconv.ParseUint(mi, 16, 32)
	return err1 == nil && err2 == nil && uint64(unix.Major(dev)) == major && uint64(unix.Minor(dev)) == minor
}

func kb(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n << 10
}

// DropStartupPages unmaps the clean pages of the executable's read-only
// mappings (code, read-only data, the symbol tables the runtime reads):
// only private mappings that are not writable and hold no
// copy-on-write page, so nothing but a re-readable copy of the file is
// dropped. It returns how many bytes were resident in them before.
//
// What the process touches afterwards comes back page by page, not in
// the chunks start-up brought in: the mappings are marked MADV_RANDOM (no
// read-ahead), the pages only this process mapped are evicted from the
// page cache (MADV_PAGEOUT) and so are the file's pages nobody maps
// (POSIX_FADV_DONTNEED), because a fault also maps the cached pages
// around the one touched (fault-around): with the start-up's read-ahead
// still cached, each page a steady-state agent touches brought ~15
// neighbours with it (measured at 500 probing pods: 40 MB of the binary
// resident instead of 15–25 MB). Pages other processes map (a server or
// `k1s app` containers from the same binary) stay cached and are only
// unmapped here. Old kernels without MADV_PAGEOUT (< 5.4) just unmap.
func DropStartupPages() (uint64, error) {
	maps, err := ExecutableMappings()
	if err != nil {
		return 0, err
	}
	var dropped uint64
	for _, m := range maps {
		if len(m.Perms) < 4 || m.Perms[1] == 'w' || m.Perms[3] != 'p' || m.Anonymous != 0 || m.Rss == 0 {
			continue
		}
		// By address: these pages are not Go memory, there is no slice to
		// hand unix.Madvise. MADV_NOHUGEPAGE first: where the page cache
		// holds the binary in large folios, a fault would otherwise map a
		// whole 2 MB folio again for every page touched.
		for _, advice := range []uintptr{unix.MADV_NOHUGEPAGE, unix.MADV_RANDOM, unix.MADV_PAGEOUT} {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), advice)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("madvise %x-%x: %w", m.Start, m.End, errno)
		}
		dropped += m.Rss
	}
	if exe, err := os.Open("/proc/self/exe"); err == nil {
		_ = unix.Fadvise(int(exe.Fd()), 0, 0, unix.FADV_DONTNEED)
		exe.Close()
	}
	return dropped, nil
}

// DropBurstPages returns a function for IdleGC.OnIdle that drops, at most
// once per interval, what a busy spell left mapped: the executable's pages
// it ran (create, update and list paths, OpenAPI documents built), as
// DropStartupPages does, and the database pages it read. The idle working
// set comes back page by page; the next burst reads its code from disk
// again if nothing else keeps it cached (measured: the first `kubectl get`
// after idle +50 ms). Only unmapping (keeping the page cache) was tried:
// faults then map the cached neighbours of each page again, and the
// binary's resident pages went 76 → 67 → 70 MB instead of 76 → 36 → 41.
func DropBurstPages(interval time.Duration) func() {
	var last time.Time
	return func() {
		if !last.IsZero() && time.Since(last) < interval {
			return
		}
		last = time.Now()
		dropMappedPages("a busy spell")
	}
}

// dropMappedPages drops the executable's pages (DropStartupPages) and the
// shared file mappings' (DropSharedFilePages) that what ran mapped.
func dropMappedPages(what string) {
	n, err := DropStartupPages()
	shared, err2 := DropSharedFilePages()
	klog.V(2).InfoS("Dropped the pages mapped by "+what, "binaryResidentBefore", n, "sharedFilesResidentBefore", shared, "err", errors.Join(err, err2))
}

// TrimAfterStartup waits for ready to close (nil: no wait), then for delay
// (the rest of start-up), and drops the executable's start-up pages, the
// pages start-up read through shared file mappings (etcd's database) and
// the heap start-up left behind. It returns early when ctx ends.
func TrimAfterStartup(ctx context.Context, ready <-chan struct{}, delay time.Duration) {
	if ready != nil {
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	debug.FreeOSMemory()
	dropMappedPages("start-up")
}
