// Command ocibench measures the oci runtime (runc under a shim per
// container, overlayfs root filesystems, a network namespace per pod):
// pod create → Running with the image present, one at a time and 100 at
// once; the per-pod memory the node pays besides the containers' own
// processes (shims, runc, sandbox); and `k1s image import` throughput.
//
// It starts its own `k1s server --default-runtime oci --stop-pods-on-exit`
// with a cluster and service CIDR of its own (10.(100+n).0.0/16 and
// 10.(150+n).0.0/16, n from its PID, so it never shares a bridge or
// nftables table with another cluster on the host), after importing a
// busybox image (Debian's busybox-static as a rootfs tarball) into its data
// dir. It needs root, runc and /bin/busybox (busybox-static); without them
// every value is n/a and it exits 0. It prints a markdown table; nothing is
// asserted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k1s.dev/k1s/bench/internal/harness"
	"k1s.dev/k1s/pkg/image/imagetest"
)

type config struct {
	binary      string
	serverArgs  []string
	only        map[string]bool
	single      int
	burst       int
	memPods     int
	clients     int
	imageMB     int
	imageLayers int
	nodeWait    time.Duration
	podTimeout  time.Duration
	settle      time.Duration
	keep        bool
}

// measures, in the order they run.
var allMeasures = []string{"import", "memory", "single", "burst"}

func main() {
	var (
		c          config
		serverArgs string
		only       string
		header     bool
	)
	flag.StringVar(&c.binary, "k1s", "bin/k1s", "the k1s binary")
	flag.StringVar(&serverArgs, "server-args", "", "extra `k1s server` flags (space separated)")
	flag.StringVar(&only, "only", strings.Join(allMeasures, ","), "comma-separated measures: import, memory, single, burst")
	flag.IntVar(&c.single, "single", 20, "pods started one at a time")
	flag.IntVar(&c.burst, "burst", 100, "pods created at once")
	flag.IntVar(&c.memPods, "mem-pods", 50, "running pods for the memory measure")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients creating a burst")
	flag.IntVar(&c.imageMB, "image-mb", 200, "uncompressed size of the import image's layers, MB")
	flag.IntVar(&c.imageLayers, "image-layers", 4, "layers of the import image")
	flag.DurationVar(&c.nodeWait, "node-wait", 30*time.Second, "how long to wait for a Ready Node")
	flag.DurationVar(&c.podTimeout, "pod-timeout", 120*time.Second, "how long a pod (or a burst) may take to be Running")
	flag.DurationVar(&c.settle, "settle", 5*time.Second, "wait before reading memory (idle server; all memory pods Running)")
	flag.BoolVar(&header, "header", true, "print the markdown table header")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (data dir, server log, image tarballs)")
	flag.Parse()
	c.serverArgs = strings.Fields(serverArgs)
	c.only = map[string]bool{}
	for _, m := range strings.Split(only, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case "import", "memory", "single", "burst":
			c.only[m] = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "ocibench: unknown measure %q (want %s)\n", m, strings.Join(allMeasures, ", "))
			os.Exit(2)
		}
	}

	b := &bench{config: c}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := b.run(ctx)
	stop()
	b.assemble()
	b.table.Print(os.Stdout, header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ocibench:", err)
		os.Exit(1)
	}
}

type bench struct {
	config
	table    harness.Table
	sections map[string]*harness.Table
	work     string
	quiet    bool // tests
}

func (b *bench) log(format string, args ...any) {
	if !b.quiet {
		fmt.Fprintf(os.Stderr, "ocibench: "+format+"\n", args...)
	}
}

// unavailable says why the oci runtime cannot run here ("" if it can).
func unavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "no runc"
	}
	if _, err := os.Stat(imagetest.BusyboxBinary); err != nil {
		return "no " + imagetest.BusyboxBinary + " (busybox-static)"
	}
	return ""
}

// cidrs are the cluster and service CIDRs of this run: 10.(100+n).0.0/16
// and 10.(150+n).0.0/16 with n = pid % 50.
func cidrs(pid int) (cluster, service string) {
	n := pid % 50
	return fmt.Sprintf("10.%d.0.0/16", 100+n), fmt.Sprintf("10.%d.0.0/16", 150+n)
}

func (b *bench) run(ctx context.Context) error {
	if why := unavailable(); why != "" {
		b.log("the oci runtime cannot run here: %s", why)
		b.section("na").Add("oci runtime benchmarks", "n/a ("+why+")", "")
		return nil
	}
	if _, err := os.Stat(b.binary); err != nil {
		return fmt.Errorf("%v (run `make build`)", err)
	}
	bin, err := filepath.Abs(b.binary)
	if err != nil {
		return err
	}
	b.binary = bin
	if b.work, err = os.MkdirTemp("", "k1s-ocibench-"); err != nil {
		return err
	}
	b.log("temp dir %s", b.work)
	failed := false
	defer func() {
		if b.keep || failed {
			b.log("temp dir kept: %s", b.work)
			return
		}
		if err := os.RemoveAll(b.work); err != nil {
			b.log("removing %s: %v", b.work, err)
		}
	}()

	if b.only["import"] {
		if err := b.importThroughput(ctx); err != nil {
			failed = true
			return err
		}
	}
	if !b.only["memory"] && !b.only["single"] && !b.only["burst"] {
		return nil
	}
	if err := b.pods(ctx); err != nil {
		failed = true
		return err
	}
	return nil
}

// pods starts the server and runs the pod measures.
func (b *bench) pods(ctx context.Context) (err error) {
	dataDir := filepath.Join(b.work, "server")
	rootfs := filepath.Join(b.work, "busybox-rootfs.tar")
	if err := imagetest.WriteBusyboxRootfs(rootfs); err != nil {
		return err
	}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, b.binary, "image", "import", "--data-dir", dataDir, "--name", podImage, rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("k1s image import %s: %v\n%s", podImage, err, out)
	}
	b.log("busybox imported in %s", harness.Ms(time.Since(t0)))
	os.Remove(rootfs)

	cluster, service := cidrs(os.Getpid())
	args := append([]string{"--default-runtime", "oci", "--stop-pods-on-exit",
		"--cluster-cidr", cluster, "--service-cidr", service}, b.serverArgs...)
	s, err := harness.Start(b.binary, dataDir, args...)
	if err != nil {
		return err
	}
	r := &podRun{bench: b, server: s, clusterCIDR: cluster}
	defer func() {
		if cerr := r.cleanup(); cerr != nil {
			b.log("clean-up: %v", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	if _, err := s.WaitReadyz(90 * time.Second); err != nil {
		return err
	}
	if err := s.WaitLogReady(10 * time.Second); err != nil {
		return err
	}
	b.log("server pid %d at %s (cluster CIDR %s, service CIDR %s)", s.PID(), s.URL, cluster, service)
	return r.measure(ctx)
}
