package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of Options.
const (
	DefaultTableName       = "k1s-proxy"
	DefaultSyncPeriod      = 30 * time.Second
	DefaultMinSyncInterval = 50 * time.Millisecond
	DefaultMasqueradeBit   = 0x4000 // kube-proxy's
)

// Options configure a Proxier.
type Options struct {
	Client   kubernetes.Interface
	NodeName string
	// NodeIPs: the node's addresses. Endpoints at one of them (host-runtime
	// pods) count as local.
	NodeIPs []net.IP
	// ClusterCIDR: pod addresses (e.g. 10.42.0.0/16). Traffic to a ClusterIP
	// from elsewhere (the node, outside) is masqueraded. Empty: all
	// ClusterIP traffic is.
	ClusterCIDR string
	// ServiceCIDR: ClusterIP range (e.g. 10.43.0.0/16). Informational: the
	// proxy programs the ClusterIPs it is given; the node needs a route that
	// covers this range (a default route does) for its own connections.
	ServiceCIDR string
	// TableName: the nftables table (family ip) the proxy owns, default
	// "k1s-proxy". Give each proxy sharing a network namespace its own.
	TableName string
	// SyncPeriod: full rewrite even without changes (repairs a table that
	// someone else altered). Default 30 s.
	SyncPeriod time.Duration
	// MinSyncInterval: the least time between the end of a write and the
	// start of the next (longer if the last write took longer); changes
	// arriving meanwhile are written together. Default 50 ms.
	MinSyncInterval time.Duration
	Clock           clock.WithTicker
	// NetNSFd: a network namespace to program instead of the process's
	// (tests); 0: the process's.
	NetNSFd int
	// MasqueradeBit: the packet mark bit that asks for masquerading,
	// default 0x4000 (kube-proxy's).
	MasqueradeBit uint32
	// BridgeNetfilter says whether pod traffic bridged on this node goes
	// through netfilter (br_netfilter with net.bridge.bridge-nf-call-iptables
	// = 1). When it does not, a pod reaching a Service whose chosen
	// endpoint is a pod on this node is masqueraded, so that the reply comes
	// back through the node to be un-NATed instead of across the bridge.
	// nil: read /proc/sys/net/bridge/bridge-nf-call-iptables in New.
	BridgeNetfilter *bool
	// LocalPodCIDR: this node's pod addresses, the sources masqueraded
	// when BridgeNetfilter is false. Default ClusterCIDR.
	LocalPodCIDR string
	// Informers: a factory to share; nil creates one. Run starts it.
	Informers informers.SharedInformerFactory
	// RemoveOnExit: Run deletes the table when its context ends. Default
	// false: like kube-proxy, rules outlive the proxy, so a restart does not
	// interrupt Service traffic.
	RemoveOnExit bool
}

// tableWriter is where rule sets go: the kernel, or a recorder in tests.
type tableWriter interface {
	write(*ruleset) error
	pendingStale() bool
	remove() error
}

// Proxier programs Service traffic on one node: it watches Services and
// EndpointSlices and keeps the nftables table in step with them.
type Proxier struct {
	opts   Options
	cfg    config
	node   node
	writer tableWriter
	clock  clock.WithTicker

	services  corelisters.ServiceLister
	endpoints discoverylisters.EndpointSliceLister

	trigger chan struct{}

	mu       sync.Mutex
	last     *ruleset
	lastSPs  []servicePort
	syncs    int
	lastErr  error
	conntrak conntrackCleaner
}

var _ tableWriter = (*kernelTable)(nil)

// New checks the options and builds a Proxier; Run starts it.
func New(o Options) (*Proxier, error) {
	if o.Client == nil && o.Informers == nil {
		return nil, errors.New("proxy: Client is required")
	}
	cfg, n, err := o.complete()
	if err != nil {
		return nil, err
	}
	p := &Proxier{
		opts:     o,
		cfg:      cfg,
		node:     n,
		clock:    o.Clock,
		trigger:  make(chan struct{}, 1),
		conntrak: conntrackCleaner{netns: o.NetNSFd},
	}
	p.writer = &kernelTable{name: o.TableName, netns: o.NetNSFd, clock: o.Clock}
	return p, nil
}

// complete fills in defaults and derives the rule set's configuration.
func (o *Options) complete() (config, node, error) {
	if o.TableName == "" {
		o.TableName = DefaultTableName
	}
	if len(o.TableName) > 200 {
		return config{}, node{}, fmt.Errorf("proxy: TableName %q is too long", o.TableName)
	}
	if o.SyncPeriod <= 0 {
		o.SyncPeriod = DefaultSyncPeriod
	}
	if o.MinSyncInterval <= 0 {
		o.MinSyncInterval = DefaultMinSyncInterval
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.MasqueradeBit == 0 {
		o.MasqueradeBit = DefaultMasqueradeBit
	}
	cfg := config{MasqueradeBit: o.MasqueradeBit}
	if o.ClusterCIDR != "" {
		p, err := netip.ParsePrefix(o.ClusterCIDR)
		if err != nil || !p.Addr().Is4() {
			return config{}, node{}, fmt.Errorf("proxy: ClusterCIDR %q is not an IPv4 CIDR", o.ClusterCIDR)
		}
		cfg.ClusterCIDR = p.Masked()
	}
	bridgeNF := false
	if o.BridgeNetfilter != nil {
		bridgeNF = *o.BridgeNetfilter
	} else {
		b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
		bridgeNF = err == nil && strings.TrimSpace(string(b)) == "1"
		o.BridgeNetfilter = &bridgeNF
	}
	if !bridgeNF {
		local := o.LocalPodCIDR
		if local == "" {
			local = o.ClusterCIDR
		}
		if local != "" {
			p, err := netip.ParsePrefix(local)
			if err != nil || !p.Addr().Is4() {
				return config{}, node{}, fmt.Errorf("proxy: LocalPodCIDR %q is not an IPv4 CIDR", local)
			}
			cfg.LocalPodCIDR = p.Masked()
		}
	}
	n := node{Name: o.NodeName}
	for _, ip := range o.NodeIPs {
		if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap().Is4() {
			n.IPs = append(n.IPs, a.Unmap())
		}
	}
	return cfg, n, nil
}

// Run watches the API and programs the table until ctx ends. It returns
// an error only if it cannot start: the caches never sync, or the first
// write is refused for lack of privilege (not root / CAP_NET_ADMIN). Other
// write errors are logged and retried every second.
func (p *Proxier) Run(ctx context.Context) error {
	factory := p.opts.Informers
	if factory == nil {
		factory = informers.NewSharedInformerFactory(p.opts.Client, 0)
	}
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.requestSync() },
		UpdateFunc: func(any, any) { p.requestSync() },
		DeleteFunc: func(any) { p.requestSync() },
	}
	r1, err := svcInformer.Informer().AddEventHandler(handler)
	if err != nil {
		return err
	}
	r2, err := sliceInformer.Informer().AddEventHandler(handler)
	if err != nil {
		return err
	}
	p.services = svcInformer.Lister()
	p.endpoints = sliceInformer.Lister()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), r1.HasSynced, r2.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxy: informer caches did not sync")
	}
	if err := p.loop(ctx); err != nil {
		return err
	}
	if p.opts.RemoveOnExit {
		if err := p.writer.remove(); err != nil {
			klog.ErrorS(err, "Removing the proxy's nftables table", "table", p.opts.TableName)
		}
	}
	return nil
}

func (p *Proxier) requestSync() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// retryInterval is how soon a failed write is tried again.
const retryInterval = time.Second

// loop writes the table now, on every change, every SyncPeriod, and again
// when a write failed or left chains to delete. Between two writes it
// leaves MinSyncInterval, or as long as the last write took if that is
// longer (a big table then costs at most half of a CPU during a rollout);
// changes arriving meanwhile are written together.
func (p *Proxier) loop(ctx context.Context) error {
	periodic := p.clock.NewTicker(p.opts.SyncPeriod)
	defer periodic.Stop()
	for first := true; ; first = false {
		start := p.clock.Now()
		err := p.syncOnce()
		end := p.clock.Now()
		if first && errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("proxy: programming nftables needs CAP_NET_ADMIN: %w", err)
		}
		var again <-chan time.Time
		if err != nil {
			klog.ErrorS(err, "Programming Services failed, will retry", "table", p.opts.TableName, "retryIn", retryInterval)
			again = p.clock.After(retryInterval)
		} else if p.writer.pendingStale() {
			again = p.clock.After(staleChainDelay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-periodic.C():
		case <-again:
		}
		gap := max(p.opts.MinSyncInterval, end.Sub(start))
		if wait := gap - p.clock.Since(end); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-p.clock.After(wait):
			}
		}
		// Changes that came during the wait are part of this write.
		select {
		case <-p.trigger:
		default:
		}
	}
}

// syncOnce computes the rule set from the caches and writes it.
func (p *Proxier) syncOnce() error {
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	slices, err := p.endpoints.List(labels.Everything())
	if err != nil {
		return err
	}
	sps := buildServicePorts(svcs, slices, p.node)
	rs := buildRuleset(p.cfg, sps)
	start := p.clock.Now()
	err = p.writer.write(rs)
	p.mu.Lock()
	prev := p.lastSPs
	p.lastErr = err
	if err == nil {
		p.last, p.lastSPs = rs, sps
		p.syncs++
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	klog.V(4).InfoS("Programmed Services", "table", p.opts.TableName, "servicePorts", len(sps), "elapsed", p.clock.Since(start))
	p.conntrak.forgetRemovedUDP(prev, sps)
	return nil
}

// Dump returns the rule set last written, in `nft list table` syntax (for
// debugging and tests); empty before the first write.
func (p *Proxier) Dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return ""
	}
	return p.last.String(p.opts.TableName)
}

// Status reports how many writes succeeded and the last write's error.
func (p *Proxier) Status() (syncs int, lastErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syncs, p.lastErr
}

// RemoveTable deletes a proxy table left behind (e.g. by a proxy run
// without RemoveOnExit); nothing if there is none. netnsFd 0 is the
// process's network namespace.
func RemoveTable(tableName string, netnsFd int) error {
	if tableName == "" {
		tableName = DefaultTableName
	}
	k := &kernelTable{name: tableName, netns: netnsFd, clock: clock.RealClock{}}
	return k.remove()
}

// Programmed computes, without touching the kernel, the rule set a proxy
// with these options would write for these objects, in `nft list table`
// syntax. Client is not needed.
func Programmed(o Options, services []*v1.Service, endpointSlices []*discovery.EndpointSlice) (string, error) {
	cfg, n, err := o.complete()
	if err != nil {
		return "", err
	}
	return buildRuleset(cfg, buildServicePorts(services, endpointSlices, n)).String(o.TableName), nil
}
