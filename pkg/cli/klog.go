package cli

import (
	"flag"

	"k8s.io/klog/v2"
)

// klogFlagSet exposes -v and friends; by default k1s logs only warnings and
// errors of its embedded components (kube-apiserver's info logs are noise
// to a k1s user), its own start-up lines at level 0.
func klogFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	return fs
}
