package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// shimMarkerEnv is set to "1" in the environment of every shim the runtime
// starts. Together with "shim" as the first argument it makes the C
// constructor in shim.c run the shim before the Go runtime starts.
const shimMarkerEnv = "K1S_SHIM"

// shimSpecFile is containers/<id>/shim.spec: the process spec in a form the
// C shim reads without a JSON parser, written by the runtime before each
// shim start (spec.json stays the runtime's record).
const shimSpecFile = "shim.spec"

// shimSpecMagic is the first field of shim.spec, its format version.
const shimSpecMagic = "k1s-shim-spec 1"

// encodeShimSpec renders spec as shim.spec: NUL-terminated fields, in order
//
//	"k1s-shim-spec 1"
//	working dir (absolute: a relative one is taken from /, the shim's
//	             working directory when the shim was in Go)
//	log path
//	host PATH
//	flags: "i" stdin, "o" stdin once, "t" tty (any order, or none)
//	max log line (decimal)
//	argc (decimal), then each argument
//	envc (decimal), then each "KEY=value"
//
// No field can hold a NUL (execve could not pass it either).
func encodeShimSpec(spec *processSpec) ([]byte, error) {
	dir := spec.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("/", dir)
	}
	flags := ""
	if spec.Stdin {
		flags += "i"
	}
	if spec.StdinOnce {
		flags += "o"
	}
	if spec.TTY {
		flags += "t"
	}
	fields := []string{shimSpecMagic, dir, spec.LogPath, spec.HostPath, flags, strconv.Itoa(maxLogLine)}
	fields = append(fields, strconv.Itoa(len(spec.Args)))
	fields = append(fields, spec.Args...)
	fields = append(fields, strconv.Itoa(len(spec.Env)))
	fields = append(fields, spec.Env...)
	var b bytes.Buffer
	for _, f := range fields {
		if strings.IndexByte(f, 0) >= 0 {
			return nil, fmt.Errorf("%q: %w", f, errNULInSpec)
		}
		b.WriteString(f)
		b.WriteByte(0)
	}
	return b.Bytes(), nil
}

var errNULInSpec = errors.New("invalid argument: contains a NUL byte")

// writeShimSpec writes dir/shim.spec for spec.
func writeShimSpec(dir string, spec *processSpec) error {
	data, err := encodeShimSpec(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, shimSpecFile), data, 0o600)
}
