package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// shimEnv makes the test binary act as the shim (`<test binary> shim ...`),
// so that tests need no k1s binary.
const shimEnv = "K1S_PROCESS_TEST_SHIM"

// agentEnv makes the test binary act as an agent that starts one container
// in the runtime directory given as its value, prints its id and waits to
// be killed.
const agentEnv = "K1S_PROCESS_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(ShimMain(os.Args[2:]))
	}
	if root := os.Getenv(agentEnv); root != "" {
		os.Exit(testAgent(root))
	}
	os.Exit(m.Run())
}

func testAgent(root string) int {
	exe, _ := os.Executable()
	r, err := New(Options{RootDir: root, ShimBinary: exe, ShimEnv: []string{shimEnv + "=1"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	sb, err := r.RunPodSandbox(ctx, &runtime.PodSandboxConfig{UID: "u", Name: "p", Namespace: "n"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	id, err := r.CreateContainer(ctx, sb, &runtime.ContainerConfig{
		Name: "c", Command: []string{"sh", "-c", "sleep 30"}, LogPath: filepath.Join(root, "c.log"),
	})
	if err == nil {
		err = r.StartContainer(ctx, id)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(id)
	select {}
}

// newTestRuntime is a host runtime in a temporary directory whose shims are
// this test binary.
func newTestRuntime(t *testing.T, root string) *Runtime {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{
		RootDir:    root,
		ShimBinary: exe,
		ShimEnv:    []string{shimEnv + "=1"},
		HostIP:     "127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
