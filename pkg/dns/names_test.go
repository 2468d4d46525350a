package dns

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		base string
		want request
		ok   bool
	}{
		{"", request{}, true},
		{"svc", request{kind: "svc"}, true},
		{"ns1.svc", request{kind: "svc", namespace: "ns1"}, true},
		{"web.ns1.svc", request{kind: "svc", namespace: "ns1", name: "web"}, true},
		{"web-0.web.ns1.svc", request{kind: "svc", namespace: "ns1", name: "web", endpoint: "web-0"}, true},
		{"_http._tcp.web.ns1.svc", request{kind: "svc", namespace: "ns1", name: "web", port: "http", protocol: "tcp"}, true},
		{"10-42-0-5.ns1.pod", request{kind: "pod", namespace: "ns1", name: "10-42-0-5"}, true},
		{"a.b.c.d.e.svc", request{}, false},
		{"web.ns1.foo", request{}, false},
		{"dns-version", request{}, false},
	}
	for _, c := range cases {
		got, ok := parseRequest(c.base)
		if ok != c.ok {
			t.Errorf("%q: ok=%v, want %v", c.base, ok, c.ok)
		}
		if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(request{})); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c.base, diff)
		}
	}
}

func TestReverseIP(t *testing.T) {
	cases := map[string]string{
		"10.0.43.10.in-addr.arpa.": "10.43.0.10",
		"0.43.10.in-addr.arpa.":    "", // a network, not an address
		"x.0.43.10.in-addr.arpa.":  "",
		"2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa.": "fd00:43::22",
		"2.2.0.0.ip6.arpa.": "",
		"example.com.":      "",
		"in-addr.arpa.":     "",
	}
	for name, want := range cases {
		got := reverseIP(name)
		if want == "" {
			if got != nil {
				t.Errorf("%s: %v, want none", name, got)
			}
			continue
		}
		if !got.Equal(net.ParseIP(want)) {
			t.Errorf("%s: %v, want %s", name, got, want)
		}
	}
}

func TestPodIPAndEndpointLabel(t *testing.T) {
	for label, want := range map[string]string{
		"10-42-0-5":          "10.42.0.5",
		"fd00--5":            "fd00::5",
		"fd00-0-0-0-0-0-0-5": "fd00::5",
		"1-2-3":              "",
		"web":                "",
		"10-42-0-500":        "",
	} {
		got := podIP(label)
		if want == "" && got != nil || want != "" && !got.Equal(net.ParseIP(want)) {
			t.Errorf("podIP(%q) = %v, want %q", label, got, want)
		}
	}
	for _, c := range []struct{ hostname, ip, want string }{
		{"db-0", "10.42.0.10", "db-0"},
		{"", "10.42.0.10", "10-42-0-10"},
		{"", "fd00::7", "fd00--7"},
	} {
		if got := endpointLabel(c.hostname, c.ip); got != c.want {
			t.Errorf("endpointLabel(%q, %q) = %q, want %q", c.hostname, c.ip, got, c.want)
		}
	}
}

func TestHostNameservers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := `# generated
search example.internal
nameserver 10.255.255.53
nameserver 10.43.0.10
nameserver fd00::53
nameserver 127.0.0.53
nameserver not-an-ip
options ndots:2
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		listen []string
		want   []string
	}{
		{nil, []string{"10.255.255.53:53", "10.43.0.10:53", "[fd00::53]:53", "127.0.0.53:53"}},
		// Our own address is never an upstream.
		{[]string{"10.43.0.10:53"}, []string{"10.255.255.53:53", "[fd00::53]:53", "127.0.0.53:53"}},
		// Listening on every address excludes loopback ones on port 53.
		{[]string{"0.0.0.0:53"}, []string{"10.255.255.53:53", "10.43.0.10:53", "[fd00::53]:53"}},
		// Another port is no loop.
		{[]string{"127.0.0.53:5353"}, []string{"10.255.255.53:53", "10.43.0.10:53", "[fd00::53]:53", "127.0.0.53:53"}},
	}
	for _, c := range cases {
		got, err := hostNameservers(path, c.listen)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("listen %v (-want +got):\n%s", c.listen, diff)
		}
	}
	if _, err := hostNameservers(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing file: no error")
	}
}

func TestUpstreamAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":      "10.0.0.1:53",
		"10.0.0.1:5353": "10.0.0.1:5353",
		"fd00::1":       "[fd00::1]:53",
		"[fd00::1]:54":  "[fd00::1]:54",
	} {
		if got := upstreamAddress(in); got != want {
			t.Errorf("upstreamAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
