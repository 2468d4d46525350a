package image

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/docker/go-units"
)

const cliUsage = `Usage:
  k1s image import [--data-dir DIR] [--name REF] FILE...   docker save / OCI layout / rootfs tarballs
  k1s image ls [--data-dir DIR] [-q]
  k1s image rm [--data-dir DIR] REF...
  k1s image pull [--data-dir DIR] [--registry-config FILE] [--insecure-registry HOST:PORT]... REF
`

// StoreDir is the image store of a data dir (the node agent's
// <data-dir>/agent/images).
func StoreDir(dataDir string) string {
	return filepath.Join(dataDir, "agent", "images")
}

// Main is `k1s image ...`; args are the arguments after "image".
func Main(args []string) int {
	return run(args, os.Stdout, os.Stderr)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cliUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("k1s image "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "k1s data directory (default $HOME/.k1s)")
	var nameFlag *string
	var quiet *bool
	var insecure multiFlag
	var registryConfig *string
	switch cmd {
	case "import":
		nameFlag = fs.String("name", "", "tag the imported image(s) with this reference (required for a rootfs tarball to have a name)")
	case "ls", "list":
		quiet = fs.Bool("q", false, "print image ids only")
	case "rm", "remove":
	case "pull":
		fs.Var(&insecure, "insecure-registry", "registry reached over plain HTTP (repeatable)")
		registryConfig = fs.String("registry-config", "", "registry mirrors, auth and TLS (k3s registries.yaml format)")
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cliUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "k1s image: unknown command %q\n\n%s", cmd, cliUsage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			fmt.Fprintln(stderr, "k1s image:", err)
			return 1
		}
		*dataDir = filepath.Join(home, ".k1s")
	}
	s, err := Open(StoreDir(*dataDir))
	if err != nil {
		fmt.Fprintln(stderr, "k1s image:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(stderr, "k1s image "+cmd+":", err)
		return 1
	}
	switch cmd {
	case "import":
		if fs.NArg() == 0 {
			fmt.Fprint(stderr, cliUsage)
			return 2
		}
		for _, f := range fs.Args() {
			imgs, err := s.Import(ctx, f, ImportOptions{Name: *nameFlag})
			if err != nil {
				return fail(err)
			}
			for _, img := range imgs {
				fmt.Fprintf(stdout, "imported %s %s\n", img.ID, strings.Join(img.RepoTags, " "))
			}
		}
	case "ls", "list":
		imgs, err := s.List()
		if err != nil {
			return fail(err)
		}
		if *quiet {
			for _, img := range imgs {
				fmt.Fprintln(stdout, img.ID)
			}
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tTAG\tIMAGE ID\tSIZE")
		for _, img := range imgs {
			id := hexOf(img.ID)[:12]
			size := units.HumanSize(float64(img.Size))
			if len(img.RepoTags) == 0 {
				fmt.Fprintf(tw, "<none>\t<none>\t%s\t%s\n", id, size)
			}
			for _, t := range img.RepoTags {
				i := strings.LastIndexByte(t, ':')
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t[:i], t[i+1:], id, size)
			}
		}
		tw.Flush()
	case "rm", "remove":
		if fs.NArg() == 0 {
			fmt.Fprint(stderr, cliUsage)
			return 2
		}
		for _, ref := range fs.Args() {
			if err := s.Remove(ref); err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "removed %s\n", ref)
		}
	case "pull":
		if fs.NArg() != 1 {
			fmt.Fprint(stderr, cliUsage)
			return 2
		}
		if *registryConfig != "" {
			c, err := LoadRegistryConfig(*registryConfig)
			if err != nil {
				return fail(err)
			}
			s.SetRegistryConfig(c)
		}
		img, err := s.Pull(ctx, fs.Arg(0), PullOptions{Insecure: insecure})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "pulled %s %s\n", img.ID, strings.Join(append(img.RepoTags, img.RepoDigests...), " "))
	}
	return 0
}
