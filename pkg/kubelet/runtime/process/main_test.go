package process

import (
	"os"
	"testing"
)

// shimEnv makes the test binary act as the shim (`<test binary> shim ...`),
// so that tests need no k1s binary.
const shimEnv = "K1S_PROCESS_TEST_SHIM"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(ShimMain(os.Args[2:]))
	}
	os.Exit(m.Run())
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
