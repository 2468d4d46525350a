package pki

import (
	"net"
	"os"
)

// MachineHosts returns this machine's host name and the addresses of its
// up, non-loopback interfaces (link-local ones excluded): what a serving
// certificate needs so that agents on other machines can reach the server
// by name or address. Add DefaultServingHosts for loopback and the
// in-cluster names.
func MachineHosts() []string {
	var hosts []string
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return hosts
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok || ipnet.IP.IsLinkLocalUnicast() || ipnet.IP.IsLoopback() {
				continue
			}
			hosts = append(hosts, ipnet.IP.String())
		}
	}
	return hosts
}
