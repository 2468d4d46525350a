package cli

import (
	"net"
	"strconv"
	"strings"

	"k8s.io/component-base/version"
)

// freePortOr returns port if it can be bound on host, else 0 (the agent
// then picks a free one and publishes it in the Node's daemonEndpoints):
// several agents and tests share one machine.
func freePortOr(host string, port int) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0
	}
	l.Close()
	return port
}

// versionString is k1s's version (containerRuntimeVersion host://<it>).
func versionString() string {
	v := version.Get().GitVersion
	if strings.HasPrefix(v, "v0.0.0") { // built without the Makefile's -ldflags
		return KubernetesVersion + "+k1s"
	}
	return v
}
