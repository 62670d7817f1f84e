package xsi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

func benchSim(b *testing.B, mod func(*xspsim.Config)) *xspsim.Server {
	b.Helper()
	sc := xspsim.Config{
		Users:    []xspsim.User{{ID: "agent1@example.com", FirstName: "A", LastName: "One", CallCenter: true}},
		Username: "admin@example.com",
		Password: "secret",
	}
	if mod != nil {
		mod(&sc)
	}
	sim := xspsim.New(sc, nil)
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	})
	return sim
}

// BenchmarkActionsAgainstSimulator: Xsi-Actions GET round trips (Basic
// auth, ISO-8859-1 body, etree parse) against the simulator over loopback
// HTTP with N requests in flight; reports req/s.
func BenchmarkActionsAgainstSimulator(b *testing.B) {
	sim := benchSim(b, nil)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			cfg := testEventsConfig(sim.URL())
			cfg.MaxInFlight = n
			cfg.RateLimit, cfg.RateBurst = 1e9, 1<<30
			c, err := NewClient(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if _, err := c.GetDoNotDisturb(ctx, "agent1@example.com"); err != nil { // warm the connection
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range n {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := c.GetDoNotDisturb(ctx, "agent1@example.com"); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
		})
	}
}

// BenchmarkEventsFromSimulator: DoNotDisturbEvents from a portal change in
// the simulator, through its stream (random chunking), the channel
// manager's splitter, parser, dedup and acknowledgement, to the consumer;
// at most `window` events outstanding. Reports events/s.
func BenchmarkEventsFromSimulator(b *testing.B) {
	const window = 128
	sim := benchSim(b, func(c *xspsim.Config) {
		c.QueueSize = 4096
		c.Chunking = xspsim.Chunking{Mode: xspsim.ChunkRandom, Seed: 1}
	})
	cfg := testEventsConfig(sim.URL())
	cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 100*time.Millisecond
	e, err := NewEvents(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		e.Stop(sctx)
		for range e.Events() {
		}
	}()
	// Initial DND event: the subscription is live.
	select {
	case <-e.Events():
	case <-time.After(10 * time.Second):
		b.Fatal("no initial event")
	}
	state := false
	var delivered atomic.Int64
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for delivered.Load() < int64(b.N) {
			ev := <-e.Events()
			if _, ok := ev.(*SubscriptionEvent).Data.(*DoNotDisturbEvent); ok {
				delivered.Add(1)
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		for int64(i)-delivered.Load() >= window {
			time.Sleep(50 * time.Microsecond)
		}
		state = !state
		if err := sim.PortalSetDND("agent1@example.com", state); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("%d of %d events delivered", delivered.Load(), b.N)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
}
