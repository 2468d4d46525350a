//go:build !cgo

package process

import "testing"

// checkShimProcess: the Go shim of builds without cgo has no such bound.
func checkShimProcess(t *testing.T, pid int) {}
