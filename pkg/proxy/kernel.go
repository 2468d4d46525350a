package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// kernelTable writes rule sets into one nftables table, each in a single
// netlink batch: the kernel commits a batch atomically, so packets see the
// old rules or the new ones, never a table in between.
//
// Each write flushes and refills the table's chains and maps instead of
// deleting the table, so that the ClientIP affinity sets keep their clients.
// A chain no longer wanted is flushed at once and deleted by a later write
// (at least staleChainDelay after): kernels before 6.2 notice only a little
// later that a map element no longer points at it. If an incremental write
// fails, the table is deleted and written from scratch in one batch.
type kernelTable struct {
	name  string
	netns int // 0: the process's network namespace
	clock clock.Clock
	stale map[string]time.Time // flushed chains to delete, since when
	// written: a write succeeded. The first write rebuilds the table, so
	// that base chains left by another version take the current hooks.
	written bool
}

const staleChainDelay = time.Second

// netlink batches of a few thousand messages need more socket buffer than
// the default; root may raise it past net.core.[rw]mem_max.
const socketBuffer = 16 << 20

// netlinkTimeout bounds every netlink exchange, so that a lost
// acknowledgement cannot hang the proxy.
const netlinkTimeout = 30 * time.Second

func (k *kernelTable) conn() (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(k.netns), nftables.WithSockOptions(func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer)
		})
		return c.SetDeadline(time.Now().Add(netlinkTimeout))
	}))
}

// kernelState is what the table holds now.
type kernelState struct {
	exists bool
	chains map[string]bool
	sets   map[string]*nftables.Set // named sets only
}

func (k *kernelTable) table() *nftables.Table {
	return &nftables.Table{Name: k.name, Family: nftables.TableFamilyIPv4}
}

func (k *kernelTable) read(c *nftables.Conn) (*kernelState, error) {
	st := &kernelState{chains: map[string]bool{}, sets: map[string]*nftables.Set{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == k.name {
			st.exists = true
		}
	}
	if !st.exists {
		return st, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == k.name {
			st.chains[ch.Name] = true
		}
	}
	sets, err := c.GetSets(k.table())
	if err != nil {
		return nil, fmt.Errorf("listing nftables sets: %w", err)
	}
	for _, s := range sets {
		if !s.Anonymous && !strings.HasPrefix(s.Name, "__") {
			st.sets[s.Name] = s
		}
	}
	return st, nil
}

// write makes the table hold rs.
func (k *kernelTable) write(rs *ruleset) error {
	c, err := k.conn()
	if err != nil {
		return err
	}
	st, err := k.read(c)
	if err == nil && k.written {
		if err = k.batch(c, rs, st, false); err == nil {
			return nil
		}
	}
	// Rebuild: delete and create in one batch.
	if err != nil {
		klog.InfoS("Rewriting the proxy's nftables table from scratch", "table", k.name, "reason", err)
	}
	if st == nil {
		st = &kernelState{exists: true} // unknown: delete whatever is there
	}
	if err2 := k.batch(c, rs, st, true); err2 != nil {
		return errors.Join(err, err2)
	}
	k.written = true
	return nil
}

// batch sends one transaction turning st into rs.
func (k *kernelTable) batch(c *nftables.Conn, rs *ruleset, st *kernelState, rebuild bool) error {
	t := k.table()
	now := k.clock.Now()
	if rebuild {
		if st.exists {
			// DelTable of a table that is gone fails the batch; add it first.
			c.AddTable(t)
			c.DelTable(t)
		}
		st = &kernelState{chains: map[string]bool{}, sets: map[string]*nftables.Set{}}
		k.stale = nil
	}
	c.AddTable(t)

	// Every rule goes (one message for the whole table), then the chains
	// that are missing are added: map elements and rules refer to them.
	if st.exists {
		c.FlushTable(t)
	}
	wanted := map[string]bool{}
	for _, ch := range rs.Chains {
		wanted[ch.Name] = true
		if st.chains[ch.Name] {
			continue
		}
		nc := &nftables.Chain{Table: t, Name: ch.Name}
		if ch.Hook != nil {
			policy := nftables.ChainPolicyAccept
			prio := nftables.ChainPriority(ch.Hook.Priority)
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = ch.Hook.Type, ch.Hook.Hook, &prio, &policy
		}
		c.AddChain(nc)
	}
	var stale []string
	for name := range st.chains {
		if !wanted[name] {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)

	// Sets and maps: refilled; affinity sets kept unless their timeout
	// changed. Sets no longer wanted are deleted (the rules using them are
	// flushed above).
	wantedSets := map[string]bool{}
	for i := range rs.Sets {
		s := &rs.Sets[i]
		wantedSets[s.Name] = true
		have := st.sets[s.Name]
		set := s.nftSet(t)
		switch {
		case have == nil:
			if err := c.AddSet(set, nil); err != nil {
				return err
			}
			if err := addElements(c, set, s.nftElements()); err != nil {
				return err
			}
		case s.Timeout > 0 && have.Timeout == s.Timeout:
			// keep the clients it remembers
		case s.Timeout > 0:
			c.DelSet(set)
			if err := c.AddSet(set, nil); err != nil {
				return err
			}
		default:
			c.FlushSet(set)
			if err := addElements(c, set, s.nftElements()); err != nil {
				return err
			}
		}
	}
	for name := range st.sets {
		if !wantedSets[name] {
			c.DelSet(&nftables.Set{Table: t, Name: name})
		}
	}

	for _, ch := range rs.Chains {
		nc := &nftables.Chain{Table: t, Name: ch.Name}
		for _, r := range ch.Rules {
			var exprs []expr.Any
			for _, s := range r {
				exprs = append(exprs, s.exprs()...)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: nc, Exprs: exprs})
		}
	}

	// Chains flushed by an earlier write are unreferenced by now.
	next := map[string]time.Time{}
	for _, name := range stale {
		since, ok := k.stale[name]
		switch {
		case !ok:
			next[name] = now
		case now.Sub(since) >= staleChainDelay:
			c.DelChain(&nftables.Chain{Table: t, Name: name})
		default:
			next[name] = since
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", k.name, err)
	}
	k.stale = next
	return nil
}

// elementsPerMessage keeps each element message far below 64 KiB: the
// element list is one netlink attribute, whose length is 16 bits, and the
// library does not split it (a longer list is silently cut by the kernel's
// parser). An element is at most ~300 bytes (a verdict naming a chain).
const elementsPerMessage = 100

func addElements(c *nftables.Conn, set *nftables.Set, elems []nftables.SetElement) error {
	for len(elems) > 0 {
		n := min(len(elems), elementsPerMessage)
		if err := c.SetAddElements(set, elems[:n]); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}

// pendingStale says whether chains wait for deletion, and so another write
// is due.
func (k *kernelTable) pendingStale() bool { return len(k.stale) > 0 }

// remove deletes the table (nothing if it is gone).
func (k *kernelTable) remove() error {
	c, err := k.conn()
	if err != nil {
		return err
	}
	st, err := k.read(c)
	if err != nil {
		return err
	}
	if !st.exists {
		return nil
	}
	c.DelTable(k.table())
	return c.Flush()
}
