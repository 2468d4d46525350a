package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"k1s.dev/k1s/bench/internal/harness"
)

// category of a process on the node.
type category int

const (
	catShim      category = iota // the k1s binary started as `k1s shim` (K1S_SHIM=1)
	catRuncRun                   // `runc ... run ...`: the shim's payload
	catRuncOther                 // other runc commands (state, kill, exec: short-lived)
	catOther                     // anything else under the server that is not a container's
	catWorkload                  // a container's own process (in its own PID namespace)
	numCats
)

var catNames = [numCats]string{"shim", "runc run", "runc (other)", "other", "container"}

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	comm      string
	args      []string
	exe       string
	pidNS     string
	shimEnv   bool // K1S_SHIM=1 in its environment
	mem       harness.Memory
	pte       int64 // page tables (VmPTE), bytes
	threads   int
	cat       category
}

// classify puts p in a category; hostPidNS is the server's PID namespace
// (a process in another one is a container's).
func classify(p *proc, hostPidNS string) category {
	if p.pidNS != "" && hostPidNS != "" && p.pidNS != hostPidNS {
		return catWorkload
	}
	if p.shimEnv || (len(p.args) > 1 && p.args[1] == "shim") {
		return catShim
	}
	if filepath.Base(p.exe) == "runc" || (len(p.args) > 0 && filepath.Base(p.args[0]) == "runc") {
		for _, a := range p.args[1:] {
			if a == "run" {
				return catRuncRun
			}
		}
		return catRuncOther
	}
	return catOther
}

type catSum struct {
	count         int
	rss, pss, uss int64
	pte           int64
	threads       int
	names         map[string]int // comm → count
}

// snapshot of the node's processes and pod resources at one moment.
type snapshot struct {
	cats [numCats]catSum
	// parents of the containers' PID 1s: category name (or comm) → count.
	parents map[string]int
	inits   int
	// outside are processes not under the server whose command line
	// names the temp dir (what a crash would leave).
	outside []*proc
	mounts  []mount
	cg      cgroupSum
}

// takeSnapshot reads every process under serverPID (0: none) and every
// other one whose command line names work, the mounts under work and the
// pod cgroups of the containers found.
func takeSnapshot(serverPID int, work string) (*snapshot, error) {
	procs, err := readProcs()
	if err != nil {
		return nil, err
	}
	s := &snapshot{parents: map[string]int{}}
	for i := range s.cats {
		s.cats[i].names = map[string]int{}
	}
	under := map[int]bool{}
	if serverPID > 0 {
		for _, pid := range descendants(procs, serverPID) {
			under[pid] = true
		}
	}
	hostNS := readLink(fmt.Sprintf("/proc/%d/ns/pid", os.Getpid()))
	if serverPID > 0 {
		if ns := readLink(fmt.Sprintf("/proc/%d/ns/pid", serverPID)); ns != "" {
			hostNS = ns
		}
	}
	self := os.Getpid()
	var mine []*proc
	for _, p := range procs {
		if p.pid == self || p.pid == serverPID {
			continue
		}
		if !under[p.pid] {
			if !strings.Contains(strings.Join(p.args, " "), work) {
				continue
			}
			s.outside = append(s.outside, p)
		}
		mine = append(mine, p)
	}
	byPID := map[int]*proc{}
	for _, p := range mine {
		p.exe = readLink(fmt.Sprintf("/proc/%d/exe", p.pid))
		p.pidNS = readLink(fmt.Sprintf("/proc/%d/ns/pid", p.pid))
		p.shimEnv = hasEnv(p.pid, "K1S_SHIM=1")
		p.cat = classify(p, hostNS)
		m, err := harness.ReadMemory(p.pid)
		if err != nil {
			continue // gone meanwhile
		}
		p.mem = m
		p.pte, p.threads = kernelSide(p.pid)
		byPID[p.pid] = p
		c := &s.cats[p.cat]
		c.count++
		c.pte += p.pte
		c.threads += p.threads
		c.rss += m.RSS
		c.pss += m.PSS
		c.uss += m.USS
		c.names[p.comm]++
	}
	var inits []int
	for _, p := range byPID {
		if p.cat != catWorkload {
			continue
		}
		parent := byPID[p.ppid]
		if parent != nil && parent.cat == catWorkload {
			continue // not the container's PID 1
		}
		inits = append(inits, p.pid)
		switch {
		case parent == nil:
			s.parents["not under the server"]++
		case parent.cat == catOther:
			s.parents[parent.comm]++
		default:
			s.parents[catNames[parent.cat]]++
		}
	}
	s.inits = len(inits)
	if s.mounts, err = mountsUnder(work); err != nil {
		return nil, err
	}
	s.cg = podCgroups(inits)
	return s, nil
}

// descendants returns the PIDs of every process below root.
func descendants(procs []*proc, root int) []int {
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	seen := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// readProcs lists every process with its parent and command.
func readProcs() ([]*proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []*proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		comm, ppid, ok := parseStat(string(b))
		if !ok {
			continue
		}
		p := &proc{pid: pid, ppid: ppid, comm: comm}
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			p.args = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		}
		out = append(out, p)
	}
	return out, nil
}

// parseStat returns the command and parent PID of a /proc/PID/stat line.
func parseStat(s string) (comm string, ppid int, ok bool) {
	open := strings.IndexByte(s, '(')
	closing := strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, false
	}
	return s[open+1 : closing], ppid, true
}

// kernelStack is the kernel stack of one thread (THREAD_SIZE on x86_64
// and arm64).
const kernelStack = 16 << 10

// kernelSide reads a process's page tables (VmPTE) and thread count from
// /proc/PID/status: kernel memory the process costs that smaps does not show.
func kernelSide(pid int) (pte int64, threads int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmPTE":
			pte = n << 10
		case "Threads":
			threads = int(n)
		}
	}
	return pte, threads
}

func readLink(p string) string {
	l, _ := os.Readlink(p)
	return l
}

func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point, fstype string
}

// mountsUnder lists the mounts at or below dir.
func mountsUnder(dir string) ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := parseMountinfo(f)
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	var out []mount
	for _, m := range ms {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m)
		}
	}
	return out, nil
}

func parseMountinfo(r interface{ Read([]byte) (int, error) }) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		out = append(out, mount{point: unescapeOctal(f[4]), fstype: f[sep+1]})
	}
	return out, sc.Err()
}

// unescapeOctal undoes mountinfo's \NNN escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tmpfsUsed is the bytes in use on a tmpfs mount.
func tmpfsUsed(point string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(point, &st) != nil {
		return 0
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// cgroupSum of the pods' cgroups.
type cgroupSum struct {
	pods        int
	usage, kmem int64
	version     string
	err         string
}

// podCgroups sums the memory charged to the pod cgroups of the given
// container PID 1s (the parent of each one's memory cgroup; each pod once).
func podCgroups(pids []int) cgroupSum {
	var s cgroupSum
	seen := map[string]bool{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		dir, v2 := memoryCgroup(string(b))
		if dir == "" {
			continue
		}
		pod := filepath.Dir(dir)
		if seen[pod] {
			continue
		}
		seen[pod] = true
		if v2 {
			s.version = "v2"
			base := filepath.Join("/sys/fs/cgroup", pod)
			u, err := readInt(filepath.Join(base, "memory.current"))
			if err != nil {
				s.err = err.Error()
				continue
			}
			s.usage += u
			s.kmem += statField(filepath.Join(base, "memory.stat"), "kernel")
		} else {
			s.version = "v1"
			base := filepath.Join("/sys/fs/cgroup/memory", pod)
			u, err := readInt(filepath.Join(base, "memory.usage_in_bytes"))
			if err != nil {
				s.err = err.Error()
				continue
			}
			s.usage += u
			k, _ := readInt(filepath.Join(base, "memory.kmem.usage_in_bytes"))
			s.kmem += k
		}
		s.pods++
	}
	return s
}

// memoryCgroup returns the memory cgroup path of a /proc/PID/cgroup
// content and whether it is the unified (v2) hierarchy.
func memoryCgroup(content string) (path string, v2 bool) {
	var unified string
	for _, line := range strings.Split(content, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return parts[2], false
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified != "" {
		return unified, true
	}
	return "", false
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func statField(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// mb formats bytes as MB (MiB) with two decimals below 10 MB.
func mb(b int64) string {
	v := float64(b) / (1 << 20)
	if v < 10 && v > -10 {
		return fmt.Sprintf("%.2f MB", v)
	}
	return fmt.Sprintf("%.1f MB", v)
}

// overhead is the sum over the categories that are not containers'.
func (s *snapshot) overhead() (uss, pss int64) {
	for c := category(0); c < numCats; c++ {
		if c != catWorkload {
			uss += s.cats[c].uss
			pss += s.cats[c].pss
		}
	}
	return uss, pss
}

func (s *snapshot) overheadValue(n int) string {
	uss, pss := s.overhead()
	return fmt.Sprintf("**%s** (%s) per pod", mb(uss/int64(n)), mb(pss/int64(n)))
}

func (s *snapshot) splitValue(n int) string {
	var parts []string
	for _, c := range []category{catShim, catRuncRun, catRuncOther, catOther} {
		cs := s.cats[c]
		p := fmt.Sprintf("%s %s (%s), %d", catNames[c], mb(cs.uss/int64(n)), mb(cs.pss/int64(n)), cs.count)
		if c == catOther && cs.count > 0 {
			p += " [" + names(cs.names) + "]"
		}
		parts = append(parts, p)
	}
	if len(s.outside) > 0 {
		parts = append(parts, fmt.Sprintf("(%d of these outside the server's process tree)", len(s.outside)))
	}
	return strings.Join(parts, " · ")
}

// kernelValue is the page tables and thread stacks of the overhead
// processes, per pod.
func (s *snapshot) kernelValue(n int) string {
	var parts []string
	var total int64
	for _, c := range []category{catShim, catRuncRun, catRuncOther, catOther} {
		cs := s.cats[c]
		if cs.count == 0 {
			continue
		}
		k := cs.pte + int64(cs.threads)*kernelStack
		total += k
		parts = append(parts, fmt.Sprintf("%s %s (page tables %s + %.1f threads × 16 KiB stack)", catNames[c], mb(k/int64(n)), mb(cs.pte/int64(n)), float64(cs.threads)/float64(cs.count)))
	}
	return fmt.Sprintf("%s per pod: %s", mb(total/int64(n)), strings.Join(parts, " · "))
}

func (s *snapshot) parentValue() string {
	if s.inits == 0 {
		return "no container found"
	}
	var parts []string
	for _, k := range sortedKeys(s.parents) {
		parts = append(parts, fmt.Sprintf("%s: %d of %d", k, s.parents[k], s.inits))
	}
	v := strings.Join(parts, ", ")
	if s.parents[catNames[catRuncRun]] > 0 {
		v += " — `runc run` stays alive for the container's whole life (shim → runc run → container)"
	}
	return v
}

func (s *snapshot) workloadValue(n int) string {
	w := s.cats[catWorkload]
	return fmt.Sprintf("%s (%s); %d processes [%s]", mb(w.uss/int64(n)), mb(w.pss/int64(n)), w.count, names(w.names))
}

func (s *snapshot) mountsValue(n int) string {
	types := map[string]int{}
	var shm int64
	for _, m := range s.mounts {
		types[m.fstype]++
		if m.fstype == "tmpfs" {
			shm += tmpfsUsed(m.point)
		}
	}
	var parts []string
	for _, k := range sortedKeys(types) {
		parts = append(parts, fmt.Sprintf("%s %.2g", k, float64(types[k])/float64(n)))
	}
	return fmt.Sprintf("%s of tmpfs used per pod; %s", mb(shm/int64(n)), strings.Join(parts, ", "))
}

func (s *snapshot) cgroupValue(n int) string {
	if s.cg.pods == 0 {
		if s.cg.err != "" {
			return "n/a: " + s.cg.err
		}
		return "n/a (no pod cgroup found)"
	}
	return fmt.Sprintf("%s / %s (cgroup %s, %d pod cgroups)", mb(s.cg.usage/int64(s.cg.pods)), mb(s.cg.kmem/int64(s.cg.pods)), s.cg.version, s.cg.pods)
}

func (s *snapshot) summary() string {
	var parts []string
	for c := category(0); c < numCats; c++ {
		cs := s.cats[c]
		parts = append(parts, fmt.Sprintf("%s ×%d USS %s PSS %s RSS %s PTE %s threads %d [%s]", catNames[c], cs.count, mb(cs.uss), mb(cs.pss), mb(cs.rss), mb(cs.pte), cs.threads, names(cs.names)))
	}
	return strings.Join(parts, "; ")
}

func names(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
