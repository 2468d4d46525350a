package dns

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

var errNoUpstream = errors.New("no upstream name servers")

// forwarder relays queries for names outside the cluster to the host's
// name servers: UDP first, TCP when the UDP answer is truncated. All
// upstreams together get one time budget, so a dead upstream costs a
// bounded wait and the client hears SERVFAIL instead of silence.
type forwarder struct {
	upstreams []string // host:port
	timeout   time.Duration
	// preferred is the index of the upstream that answered last; it is
	// asked first next time.
	preferred atomic.Int32
}

var _ resolver = (*forwarder)(nil)

// exchange sends req to the upstreams in turn until one answers, within
// the forwarder's timeout. The reply carries req's ID.
func (f *forwarder) exchange(ctx context.Context, req *mdns.Msg) (*mdns.Msg, error) {
	n := len(f.upstreams)
	if n == 0 {
		return nil, errNoUpstream
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	first := int(f.preferred.Load())
	err := errNoUpstream
	for i := range n {
		idx := (first + i) % n
		// Each remaining upstream gets an equal share of what is left.
		share := time.Until(deadline) / time.Duration(n-i)
		if share <= 0 {
			break
		}
		actx, acancel := context.WithTimeout(ctx, share)
		var resp *mdns.Msg
		resp, err = exchangeOne(actx, req, f.upstreams[idx])
		acancel()
		if err == nil {
			f.preferred.Store(int32(idx))
			return resp, nil
		}
	}
	return nil, err
}

// lookup asks the upstreams for name (fully qualified) of type qtype.
func (f *forwarder) lookup(ctx context.Context, name string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(advertisedUDPSize, false)
	return f.exchange(ctx, m)
}

func exchangeOne(ctx context.Context, req *mdns.Msg, addr string) (*mdns.Msg, error) {
	q := req.Copy()
	q.Id = mdns.Id()
	udp := &mdns.Client{Net: "udp", UDPSize: advertisedUDPSize}
	resp, _, err := udp.ExchangeContext(ctx, q, addr)
	if err != nil {
		return nil, err
	}
	if resp.Truncated {
		tcp := &mdns.Client{Net: "tcp"}
		if full, _, err := tcp.ExchangeContext(ctx, q, addr); err == nil {
			resp = full
		}
		// else keep the truncated answer: the client retries over TCP.
	}
	resp.Id = req.Id
	return resp, nil
}
