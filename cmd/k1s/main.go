// Command k1s is Kubernetes on one machine, in one binary.
package main

import (
	"fmt"
	"os"

	"k1s.dev/k1s/pkg/agent"
	"k1s.dev/k1s/pkg/app"
	"k1s.dev/k1s/pkg/cli"
	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
)

const usage = `k1s: Kubernetes on one machine, in one binary.

Usage:
  k1s server [flags]      start the API, controllers, scheduler and a node agent
  k1s kubectl [args]      upstream kubectl, defaulting to k1s's kubeconfig
  k1s app [flags]         a small HTTP workload for examples and tests
  k1s image CMD [flags]   import|ls|rm|pull images of the node's image store
  k1s version             print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "server":
		startPprof()
		os.Exit(cli.Server(args))
	case "agent":
		startPprof()
		os.Exit(agent.Main(args))
	case "kubectl":
		os.Exit(cli.Kubectl(args))
	case "version", "--version", "-v":
		os.Exit(cli.Version())
	case "shim": // hidden: a container's supervisor, re-executed by the host runtime
		os.Exit(process.ShimMain(args))
	case "app":
		os.Exit(app.Main(args))
	case "image":
		os.Exit(image.Main(args))
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "k1s: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
