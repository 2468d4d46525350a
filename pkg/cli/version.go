package cli

import (
	"fmt"
	"runtime"
)

// KubernetesVersion is the Kubernetes release whose modules k1s is built on.
const KubernetesVersion = "v1.37.2"

// Version prints k1s's version like `k3s --version`.
func Version() int {
	fmt.Printf("k1s version %s (Kubernetes %s)\n", versionString(), KubernetesVersion)
	fmt.Printf("go version %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
