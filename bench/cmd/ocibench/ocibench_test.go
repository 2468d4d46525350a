package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

func TestCIDRs(t *testing.T) {
	tests := []struct {
		pid              int
		cluster, service string
	}{
		{1, "10.101.0.0/16", "10.151.0.0/16"},
		{49, "10.149.0.0/16", "10.199.0.0/16"},
		{100, "10.100.0.0/16", "10.150.0.0/16"},
	}
	for _, tt := range tests {
		c, s := cidrs(tt.pid)
		if c != tt.cluster || s != tt.service {
			t.Errorf("cidrs(%d) = %s, %s; want %s, %s", tt.pid, c, s, tt.cluster, tt.service)
		}
	}
}

func TestNetworkNames(t *testing.T) {
	// printf '10.143.0.0/16/vm' | sha256sum → 728544c0...
	b, p := networkNames("vm", "10.143.0.0/16")
	if b != "k1s-728544c0" || p != "k1s-proxy-728544c0" {
		t.Errorf("networkNames = %s, %s", b, p)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in   string
		comm string
		ppid int
		ok   bool
	}{
		{"123 (sleep) S 45 123 123 0 -1", "sleep", 45, true},
		{"9 (a b) (c)) R 1 9 9 0", "a b) (c)", 1, true},
		{"garbage", "", 0, false},
	}
	for _, tt := range tests {
		comm, ppid, ok := parseStat(tt.in)
		if comm != tt.comm || ppid != tt.ppid || ok != tt.ok {
			t.Errorf("parseStat(%q) = %q, %d, %v", tt.in, comm, ppid, ok)
		}
	}
}

func TestDescendants(t *testing.T) {
	procs := []*proc{{pid: 1, ppid: 0}, {pid: 10, ppid: 1}, {pid: 11, ppid: 10}, {pid: 12, ppid: 11}, {pid: 13, ppid: 10}, {pid: 20, ppid: 1}}
	got := descendants(procs, 10)
	if fmt.Sprint(got) != "[11 13 12]" {
		t.Errorf("descendants(10) = %v", got)
	}
	if got := descendants(procs, 12); len(got) != 0 {
		t.Errorf("descendants(12) = %v", got)
	}
}

func TestClassify(t *testing.T) {
	host := "pid:[1]"
	tests := []struct {
		name string
		p    proc
		want category
	}{
		{"container", proc{args: []string{"sleep", "3600"}, pidNS: "pid:[2]"}, catWorkload},
		{"shim by args", proc{args: []string{"/tmp/x/k1s", "shim", "--dir", "/d"}, pidNS: host}, catShim},
		{"shim by env", proc{args: []string{"k1s"}, shimEnv: true, pidNS: host}, catShim},
		{"runc run", proc{exe: "/usr/sbin/runc", args: []string{"runc", "--root", "/r", "run", "--keep", "--bundle", "/b", "id"}, pidNS: host}, catRuncRun},
		{"runc state", proc{exe: "/usr/sbin/runc", args: []string{"runc", "--root", "/r", "state", "id"}, pidNS: host}, catRuncOther},
		{"sh probe", proc{exe: "/bin/sh", args: []string{"sh", "-c", "true"}, pidNS: host}, catOther},
	}
	for _, tt := range tests {
		if got := classify(&tt.p, host); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, catNames[got], catNames[tt.want])
		}
	}
}

func TestMemoryCgroup(t *testing.T) {
	tests := []struct {
		name, in string
		path     string
		v2       bool
	}{
		{"v1", "12:pids:/k1s/x\n7:memory:/k1s/besteffort/podU/C\n1:name=systemd:/\n", "/k1s/besteffort/podU/C", false},
		{"v1 joined", "4:cpu,memory:/a/b\n", "/a/b", false},
		{"v2", "0::/k1s/podU/C\n", "/k1s/podU/C", true},
		{"none", "3:cpu:/x\n", "", false},
	}
	for _, tt := range tests {
		p, v2 := memoryCgroup(tt.in)
		if p != tt.path || v2 != tt.v2 {
			t.Errorf("%s: %q %v", tt.name, p, v2)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
100 22 0:50 / /tmp/w/server/agent/runtime/oci/containers/c1/rootfs rw,relatime - overlay overlay rw,lowerdir=a
101 22 0:51 / /tmp/w/sand\040box/shm rw,nosuid master:2 - tmpfs shm rw,size=65536k
102 22 0:4 net:[4026532] /tmp/w/server/agent/network/netns/s1 rw shared:5 - nsfs nsfs rw
`
	ms, err := parseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.fstype+" "+m.point)
	}
	want := []string{"ext4 /", "overlay /tmp/w/server/agent/runtime/oci/containers/c1/rootfs", "tmpfs /tmp/w/sand box/shm", "nsfs /tmp/w/server/agent/network/netns/s1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestTrackerObserve(t *testing.T) {
	at := time.Unix(100, 0)
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	bound := pending.DeepCopy()
	bound.Spec.NodeName = "n"
	running := bound.DeepCopy()
	running.Status.Phase = corev1.PodRunning
	type ev struct {
		typ watch.EventType
		pod *corev1.Pod
	}
	tests := []struct {
		name           string
		events         []ev
		wantBound, run int64
		gone           bool
	}{
		{"pending", []ev{{watch.Added, pending}}, 0, 0, false},
		{"bound then running", []ev{{watch.Added, pending}, {watch.Modified, bound}, {watch.Modified, running}}, 101, 102, false},
		{"first time kept", []ev{{watch.Added, running}, {watch.Modified, running}}, 100, 100, false},
		{"deleted", []ev{{watch.Added, running}, {watch.Deleted, running}}, 100, 100, true},
		{"re-added starts over", []ev{{watch.Added, running}, {watch.Deleted, running}, {watch.Added, pending}}, 0, 0, false},
	}
	sec := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	}
	for _, tt := range tests {
		tr := newTrackerState()
		for i, e := range tt.events {
			tr.observe(e.typ, e.pod, at.Add(time.Duration(i)*time.Second))
		}
		b, r := tr.times([]string{"p"})
		if sec(b[0]) != tt.wantBound || sec(r[0]) != tt.run || tr.gone["p"] != tt.gone {
			t.Errorf("%s: bound %d running %d gone %v", tt.name, sec(b[0]), sec(r[0]), tr.gone["p"])
		}
	}
}

// The generated tarballs load with go-containerregistry (as `k1s image
// import` reads them) and carry the layers' bytes.
func TestImageTarballs(t *testing.T) {
	dir := t.TempDir()
	layers, err := writeLayers(dir, 2, 3<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range layers {
		total += l.size
		if l.files != bigFiles {
			t.Errorf("%s: %d files, want %d (small files only when they fit)", l.tarPath, l.files, bigFiles)
		}
	}
	if total < 3<<20 {
		t.Errorf("layers hold %d bytes, want ≥ %d", total, 3<<20)
	}
	docker := filepath.Join(dir, "d.tar")
	if err := writeDockerSave(docker, "bench/big:docker", layers); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("bench/big:docker")
	img, err := tarball.ImageFromPath(docker, &tag)
	if err != nil {
		t.Fatal(err)
	}
	checkLayers(t, "docker", img.Layers, layers)

	oci := filepath.Join(dir, "o.tar")
	if err := writeOCIArchive(oci, filepath.Join(dir, "layout"), "bench/big:oci", layers); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "unpacked")
	if err := untar(oci, out); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "bench/big:oci" {
		t.Fatalf("index %+v, %v", im, err)
	}
	oimg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkLayers(t, "oci", oimg.Layers, layers)
}

func checkLayers(t *testing.T, what string, get func() ([]v1.Layer, error), want []layerFile) {
	t.Helper()
	ls, err := get()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(ls) != len(want) {
		t.Fatalf("%s: %d layers, want %d", what, len(ls), len(want))
	}
	for i, l := range ls {
		d, err := l.DiffID()
		if err != nil || d != want[i].diffID {
			t.Errorf("%s layer %d: diff id %v (%v), want %v", what, i, d, err, want[i].diffID)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != want[i].size {
			t.Errorf("%s layer %d: %d bytes (%v), want %d", what, i, n, err, want[i].size)
		}
	}
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		w, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, tr)
		w.Close()
		if err != nil {
			return err
		}
	}
}

func TestReadStages(t *testing.T) {
	root := t.TempDir()
	write := func(rel, data string, at time.Time) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if !at.IsZero() {
			os.Chtimes(p, at, at)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	write("sandboxes/sb1/sandbox.json", `{}`, ms(10))
	write("containers/c1/container.json", `{"ShimID":"s1","SandboxID":"sb1"}`, ms(30))
	write("shims/containers/s1/state.json", `{"status":"running","startedAt":"`+ms(31).Format(time.RFC3339Nano)+`"}`, time.Time{})
	write("runc/c1/state.json", `{"id":"c1","created":"`+ms(60).Format(time.RFC3339Nano)+`"}`, time.Time{})
	s, err := readStages(root, "oci://c1", ms(0), ms(100))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.steps()); got != "[10ms 20ms 1ms 29ms 40ms]" {
		t.Errorf("steps %s", got)
	}
	if !strings.Contains(stagesValue([]stages{s}), "→ sandbox ready 10.0 ms / 10.0 ms") {
		t.Errorf("value %s", stagesValue([]stages{s}))
	}
	if _, err := readStages(root, "c1", ms(0), ms(1)); err == nil {
		t.Error("id without scheme accepted")
	}
}
