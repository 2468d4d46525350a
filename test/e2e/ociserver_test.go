package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"k1s.dev/k1s/test/fidelity/seedimages"
)

// The oci server: a second shared server whose default runtime is oci, set
// up as the reference cluster was — the seed images' tagged stand-ins
// (busybox:1.28, the terrycho-sandbox images) imported on the node, the
// `latest` ones (busybox, nginx, kubetm/app) served by an in-process
// registry on loopback that --registry-config mirrors docker.io and gcr.io
// to. Tests of isolation, pod networking, Services and DNS use it.

var (
	ociOnce   sync.Once
	ociShared *Server
	ociReg    *seedimages.Registry
	ociErr    error
	ociSkip   string
	ociWork   string // removed by TestMain when nothing is left mounted
)

// OCIServer starts (once) the oci server, or skips the test where the oci
// runtime cannot run (not root, no runc, no busybox-static).
func OCIServer(t *testing.T) *Server {
	t.Helper()
	ociOnce.Do(startOCIServer)
	if ociSkip != "" {
		t.Skip(ociSkip)
	}
	if ociErr != nil {
		t.Fatalf("starting the oci server: %v", ociErr)
	}
	return ociShared
}

// OCIRegistry is the loopback registry behind the oci server's mirrors.
func OCIRegistry(t *testing.T) *seedimages.Registry {
	OCIServer(t)
	return ociReg
}

func startOCIServer() {
	if os.Geteuid() != 0 {
		ociSkip = "the oci runtime needs root"
		return
	}
	if _, err := exec.LookPath("runc"); err != nil {
		ociSkip = "runc is not installed"
		return
	}
	work, err := os.MkdirTemp("", "k1s-e2e-oci")
	if err != nil {
		ociErr = err
		return
	}
	ociWork = work
	root, err := filepath.Abs("../..")
	if err != nil {
		ociErr = err
		return
	}
	app := filepath.Join(work, "k1s-app")
	if err := seedimages.BuildApp(root, app); err != nil {
		ociErr = err
		return
	}
	images, err := seedimages.Build(app, work)
	if err != nil {
		ociSkip = "seed images: " + err.Error() // no busybox-static here
		return
	}
	dataDir := filepath.Join(work, "data")
	if err := seedimages.Import(binary, dataDir, work, images); err != nil {
		ociErr = err
		return
	}
	ociReg, err = seedimages.StartRegistry(images)
	if err != nil {
		ociErr = err
		return
	}
	cfg := filepath.Join(work, "registries.yaml")
	if err := os.WriteFile(cfg, []byte(ociReg.Config()), 0o644); err != nil {
		ociErr = err
		return
	}
	ociShared, ociErr = StartServer(dataDir, "--default-runtime", "oci", "--registry-config", cfg)
}
