package gateway_test

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// N × 3 × L / C. Two placements of the load side (simulator and CTI
// clients), and two arrival patterns:
//
//	sim=inproc          everything in the benchmark's process (as CI runs it)
//	sim=process         the simulator and the CTI clients in a child process
//	                    (stack.Config.LoadProcess): this process is the connector
//	sim=process/paced   as sim=process, but login i starts at i × 3L/C × 1.25
//	                    (arrivals at 80 % of what C slots serve) instead of all
//	                    at once: latency without the queue a burst builds
//
// Metrics:
//
//	x-ideal            measured storm time / ideal
//	p99-x-path         p99 login latency / (3 × L), each login timed from its own start
//	                   (in a burst all N start at once, so this includes queueing for C)
//	failures           logins not answered with success or not fully logged in (must be 0)
//	cpu-us/login       this process's CPU (user+sys) per login: with sim=inproc the connector,
//	                   simulator and clients together; with sim=process the connector alone
//	load-cpu-us/login  sim=process only: the child's CPU (simulator and clients) per login
//
// Between iterations every agent is logged out again (not timed). N = 100
// by default; N = 1000 too with -benchtime=1x; LOGINSTORM_N (a comma list,
// e.g. 10000) sets the sizes instead (opt-in, not for CI). sim=inproc stops
// at N = 5000 (two descriptors per client in one process):
//
//	go test -run '^$' -bench LoginStorm -benchtime=1x ./gateway/
//	LOGINSTORM_N=10000 go test -run '^$' -bench 'LoginStorm/sim=process' -benchtime=1x -timeout 30m ./gateway/
func BenchmarkLoginStorm(b *testing.B) {
	const (
		latency = 5 * time.Millisecond
		cap     = 32
		steps   = 3
	)
	sizes, explicit := stormSizes(b)
	binDir := b.TempDir() // outlives the sub-benchmarks
	var loadBin string
	// paced: arrivals at 80 % of what C slots of 3 × L each can serve
	// (LOGINSTORM_PACE overrides the interval between logins).
	pace := steps * latency / cap * 10 / 8
	if v := os.Getenv("LOGINSTORM_PACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("LOGINSTORM_PACE=%q: want a positive duration", v)
		}
		pace = d
	}
	for _, variant := range []string{"inproc", "process", "process/paced"} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("sim=%s/N=%d/L=%v/C=%d", variant, n, latency, cap), func(b *testing.B) {
				mode, paced := strings.CutSuffix(variant, "/paced")
				arrivals := time.Duration(0)
				if paced {
					arrivals = pace
				}
				if n > 100 && !explicit && !benchOnce() {
					b.Skip("N > 100 only with -benchtime=1x or LOGINSTORM_N")
				}
				// Timeouts above the storm's length: in a burst the last
				// request waits about N × 3 × L / C for an in-flight slot.
				cfg := stack.Config{Agents: n, Desks: n, MaxInFlight: cap, XSITimeout: 60 * time.Second,
					StepTimeout: 60 * time.Second, RequestTimeout: 60 * time.Second, ReadyTimeout: 300 * time.Second,
					Logger: slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
				if mode == "inproc" && n > 5000 {
					b.Skip("sim=inproc needs two descriptors per client in one process: use sim=process")
				}
				if mode == "process" {
					if loadBin == "" {
						bin, err := stack.BuildLoadProcess(binDir)
						if err != nil {
							b.Fatal(err)
						}
						loadBin = bin
					}
					cfg.LoadProcess = loadBin
				}
				st := newStack(b, cfg)
				var storm func(off bool, pace time.Duration) stack.StormResult
				if mode == "process" {
					storm = loadProcessStorm(b, st, n)
				} else {
					storm = inProcessStorm(b, st, n)
				}
				if err := st.SetActionsLatency(xspsim.Latency{Min: latency, Max: latency}); err != nil {
					b.Fatal(err)
				}
				ideal := time.Duration(n) * steps * latency / cap
				path := steps * latency

				var lat []time.Duration
				var total, cpu, loadCPU time.Duration
				failures := 0
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					stopProfile := profileStorm(b, strings.ReplaceAll(variant, "/", "-"), n)
					cpu0 := stack.ProcessCPU()
					b.StartTimer()
					r := storm(false, arrivals)
					b.StopTimer()
					stormCPU := stack.ProcessCPU() - cpu0
					cpu += stormCPU
					stopProfile()
					total += r.Wall
					loadCPU += r.CPU
					lat = append(lat, r.Took...)
					took := slices.Sorted(slices.Values(r.Took))
					b.Logf("storm %v (%.2f × ideal), p50 %v, p99 %v, this process %v CPU/login, load process %v CPU/login",
						r.Wall, float64(r.Wall)/float64(ideal), took[len(took)/2], took[(len(took)*99+99)/100-1],
						stormCPU/time.Duration(n), r.CPU/time.Duration(n))
					for i, e := range r.Errs {
						if e != "" {
							failures++
							b.Logf("agent %d: %v", i+1, e)
						} else if err := st.CheckLoggedIn(i+1, i+1); err != nil {
							failures++
							b.Log(err)
						}
					}
					// Reset: every agent logs out again.
					for i, e := range storm(true, 0).Errs {
						if e != "" {
							b.Errorf("logout %d: %v", i+1, e)
						}
					}
					if err := st.AwaitViewSettled(60 * time.Second); err != nil {
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
				if mode == "process" {
					b.ReportMetric(float64(loadCPU.Microseconds())/float64(b.N*n), "load-cpu-us/login")
				}
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
}

// stormSizes are the Ns to run: LOGINSTORM_N (explicit) or 100 and 1000.
func stormSizes(b *testing.B) (sizes []int, explicit bool) {
	env := os.Getenv("LOGINSTORM_N")
	if env == "" {
		return []int{100, 1000}, false
	}
	for f := range strings.SplitSeq(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("LOGINSTORM_N=%q: want a comma list of positive counts", env)
		}
		sizes = append(sizes, n)
	}
	return sizes, true
}

// inProcessStorm returns a storm driven by n CTI clients of this process:
// client i sets agent i+1 LoggedOn (LoggedOff when off) at desk i+1, all at
// once or (pace > 0) client i at pace × i after the start; a login's
// latency is from its own start. CPU is left zero: it is this process's.
func inProcessStorm(b *testing.B, st *stack.Stack, n int) func(off bool, pace time.Duration) stack.StormResult {
	clients := make([]*cticlient.Client, n)
	for i := range clients {
		clients[i] = dial(b, st)
	}
	return func(off bool, pace time.Duration) stack.StormResult {
		r := stack.StormResult{Took: make([]time.Duration, n), Errs: make([]string, n)}
		var wg sync.WaitGroup
		start := make(chan struct{})
		var t0 time.Time
		for i := range n {
			wg.Go(func() {
				<-start
				if pace > 0 {
					time.Sleep(time.Until(t0.Add(time.Duration(i) * pace)))
				}
				op := login
				if off {
					op = logout
				}
				t1 := time.Now()
				if err := op(b.Context(), clients[i], i+1, i+1); err != nil {
					r.Errs[i] = err.Error()
				}
				r.Took[i] = time.Since(t1)
			})
		}
		t0 = time.Now()
		close(start)
		wg.Wait()
		r.Wall = time.Since(t0)
		return r
	}
}

// loadProcessStorm returns a storm driven by n CTI clients of the load
// process (the same requests as inProcessStorm).
func loadProcessStorm(b *testing.B, st *stack.Stack, n int) func(off bool, pace time.Duration) stack.StormResult {
	p := st.Load()
	if err := p.Dial(st.CSTAAddr(), n); err != nil {
		b.Fatal(err)
	}
	agents, desks := make([]string, n), make([]string, n)
	for i := range n {
		agents[i], desks[i] = stack.AgentID(i+1), stack.DeskID(i+1)
	}
	return func(off bool, pace time.Duration) stack.StormResult {
		r, err := p.Storm(off, agents, desks, pace)
		if err != nil {
			b.Fatalf("storm: %v", err)
		}
		return r
	}
}

// profileStorm writes a CPU profile of this process during the timed
// storm to $LOGINSTORM_PROFILE.<variant>.<n>.<storm> when LOGINSTORM_PROFILE
// is set (unlike -cpuprofile, it leaves out building and tearing down the
// stack; merge several with go tool pprof -proto a b c > merged).
func profileStorm(b *testing.B, variant string, n int) (stop func()) {
	base := os.Getenv("LOGINSTORM_PROFILE")
	if base == "" {
		return func() {}
	}
	profiledStorms++
	f, err := os.Create(fmt.Sprintf("%s.%s.%d.%d", base, variant, n, profiledStorms))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

var profiledStorms int

// benchOnce reports whether -benchtime=1x was given.
func benchOnce() bool {
	f := flag.Lookup("test.benchtime")
	return f != nil && f.Value.String() == "1x"
}
