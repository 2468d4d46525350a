package dns

import (
	"slices"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// BenchmarkQuery measures in-zone answers over loopback UDP: each client
// goroutine keeps one socket and waits for every answer before the next
// query. Reported: queries/s and latency percentiles.
func BenchmarkQuery(b *testing.B) {
	for _, c := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"ClusterIP-A", "web.ns1.svc.cluster.local.", mdns.TypeA},
		{"Headless-SRV", "_pg._tcp.db.ns1.svc.cluster.local.", mdns.TypeSRV},
		{"NXDOMAIN", "missing.ns1.svc.cluster.local.", mdns.TypeA},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := startServer(b, nil, cluster()...)
			var mu sync.Mutex
			var all []time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				conn, err := mdns.Dial("udp", e.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				m := new(mdns.Msg)
				m.SetQuestion(c.qname, c.qtype)
				var lat []time.Duration
				for pb.Next() {
					m.Id = mdns.Id()
					t0 := time.Now()
					if err := conn.WriteMsg(m); err != nil {
						b.Error(err)
						return
					}
					conn.SetReadDeadline(time.Now().Add(2 * time.Second))
					r, err := conn.ReadMsg()
					if err != nil {
						b.Error(err)
						return
					}
					lat = append(lat, time.Since(t0))
					if r.Rcode == mdns.RcodeServerFailure {
						b.Error("SERVFAIL")
						return
					}
				}
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if len(all) == 0 {
				return
			}
			slices.Sort(all)
			pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "queries/s")
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}
