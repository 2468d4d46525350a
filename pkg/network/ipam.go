package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Address management, as CNI's host-local plugin: StateDir/ipam/<address>
// holds the id of the pod the address is allocated to (created exclusively),
// StateDir/ipam/last the address handed out last (the next allocation
// starts after it, so a released address is not reused at once). The
// network address, the gateway (first address) and the broadcast address
// are never handed out. hostPort mappings are in StateDir/ports/<id>.json.

const lastFile = "last"

func (m *Manager) ipamDir() string { return filepath.Join(m.cfg.StateDir, "ipam") }
func (m *Manager) portsFile(id string) string {
	return filepath.Join(m.cfg.StateDir, "ports", id+".json")
}

// load reads the allocations of a previous Manager.
func (m *Manager) load() error {
	es, err := os.ReadDir(m.ipamDir())
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, e := range es {
		ip := net.ParseIP(e.Name()).To4()
		if ip == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(m.ipamDir(), e.Name()))
		if err != nil {
			return fmt.Errorf("network: %w", err)
		}
		id, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		if validID(id) != nil {
			continue
		}
		if prev := m.pods[id]; prev != nil {
			// Two addresses for one id (should not happen): keep one,
			// release the other.
			_ = os.Remove(filepath.Join(m.ipamDir(), e.Name()))
			continue
		}
		p := &pod{ip: ip}
		if data, err := os.ReadFile(m.portsFile(id)); err == nil {
			_ = json.Unmarshal(data, &p.ports)
		}
		m.pods[id] = p
		m.byIP[ip.String()] = id
	}
	if data, err := os.ReadFile(filepath.Join(m.ipamDir(), lastFile)); err == nil {
		if ip := net.ParseIP(strings.TrimSpace(string(data))).To4(); ip != nil {
			m.last = ipToUint(ip)
		}
	}
	return nil
}

// allocate reserves the next free address of the pod CIDR for id and
// records its hostPorts.
func (m *Manager) allocate(id string, ports []PortMapping) (ip net.IP, podNet *net.IPNet, gw net.IP, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podNet == nil {
		return nil, nil, nil, notReady()
	}
	podNet, gw = m.podNet, m.gateway
	if p := m.pods[id]; p != nil && podNet.Contains(p.ip) {
		ip = p.ip
	} else {
		if p != nil {
			// An address of a previous pod CIDR.
			if _, err := m.release(id); err != nil {
				return nil, nil, nil, err
			}
		}
		ones, bits := podNet.Mask.Size()
		base := ipToUint(podNet.IP)
		size := uint32(1) << uint(bits-ones)
		first, last := base+2, base+size-2 // not network, gateway, broadcast
		start := m.last + 1
		if start < first || start > last {
			start = first
		}
		n := last - first + 1
		for i := uint32(0); i < n; i++ {
			cand := start + i
			if cand > last {
				cand -= n
			}
			candIP := uintToIP(cand)
			if _, taken := m.byIP[candIP.String()]; taken {
				continue
			}
			f, err := os.OpenFile(filepath.Join(m.ipamDir(), candIP.String()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err != nil {
				return nil, nil, nil, fmt.Errorf("network: %w", err)
			}
			_, werr := f.WriteString(id + "\n")
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				_ = os.Remove(f.Name())
				return nil, nil, nil, fmt.Errorf("network: %w", werr)
			}
			ip = candIP
			break
		}
		if ip == nil {
			return nil, nil, nil, fmt.Errorf("network: no free IP address in %s", podNet)
		}
		m.pods[id] = &pod{ip: ip}
		m.byIP[ip.String()] = id
		m.last = ipToUint(ip)
		_ = writeFileAtomic(filepath.Join(m.ipamDir(), lastFile), []byte(ip.String()))
	}
	p := m.pods[id]
	p.ports = ports
	if len(ports) > 0 {
		if err := writeJSON(m.portsFile(id), ports); err != nil {
			return nil, nil, nil, fmt.Errorf("network: %w", err)
		}
	} else if err := os.Remove(m.portsFile(id)); err != nil && !os.IsNotExist(err) {
		return nil, nil, nil, fmt.Errorf("network: %w", err)
	}
	return ip, podNet, gw, nil
}

// release frees id's address and hostPorts; m.mu is held. hadPorts tells
// whether the nftables rules must change.
func (m *Manager) release(id string) (hadPorts bool, err error) {
	var errs []error
	if p := m.pods[id]; p != nil {
		if err := os.Remove(filepath.Join(m.ipamDir(), p.ip.String())); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		} else {
			delete(m.pods, id)
			delete(m.byIP, p.ip.String())
		}
		hadPorts = len(p.ports) > 0
	}
	if err := os.Remove(m.portsFile(id)); err == nil {
		hadPorts = true
	} else if !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return hadPorts, errors.Join(errs...)
}
