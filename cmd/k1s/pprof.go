package main

import (
	"net/http"
	_ "net/http/pprof" // served only when K1S_PPROF names an address
	"os"
)

// startPprof serves Go's profiler on $K1S_PPROF (e.g. 127.0.0.1:6060) for
// memory and CPU investigations of `k1s server` and `k1s agent`; off by
// default.
func startPprof() {
	if addr := os.Getenv("K1S_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil) //nolint:errcheck
	}
}
