package proxy

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// TestKernelTable checks the table the kernel holds after each write: the
// rule set's chains and sets exactly, except chains no longer wanted, which
// are emptied at once and deleted a second later.
func TestKernelTable(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	k := &kernelTable{name: "k1s-proxy-table-test", netns: int(ns), clock: clk}
	http := []discovery.EndpointPort{epPort("", 8080)}
	opts := Options{NodeName: "node1", NodeIPs: []net.IP{net.ParseIP("192.0.2.2")}, ClusterCIDR: "10.42.0.0/16", BridgeNetfilter: ptr.To(true)}
	cfg, n, err := opts.complete()
	if err != nil {
		t.Fatal(err)
	}
	rules := func(svcs []*v1.Service, eps []*discovery.EndpointSlice) *ruleset {
		return buildRuleset(cfg, buildServicePorts(svcs, eps, n))
	}
	a := withAffinity(service("a", "10.43.0.10", svcPort("", 80, 8080)), 60)
	b := nodePortService("b", "10.43.0.11", 80, 8080, 30080)
	aEPs := endpointSlice("a", "a-1", http, readyEP("10.42.0.11", "node1"), readyEP("10.42.0.12", "node1"))
	bEPs := endpointSlice("b", "b-1", http, readyEP("10.42.0.13", "node1"))

	state := func() *kernelState {
		t.Helper()
		c, err := k.conn()
		if err != nil {
			t.Fatal(err)
		}
		st, err := k.read(c)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	names := func(rs *ruleset) (chains, sets []string) {
		for _, c := range rs.Chains {
			chains = append(chains, c.Name)
		}
		for _, s := range rs.Sets {
			sets = append(sets, s.Name)
		}
		slices.Sort(chains)
		slices.Sort(sets)
		return chains, sets
	}
	check := func(t *testing.T, rs *ruleset, extraChains ...string) {
		t.Helper()
		st := state()
		wantChains, wantSets := names(rs)
		wantChains = append(wantChains, extraChains...)
		slices.Sort(wantChains)
		if got := slices.Sorted(maps.Keys(st.chains)); !slices.Equal(got, wantChains) {
			t.Errorf("chains in the kernel:\n%q\nwant\n%q", got, wantChains)
		}
		if got := slices.Sorted(maps.Keys(st.sets)); !slices.Equal(got, wantSets) {
			t.Errorf("sets in the kernel:\n%q\nwant\n%q", got, wantSets)
		}
	}

	both := rules([]*v1.Service{a, b}, []*discovery.EndpointSlice{aEPs, bEPs})
	if err := k.write(both); err != nil {
		t.Fatal(err)
	}
	check(t, both)

	// An affinity entry, as the kernel would add for a client.
	var affinity *nftables.Set
	for _, s := range state().sets {
		if s.HasTimeout {
			affinity = s
		}
	}
	if affinity == nil {
		t.Fatal("no affinity set in the kernel")
	}
	addClient := func() {
		c, _ := k.conn()
		if err := c.SetAddElements(&nftables.Set{Table: k.table(), Name: affinity.Name, HasTimeout: true}, []nftables.SetElement{{Key: []byte{10, 42, 0, 99}}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	clients := func() int {
		c, _ := k.conn()
		elems, err := c.GetSetElements(&nftables.Set{Table: k.table(), Name: affinity.Name})
		if err != nil {
			t.Fatal(err)
		}
		return len(elems)
	}
	addClient()

	onlyA := rules([]*v1.Service{a}, []*discovery.EndpointSlice{aEPs})
	_, _ = names(onlyA)
	if err := k.write(onlyA); err != nil {
		t.Fatal(err)
	}
	bChains := []string{}
	for _, c := range both.Chains {
		if !slices.ContainsFunc(onlyA.Chains, func(x chainSpec) bool { return x.Name == c.Name }) {
			bChains = append(bChains, c.Name)
		}
	}
	if len(bChains) == 0 {
		t.Fatal("b has no chains of its own")
	}
	t.Run("a removed Service's chains are emptied, then deleted a second later", func(t *testing.T) {
		check(t, onlyA, bChains...)
		if !k.pendingStale() {
			t.Fatal("no chains pending deletion")
		}
		clk.Step(500 * time.Millisecond)
		if err := k.write(onlyA); err != nil {
			t.Fatal(err)
		}
		check(t, onlyA, bChains...)
		clk.Step(500 * time.Millisecond)
		if err := k.write(onlyA); err != nil {
			t.Fatal(err)
		}
		check(t, onlyA)
		if k.pendingStale() {
			t.Fatal("chains still pending deletion")
		}
	})
	t.Run("affinity sets keep their clients across writes", func(t *testing.T) {
		if n := clients(); n != 1 {
			t.Fatalf("%d clients remembered, want 1", n)
		}
	})
	t.Run("an affinity timeout change recreates the set", func(t *testing.T) {
		a2 := withAffinity(a.DeepCopy(), 120)
		rs := rules([]*v1.Service{a2}, []*discovery.EndpointSlice{aEPs})
		if err := k.write(rs); err != nil {
			t.Fatal(err)
		}
		check(t, rs)
		for _, s := range state().sets {
			if s.HasTimeout && s.Timeout != 120*time.Second {
				t.Errorf("set %s timeout %s, want 2m", s.Name, s.Timeout)
			}
		}
		if n := clients(); n != 0 {
			t.Fatalf("%d clients remembered, want 0", n)
		}
	})
	t.Run("a table changed behind the proxy's back is rebuilt", func(t *testing.T) {
		c, _ := k.conn()
		c.FlushChain(&nftables.Chain{Table: k.table(), Name: chainNatPrerouting})
		c.FlushChain(&nftables.Chain{Table: k.table(), Name: chainNatOutput})
		c.FlushChain(&nftables.Chain{Table: k.table(), Name: chainServices})
		c.DelSet(&nftables.Set{Table: k.table(), Name: mapServiceIPs})
		c.DelChain(&nftables.Chain{Table: k.table(), Name: chainServices})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		// A set of the wrong type under a name of ours: only a rebuild mends it.
		if err := c.AddSet(&nftables.Set{Table: k.table(), Name: mapServiceIPs, KeyType: nftables.TypeIPAddr}, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := k.write(both); err != nil {
			t.Fatal(err)
		}
		check(t, both)
	})
	t.Run("a big table: every element reaches the kernel", func(t *testing.T) {
		// An element list longer than 64 KiB in one message would be cut.
		var svcs []*v1.Service
		var eps []*discovery.EndpointSlice
		for i := range 1000 {
			name := fmt.Sprintf("svc-%d", i)
			s := nodePortService(name, fmt.Sprintf("10.43.%d.%d", i/250, i%250+1), 80, 8080, int32(30000+i))
			if i%2 == 0 {
				s.Spec.Type = v1.ServiceTypeClusterIP
				s.Spec.Ports[0].NodePort = 0
			}
			svcs = append(svcs, s)
			eps = append(eps, endpointSlice(name, name+"-1", http, readyEP(fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), "node1")))
		}
		rs := rules(svcs, eps)
		if err := k.write(rs); err != nil {
			t.Fatal(err)
		}
		var stale []string // both's, emptied
		for _, c := range both.Chains {
			if !slices.ContainsFunc(rs.Chains, func(x chainSpec) bool { return x.Name == c.Name }) {
				stale = append(stale, c.Name)
			}
		}
		check(t, rs, stale...)
		c, _ := k.conn()
		for _, s := range rs.Sets {
			got, err := c.GetSetElements(&nftables.Set{Table: k.table(), Name: s.Name})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(s.Elements) {
				t.Errorf("set %s: %d elements in the kernel, want %d", s.Name, len(got), len(s.Elements))
			}
		}
	})
	t.Run("remove deletes the table; removing it again is fine", func(t *testing.T) {
		for range 2 {
			if err := k.remove(); err != nil {
				t.Fatal(err)
			}
			if state().exists {
				t.Fatal("table still there")
			}
		}
	})
}
