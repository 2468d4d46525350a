package dns

import (
	"bufio"
	"net"
	"os"
	"strings"
)

// DefaultResolvConf is where the host's name servers are read from.
const DefaultResolvConf = "/etc/resolv.conf"

// hostNameservers returns the `nameserver` addresses of a resolv.conf
// file as host:53, leaving out the addresses in exclude (the server's own,
// so that it never forwards to itself).
func hostNameservers(path string, exclude []string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		// A scoped IPv6 address (fe80::1%eth0) keeps its zone.
		host, _, _ := strings.Cut(fields[1], "%")
		ip := net.ParseIP(host)
		if ip == nil {
			continue
		}
		addr := net.JoinHostPort(fields[1], "53")
		if isOwnAddress(ip, "53", exclude) {
			continue
		}
		out = append(out, addr)
	}
	return out, sc.Err()
}

// isOwnAddress reports whether ip:port reaches one of the listen addresses.
func isOwnAddress(ip net.IP, port string, listen []string) bool {
	for _, l := range listen {
		host, lport, err := net.SplitHostPort(l)
		if err != nil || lport != port {
			continue
		}
		lip := net.ParseIP(host)
		if host == "" || lip != nil && lip.IsUnspecified() {
			if ip.IsLoopback() || isInterfaceAddress(ip) {
				return true
			}
			continue
		}
		if lip != nil && lip.Equal(ip) {
			return true
		}
	}
	return false
}

func isInterfaceAddress(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// upstreamAddress adds port 53 to an address given without a port.
func upstreamAddress(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}
