// Package dns is the cluster DNS of k1s: the records of CoreDNS's
// kubernetes plugin (`pods insecure`, TTL 5) for the cluster domain,
// answered from informers on Services, EndpointSlices and Namespaces, and
// every other name forwarded to the host's name servers.
//
// Records (zone cluster.local):
//
//	<svc>.<ns>.svc                 A/AAAA cluster IPs; headless: ready endpoint addresses
//	<ep>.<svc>.<ns>.svc            A/AAAA of the endpoint whose hostname (or dashed address) is <ep>
//	_<port>._<proto>.<svc>.<ns>.svc SRV per named port (also <svc>.<ns>.svc SRV: every port)
//	<svc>.<ns>.svc (ExternalName)  CNAME to spec.externalName, followed for the asked type
//	<a-b-c-d>.<ns>.pod             A/AAAA from the name itself
//	cluster.local                  SOA, NS; dns-version TXT "1.1.0"; ns.dns A
//	<reversed>.in-addr.arpa        PTR for cluster IPs and ready endpoint addresses
//
// Names that cannot exist are NXDOMAIN and names without records of the
// asked type NODATA, both with the zone's SOA. Unknown reverse names and
// all other names go to the upstreams; when none answers within
// ForwardTimeout the client gets SERVFAIL.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

const (
	// DefaultDomain is the cluster domain.
	DefaultDomain = "cluster.local"
	// DefaultTTL is the TTL of every record, CoreDNS's kubernetes default.
	DefaultTTL = 5
	// DefaultForwardTimeout bounds how long a forwarded query waits for all
	// upstreams together before the client gets SERVFAIL.
	DefaultForwardTimeout = 2 * time.Second
	// advertisedUDPSize is the EDNS0 buffer size we announce (the DNS flag
	// day 2020 value).
	advertisedUDPSize = 1232
)

// Options configure a Server.
type Options struct {
	// Client reads Services, EndpointSlices and Namespaces. Required.
	Client kubernetes.Interface
	// Domain is the cluster domain; DefaultDomain when empty.
	Domain string
	// Listen lists host:port addresses served over UDP and TCP, e.g.
	// "10.43.0.10:53". Port 0 picks a free port (the same for UDP and
	// TCP); Addrs tells which. Required.
	Listen []string
	// Upstreams are the name servers (host or host:port) other names are
	// forwarded to. Nil means the nameservers of ResolvConf minus our own
	// listen addresses; an empty non-nil slice forwards nothing (SERVFAIL).
	Upstreams []string
	// ResolvConf is read when Upstreams is nil; DefaultResolvConf when empty.
	ResolvConf string
	// TTL of every record; DefaultTTL when zero.
	TTL uint32
	// ForwardTimeout; DefaultForwardTimeout when zero.
	ForwardTimeout time.Duration
	// Clock stamps the SOA serial and measures query durations.
	Clock clock.PassiveClock
	// Observe, when set, is called after every answered query (it must be
	// quick and safe for concurrent use); see RcodeCounter.
	Observe func(Query)
}

// Query describes one answered query, for metrics.
type Query struct {
	Name  string // as asked
	Type  uint16 // mdns.TypeA, ...
	Rcode int    // mdns.RcodeSuccess, mdns.RcodeNameError, ...
	// Forwarded is true when the answer came from (or failed at) the
	// upstream name servers.
	Forwarded bool
	Duration  time.Duration
}

// Server is the cluster DNS server. Create it with New, start it with Run.
type Server struct {
	opts    Options
	cat     *informerCatalog
	zone    *zone
	forward *forwarder

	ctx    context.Context // Run's, for forwarded queries
	synced atomic.Bool
	ready  chan struct{}

	mu    sync.Mutex
	addrs []string
}

// New checks opts and prepares a server; nothing listens until Run.
func New(opts Options) (*Server, error) {
	if opts.Client == nil {
		return nil, errors.New("dns: Options.Client is required")
	}
	if len(opts.Listen) == 0 {
		return nil, errors.New("dns: Options.Listen is required")
	}
	for _, l := range opts.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return nil, fmt.Errorf("dns: listen address %q: %w", l, err)
		}
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	origin := mdns.CanonicalName(opts.Domain)
	if _, ok := mdns.IsDomainName(origin); !ok || origin == "." {
		return nil, fmt.Errorf("dns: invalid domain %q", opts.Domain)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.ForwardTimeout <= 0 {
		opts.ForwardTimeout = DefaultForwardTimeout
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = DefaultResolvConf
	}
	upstreams := make([]string, 0, len(opts.Upstreams))
	if opts.Upstreams == nil {
		var err error
		if upstreams, err = hostNameservers(opts.ResolvConf, opts.Listen); err != nil {
			klog.InfoS("Cluster DNS forwards nothing: no host name servers", "resolvConf", opts.ResolvConf, "err", err)
		}
	} else {
		for _, u := range opts.Upstreams {
			upstreams = append(upstreams, upstreamAddress(u))
		}
	}
	cat, err := newInformerCatalog(opts.Client, opts.Clock)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	fwd := &forwarder{upstreams: upstreams, timeout: opts.ForwardTimeout}
	return &Server{
		opts:    opts,
		cat:     cat,
		forward: fwd,
		zone:    &zone{origin: origin, ttl: opts.TTL, cat: cat, upstream: fwd},
		ctx:     context.Background(),
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once the server listens and its caches are filled.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound address (host:port) of each listen address, in
// the order of Options.Listen; valid once Ready is closed.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// Upstreams returns the name servers other names are forwarded to.
func (s *Server) Upstreams() []string { return append([]string(nil), s.forward.upstreams...) }

// Run listens on every listen address (UDP and TCP), watches the cluster
// and serves until ctx is done. It returns an error when an address cannot
// be bound or a listener fails; nil after ctx is done. Call it once.
// Queries for the cluster domain are answered SERVFAIL until the caches
// are filled, so clients retry instead of caching a wrong NXDOMAIN.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each listen address is two servers, UDP and TCP. Shutdown only works
	// once a server has started, so remember which did.
	type running struct {
		srv     *mdns.Server
		started chan struct{}
		done    chan struct{}
	}
	var runs []*running
	var addrs []string
	var localIPs []net.IP
	for _, l := range s.opts.Listen {
		pc, ln, err := listen(l)
		if err != nil {
			for _, r := range runs {
				if r.srv.PacketConn != nil {
					r.srv.PacketConn.Close()
				}
				if r.srv.Listener != nil {
					r.srv.Listener.Close()
				}
			}
			return fmt.Errorf("dns: listen on %s: %w", l, err)
		}
		for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
			r := &running{srv: srv, started: make(chan struct{}), done: make(chan struct{})}
			srv.NotifyStartedFunc = sync.OnceFunc(func() { close(r.started) })
			runs = append(runs, r)
		}
		udp := pc.LocalAddr().(*net.UDPAddr)
		addrs = append(addrs, udp.String())
		if !udp.IP.IsUnspecified() {
			localIPs = append(localIPs, udp.IP)
		}
	}
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()
	s.zone.localIPs = localIPs
	s.ctx = ctx

	errc := make(chan error, len(runs))
	for _, r := range runs {
		go func() {
			defer close(r.done)
			if err := r.srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		}()
	}

	s.cat.factory.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), s.cat.hasSynced) {
			s.synced.Store(true)
			close(s.ready)
		}
	}()
	klog.InfoS("Cluster DNS serving", "domain", strings.TrimSuffix(s.zone.origin, "."), "addresses", addrs, "upstreams", s.forward.upstreams)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns: %w", err)
	}
	cancel()
	for _, r := range runs {
		select {
		case <-r.started:
			_ = r.srv.Shutdown()
		case <-r.done:
		}
	}
	for _, r := range runs {
		<-r.done
	}
	s.cat.factory.Shutdown()
	return err
}

// listen binds UDP and TCP on addr; with port 0 both get the same port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := port
		if p == "0" {
			p = fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// ServeDNS answers one query: the cluster zone from the caches, PTR
// queries for the cluster's addresses likewise, everything else through
// the upstream name servers.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	start := s.opts.Clock.Now()
	if len(req.Question) != 1 {
		m := new(mdns.Msg)
		m.SetRcodeFormatError(req)
		s.write(w, req, m)
		return
	}
	q := req.Question[0]
	qname := strings.ToLower(q.Name)
	var m *mdns.Msg
	forwarded := false
	switch {
	case q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR:
		m = new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeRefused)
	case s.zone.contains(qname):
		m = s.serveZone(req, q)
	default:
		if q.Qtype == mdns.TypePTR && s.synced.Load() {
			if ip := reverseIP(qname); ip != nil {
				if a, ok := s.zone.reverse(q.Name, ip); ok {
					m = authoritative(req, a)
				}
			}
		}
		if m == nil {
			forwarded = true
			m = s.serveForward(req)
		}
	}
	s.write(w, req, m)
	if s.opts.Observe != nil {
		s.opts.Observe(Query{Name: q.Name, Type: q.Qtype, Rcode: m.Rcode, Forwarded: forwarded, Duration: s.opts.Clock.Since(start)})
	}
}

func (s *Server) serveZone(req *mdns.Msg, q mdns.Question) *mdns.Msg {
	if !s.synced.Load() {
		m := new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	a := s.zone.lookup(s.ctx, q.Name, q.Qtype, 0)
	m := authoritative(req, a)
	if a.rcode == mdns.RcodeNameError || len(a.answer) == 0 {
		m.Ns = []mdns.RR{s.zone.soa()}
	}
	return m
}

func authoritative(req *mdns.Msg, a answer) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(req, a.rcode)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer = a.answer
	m.Extra = a.extra
	return m
}

func (s *Server) serveForward(req *mdns.Msg) *mdns.Msg {
	resp, err := s.forward.exchange(s.ctx, req)
	if err != nil {
		klog.V(4).InfoS("Cluster DNS forward failed", "name", req.Question[0].Name, "err", err)
		m := new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	return resp
}

// write sends m, truncated to what the client can take over UDP, with an
// OPT record when the client sent one.
func (s *Server) write(w mdns.ResponseWriter, req *mdns.Msg, m *mdns.Msg) {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		if m.IsEdns0() == nil {
			m.SetEdns0(advertisedUDPSize, false)
		}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	} else {
		m.Truncate(mdns.MaxMsgSize)
	}
	if err := w.WriteMsg(m); err != nil {
		klog.V(4).InfoS("Cluster DNS reply failed", "client", w.RemoteAddr(), "err", err)
	}
}
