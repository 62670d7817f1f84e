package gateway_test

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// BenchmarkLoginStorm: N agents, each from its own CTI client over TCP, log
// in at the same moment at N hot desks (each its own) through csta →
// gateway → hoteling → xsi → the simulator, which adds a fixed latency L to
// every Xsi-Actions request; the xsi client may have C requests in flight.
//
// One login's critical path is 3 Actions (host CFA, association,
// Unavailable), each confirmed by its XSI event, so the ideal storm time is
// N × 3 × L / C. Metrics:
//
//	x-ideal      measured storm time / ideal
//	p99-x-path   p99 login latency / (3 × L)   (all N start at once, so this includes queueing for C)
//	failures     logins not answered with success or not fully logged in (must be 0)
//	cpu-us/login process CPU (user+sys) per login: connector, simulator and CTI clients together (one process)
//
// Between iterations every agent is logged out again (not timed). N=1000
// runs only with -benchtime=1x:
//
//	go test -run '^$' -bench LoginStorm -benchtime=1x ./gateway/
func BenchmarkLoginStorm(b *testing.B) {
	const (
		latency = 5 * time.Millisecond
		cap     = 32
		steps   = 3
	)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("N=%d/L=%v/C=%d", n, latency, cap), func(b *testing.B) {
			if n > 100 && !benchOnce() {
				b.Skip("N=1000 only with -benchtime=1x")
			}
			st := newStack(b, stack.Config{Agents: n, Desks: n, MaxInFlight: cap,
				StepTimeout: 30 * time.Second, RequestTimeout: 60 * time.Second, ReadyTimeout: 120 * time.Second})
			clients := make([]*cticlient.Client, n)
			for i := range clients {
				clients[i] = dial(b, st)
			}
			st.Sim.SetActionsLatency(xspsim.Latency{Min: latency, Max: latency})
			ideal := time.Duration(n) * steps * latency / cap
			path := steps * latency

			var lat []time.Duration
			var total time.Duration
			var cpu time.Duration
			failures := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				errs := make([]error, n)
				took := make([]time.Duration, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						t0 := time.Now()
						errs[i] = login(b.Context(), clients[i], i+1, i+1)
						took[i] = time.Since(t0)
					}()
				}
				cpu0 := processCPU()
				t0 := time.Now()
				b.StartTimer()
				close(start)
				wg.Wait()
				b.StopTimer()
				total += time.Since(t0)
				cpu += processCPU() - cpu0
				lat = append(lat, took...)
				for i, err := range errs {
					if err != nil {
						failures++
						b.Logf("agent %d: %v", i+1, err)
					} else if err := st.CheckLoggedIn(i+1, i+1); err != nil {
						failures++
						b.Log(err)
					}
				}
				// Reset: every agent logs out again.
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := logout(b.Context(), clients[i], i+1, i+1); err != nil {
							b.Errorf("logout %d: %v", i+1, err)
						}
					}()
				}
				wg.Wait()
				if err := st.AwaitViewSettled(30 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			p99 := lat[(len(lat)*99+99)/100-1]
			per := total / time.Duration(b.N)
			b.ReportMetric(float64(per)/float64(ideal), "x-ideal")
			b.ReportMetric(float64(p99)/float64(path), "p99-x-path")
			b.ReportMetric(float64(failures), "failures")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-us/login")
			b.ReportMetric(float64(per.Milliseconds()), "storm-ms")
			b.ReportMetric(float64(ideal.Milliseconds()), "ideal-ms")
			b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
			if failures > 0 {
				b.Errorf("%d failed logins", failures)
			}
		})
	}
}

// benchOnce reports whether -benchtime=1x was given.
func benchOnce() bool {
	f := flag.Lookup("test.benchtime")
	return f != nil && f.Value.String() == "1x"
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
