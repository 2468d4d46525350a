package apiserver

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"

	apimachineryversion "k8s.io/apimachinery/pkg/version"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/version"
)

// KubernetesVersion is the release whose modules k1s is built on; /version
// reports it when the binary was built without the Makefile's -ldflags
// (plain `go build` leaves component-base's "v0.0.0-master").
const KubernetesVersion = "v1.37.2"

func versionInfo() apimachineryversion.Info {
	info := version.Get()
	if strings.HasPrefix(info.GitVersion, "v0.0.0") {
		info.GitVersion = KubernetesVersion + "+k1s"
		info.GitCommit, info.GitTreeState, info.BuildDate = "", "", ""
	}
	info.Major, info.Minor = "1", "37"
	info.EmulationMajor, info.EmulationMinor = "1", "37"
	info.MinCompatibilityMajor, info.MinCompatibilityMinor = "1", "36"
	info.GoVersion, info.Compiler, info.Platform = runtime.Version(), runtime.Compiler, runtime.GOOS+"/"+runtime.GOARCH
	return info
}

// withVersion answers /version like kube-apiserver whatever the build flags.
func withVersion(build func(http.Handler, *genericapiserver.Config) http.Handler) func(http.Handler, *genericapiserver.Config) http.Handler {
	body, _ := json.MarshalIndent(versionInfo(), "", "  ")
	return func(h http.Handler, c *genericapiserver.Config) http.Handler {
		chain := build(h, c)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/version" && r.Method == http.MethodGet {
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
				return
			}
			chain.ServeHTTP(w, r)
		})
	}
}
