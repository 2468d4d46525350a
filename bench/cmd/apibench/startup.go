package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"k1s.dev/k1s/bench/internal/harness"
)

const readyTimeout = 90 * time.Second

// startup: cold start (exec → first 200 on /readyz) on fresh data dirs,
// then a warm restart on the last one, whose idle memory is read 5 s after
// ready and again after -settle. These servers run with default flags: everything the server runs.
func (b *bench) startup(ctx context.Context) error {
	var cold, stops, pre []time.Duration
	var dir string
	for i := 0; i < b.coldRuns; i++ {
		dir = b.newDir()
		s, err := harness.Start(b.binary, dir)
		if err != nil {
			return err
		}
		d, err := s.WaitReadyz(readyTimeout)
		if err != nil {
			s.Stop()
			return fmt.Errorf("cold start %d: %w", i+1, err)
		}
		k, err := s.KubeconfigWritten()
		if err != nil {
			s.Stop()
			return err
		}
		pre = append(pre, k)
		// The components start after the ready line: let it come before
		// stopping, so shutdown is measured on a whole server.
		if err := s.WaitLogReady(10 * time.Second); err != nil {
			s.Stop()
			return err
		}
		stop, err := s.Stop()
		if err != nil {
			return err
		}
		b.log("cold start %d: /readyz 200 after %s (kubeconfig written after %s), SIGTERM → exit %s", i+1, harness.Ms(d), harness.Ms(k), harness.Ms(stop))
		cold = append(cold, d)
		stops = append(stops, stop)
	}
	b.table.Add(fmt.Sprintf("cold start → /readyz 200, fresh data dir (median of %d)", len(cold)),
		fmt.Sprintf("%s (min %s, max %s)", harness.Ms(harness.Median(cold)), harness.Ms(harness.Quantile(cold, 0)), harness.Ms(harness.Quantile(cold, 1))), "< 1 s")
	b.table.Add("… of which exec → kubeconfig written (process init, certificates; median)", harness.Ms(harness.Median(pre)), "")

	s, err := harness.Start(b.binary, dir)
	if err != nil {
		return err
	}
	d, err := s.WaitReadyz(readyTimeout)
	if err != nil {
		s.Stop()
		return fmt.Errorf("warm restart: %w", err)
	}
	b.log("warm restart: /readyz 200 after %s", harness.Ms(d))
	b.table.Add("warm restart → /readyz 200, existing data dir", harness.Ms(d), "")
	if b.only["rss"] {
		harness.Sleep(ctx, time.Until(s.Started.Add(d).Add(5*time.Second)))
		if err := b.memory(s, "server memory idle 5 s after ready, warm-restarted server (default flags)"); err != nil {
			s.Stop()
			return err
		}
		// Idle, the heap keeps growing towards its GC target and code
		// pages come back for a few minutes: read it again once settled.
		if b.settle > 0 {
			harness.Sleep(ctx, time.Until(s.Started.Add(d).Add(b.settle)))
			what := fmt.Sprintf("server memory idle %s after ready (settled), warm-restarted server (default flags)", b.settle)
			if err := b.memory(s, what); err != nil {
				s.Stop()
				return err
			}
		}
		if err := b.memoryWithObjects(ctx, s); err != nil {
			s.Stop()
			return err
		}
	}
	stop, err := s.Stop()
	if err != nil {
		return err
	}
	stops = append(stops, stop)
	b.table.Add(fmt.Sprintf("graceful stop, SIGTERM → exit (median of %d)", len(stops)), harness.Ms(harness.Median(stops)), "")
	return nil
}

// memory adds the RSS (and PSS / USS if smaps_rollup is readable) rows.
func (b *bench) memory(s *harness.Server, what string) error {
	m, err := harness.ReadMemory(s.PID())
	if err != nil {
		return err
	}
	b.log("%s: RSS %s (anon %s, file %s) PSS %s USS %s", what, harness.MB(m.RSS), harness.MB(m.RSSAnon), harness.MB(m.RSSFile), harness.MB(m.PSS), harness.MB(m.USS))
	b.table.Add(what+": RSS (anon + file)", fmt.Sprintf("%s (%s + %s)", harness.MB(m.RSS), harness.MB(m.RSSAnon), harness.MB(m.RSSFile)), "< 150 MB")
	if m.HavePSS {
		b.table.Add(what+": PSS / USS", harness.MB(m.PSS)+" / "+harness.MB(m.USS), "")
	}
	return nil
}

// memoryWithObjects creates b.objects ConfigMaps, one client, on the
// warm-restarted server (after its idle readings) and reads its memory
// right after and once idle again (30 s: IdleGC lowers the GC target
// after 15 s idle and drops what the burst mapped).
func (b *bench) memoryWithObjects(ctx context.Context, s *harness.Server) error {
	cfg, err := s.RESTConfig()
	if err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	const ns = "bench-memory"
	if err := harness.EnsureNamespace(ctx, c, ns); err != nil {
		return err
	}
	for i := range b.objects {
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("cm-%05d", i)), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	done := time.Now()
	if err := b.memory(s, fmt.Sprintf("server memory right after %d ConfigMaps (1 client), warm-restarted server", b.objects)); err != nil {
		return err
	}
	harness.Sleep(ctx, time.Until(done.Add(30*time.Second)))
	return b.memory(s, fmt.Sprintf("server memory idle 30 s after %d ConfigMaps, warm-restarted server", b.objects))
}
