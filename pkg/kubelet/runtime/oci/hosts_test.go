package oci

import (
	"testing"

	"k1s.dev/k1s/pkg/image"
	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestHostsFile(t *testing.T) {
	const head = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	for _, tc := range []struct {
		name, domain string
		aliases      []runtime.HostAlias
		want         string
	}{
		{"plain", "", nil, head + "10.42.0.5\tweb\n"},
		{"subdomain", "sub.ns.svc.cluster.local", nil, head + "10.42.0.5\tweb.sub.ns.svc.cluster.local\tweb\n"},
		{"aliases", "", []runtime.HostAlias{{IP: "1.2.3.4", Hostnames: []string{"foo", "bar"}}},
			head + "10.42.0.5\tweb\n\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"},
	} {
		if got := hostsFile("10.42.0.5", "web", tc.domain, tc.aliases); got != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, got, tc.want)
		}
	}
}

func TestRepoDigestFor(t *testing.T) {
	img := &image.Image{ID: "sha256:cfg", RepoDigests: []string{
		"127.0.0.1:5000/private/busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"}}
	for ref, want := range map[string]string{
		"busybox":                           "docker.io/library/busybox@sha256:abc",
		"docker.io/library/busybox:latest":  "docker.io/library/busybox@sha256:abc",
		"127.0.0.1:5000/private/busybox:v1": "127.0.0.1:5000/private/busybox@sha256:abc",
		"nginx":                             "127.0.0.1:5000/private/busybox@sha256:abc",
	} {
		if got := repoDigestFor(img, ref); got != want {
			t.Errorf("%s: %s, want %s", ref, got, want)
		}
	}
	if got := repoDigestFor(&image.Image{ID: "sha256:cfg"}, "busybox"); got != "sha256:cfg" {
		t.Errorf("no digests: %s", got)
	}
}
