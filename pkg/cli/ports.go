package cli

import (
	"strings"

	"k8s.io/component-base/version"
)

// versionString is k1s's version (containerRuntimeVersion host://<it>).
func versionString() string {
	v := version.Get().GitVersion
	if strings.HasPrefix(v, "v0.0.0") { // built without the Makefile's -ldflags
		return KubernetesVersion + "+k1s"
	}
	return v
}
