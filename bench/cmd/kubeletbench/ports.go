package main

import (
	"fmt"
	"net"
)

// portPicker hands out ports that were free when picked, from next up
// (below the ephemeral range by default, so outgoing connections do not
// take them meanwhile).
type portPicker struct {
	next int
}

func (p *portPicker) pick() (int, error) {
	for ; p.next < 65536; p.next++ {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p.next))
		if err != nil {
			continue
		}
		l.Close()
		p.next++
		return p.next - 1, nil
	}
	return 0, fmt.Errorf("no free port left")
}
