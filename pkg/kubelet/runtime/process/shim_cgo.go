//go:build cgo

package process

// The shim itself is shim.c: a constructor that runs before the Go runtime
// when the process is a shim, so that a shim costs no Go runtime.

// #cgo CFLAGS: -O2 -Wall
import "C"

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ShimMain is the entry point of the hidden `k1s shim` subcommand; args are
// the arguments after "shim".
//
//	k1s shim --dir <container dir> [--report-fd N]
//
// Shims started by the runtime never get here: the C constructor in shim.c
// runs them before the Go runtime starts (K1S_SHIM=1 and "shim" as the
// first argument). ShimMain is reached when the shim is started some other
// way (`k1s shim` typed by hand); it executes the binary again with
// K1S_SHIM=1 so that the C shim runs, with the same pid and fds. It returns
// only on failure, with the exit code.
func ShimMain(args []string) int {
	if os.Getenv(shimMarkerEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "shim" {
		// The constructor should have taken over (no /proc?): do not loop.
		fmt.Fprintln(os.Stderr, "shim: the shim did not start before the Go runtime (is /proc mounted?)")
		return 2
	}
	argv := append([]string{os.Args[0], "shim"}, args...)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, shimMarkerEnv+"=") {
			env = append(env, e)
		}
	}
	env = append(env, shimMarkerEnv+"=1")
	err := syscall.Exec("/proc/self/exe", argv, env)
	fmt.Fprintf(os.Stderr, "shim: exec /proc/self/exe: %v\n", err)
	return 2
}
