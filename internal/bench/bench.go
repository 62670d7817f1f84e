// Package bench is the connector's end-to-end benchmark (issue 7), run by
// `go run ./cmd/connector-bench`: it builds the connector, runs `connector
// run` as a child process against an XSP simulator with two XSPs that the
// bench runs in its own process (xsi.simulate false, injected Actions
// latency), drives it with CTI sessions (csta/cticlient) and phones (sipp,
// plus light Go phones where exact NOTIFY times are needed) and measures
// the connector process alone: its CPU time and memory from /proc, its
// goroutines from its admin /metrics.
//
// Phases, in order: a baseline connector with a one-agent directory
// (footprint baseline), then the connector under test: idle with its
// directory; N CTI sessions (each with an ECMA-354 session and a monitor
// on its desk) and K more monitoring desk 1; M phones subscribed (G Go
// phones, the rest sipp); the login storm (N agents at N desks, all at
// once); the fan-out (single changes of agent 1, seen by K monitors); the
// state churn (Ready / Not Ready / After Call Work changes made in the
// simulator's portal at a fixed rate); optionally a soak; SIGTERM.
//
// BENCHMARKS.md ("End to end") has the method and the results.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Config sizes a run. Zero values get the defaults noted (Defaults()).
type Config struct {
	Agents int // agents logged in by the storm; 1000
	// AgentsPerSession is how many agents (and their desks) one CTI
	// session monitors and logs in; 1. More than one keeps the sessions
	// under the connector's descriptor budget (half the process's
	// descriptor limit for CTI connections from one source).
	AgentsPerSession int
	Desks            int           // hot desks (≥ Agents and ≥ Phones); max(Agents, Phones)
	Configured       int           // agents in the directory (≥ Agents; the rest idle); Agents
	Phones           int           // phones subscribed, desks 1..Phones; 1000
	GoPhones         int           // of them, Go phones (exact NOTIFY times), desks 1..GoPhones; negative: min(Phones, 200)
	Monitors         int           // K: extra CTI sessions monitoring desk 1 (fan-out); 100
	ChurnRate        float64       // state changes per second; 2000
	ChurnDuration    time.Duration // 30s
	Latency          time.Duration // injected Actions latency L; 5ms
	MaxInFlight      int           // xsi.max_in_flight C; 32
	FanoutChanges    int           // single changes of agent 1 for the fan-out; 20
	Soak             time.Duration // 0: none
	SoakInterval     time.Duration // RSS sample interval during the soak; 10s
	SoakRate         float64       // changes per second during the soak; ChurnRate
	Connector        string        // prebuilt connector binary; "" builds one
	Sipp             string        // sipp's path; "" looks it up (needed when Phones > GoPhones)
	WorkDir          string        // files; "" a temporary directory, removed after
	StartTimeout     time.Duration // connector start-up and settling; 60s + 5 ms per directory user
	// PerUserTargets generates the layout before issue 15 (a user target
	// and directory entries for every agent and desk, no scope) instead of
	// the scope alone with users read from the simulator on first reference.
	PerUserTargets bool
	// DirectoryUsers > 0 runs the start-up scenario instead of the phases
	// below: that many users in the simulator's group, a config with the
	// scope only, the time until /readyz answers 200 and the idle footprint.
	DirectoryUsers int
	// Settle is how long the start-up scenario lets the idle connector
	// settle before sampling its memory; 10s.
	Settle time.Duration
	// XSPs is how many XSPs the simulator serves (one event channel on
	// each); 2. The channels of a set are not ordered with each other.
	XSPs int
	// Pin runs the connector under `taskset -c Pin` (e.g. "1"), so that its
	// CPU figures are not spread over cores the load side uses too; the
	// load side (this process and what it starts) moves to the other CPUs.
	Pin string
	// Store is the connector's store driver: "bbolt" (default, a file in
	// the work directory) or "postgres": StoreDSN's database, or without
	// one a throwaway cluster this run starts and removes (internal/pgtest).
	Store    string
	StoreDSN string
	Log      io.Writer // progress; os.Stderr
}

func (c *Config) defaults() error {
	if c.Agents <= 0 {
		c.Agents = 1000
	}
	if c.Phones < 0 {
		c.Phones = 0
	}
	if c.Desks < max(c.Agents, c.Phones) {
		c.Desks = max(c.Agents, c.Phones)
	}
	if c.Configured < c.Agents {
		c.Configured = c.Agents
	}
	if c.GoPhones < 0 {
		c.GoPhones = min(c.Phones, 200)
	}
	c.GoPhones = min(c.GoPhones, c.Phones)
	if c.AgentsPerSession <= 0 {
		c.AgentsPerSession = 1
	}
	if c.Monitors < 0 {
		c.Monitors = 0
	}
	if c.ChurnRate <= 0 {
		c.ChurnRate = 2000
	}
	if c.ChurnDuration <= 0 {
		c.ChurnDuration = 30 * time.Second
	}
	if c.Latency < 0 {
		c.Latency = 0
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 32
	}
	if c.FanoutChanges <= 0 {
		c.FanoutChanges = 20
	}
	if c.SoakInterval <= 0 {
		c.SoakInterval = 10 * time.Second
	}
	if c.SoakRate <= 0 {
		c.SoakRate = c.ChurnRate
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 60*time.Second + time.Duration(c.Configured+c.Desks)*5*time.Millisecond
		if c.PerUserTargets {
			c.StartTimeout += time.Duration(c.DirectoryUsers) * 5 * time.Millisecond
		}
	}
	if c.XSPs <= 0 {
		c.XSPs = 2
	}
	if c.Settle <= 0 {
		c.Settle = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	if c.Phones > c.GoPhones && c.Sipp == "" && c.DirectoryUsers <= 0 {
		p, err := exec.LookPath("sipp")
		if err != nil {
			return errNoSipp
		}
		c.Sipp = p
	}
	return nil
}

// Defaults is the default run: sized for a 2-core machine, under 5 minutes.
func Defaults() Config {
	return Config{Agents: 1000, Phones: 1000, GoPhones: 200, Monitors: 100, ChurnRate: 2000,
		ChurnDuration: 30 * time.Second, Latency: 5 * time.Millisecond, MaxInFlight: 32, FanoutChanges: 20}
}

// Stats are a latency distribution in milliseconds.
type Stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func stats(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	s := slices.Sorted(slices.Values(d))
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	return Stats{N: len(s), P50: ms(pct(s, 0.50)), P99: ms(pct(s, 0.99)), Max: ms(s[len(s)-1])}
}

func pct(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Footprint is memory and goroutines at one point of the run.
type Footprint struct {
	RSS        uint64 `json:"rss_bytes"`
	HWM        uint64 `json:"hwm_bytes"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	Goroutines int    `json:"goroutines"`
	Threads    int    `json:"threads"`
}

func footprint(s procSample) Footprint {
	return Footprint{RSS: s.RSS, HWM: s.HWM, HeapInuse: s.HeapInuse, Goroutines: s.Goroutines, Threads: s.Threads}
}

// PerThousand is a footprint's growth per 1,000 of something.
type PerThousand struct {
	Count      int     `json:"count"`
	RSS        float64 `json:"rss_bytes"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
}

func perThousand(after, before Footprint, n int) PerThousand {
	if n <= 0 {
		return PerThousand{}
	}
	return PerThousand{Count: n, RSS: (float64(after.RSS) - float64(before.RSS)) / float64(n) * 1000,
		HeapInuse:  (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n) * 1000,
		Goroutines: float64(after.Goroutines-before.Goroutines) / float64(n) * 1000}
}

// Result is everything a run measured.
type Result struct {
	Config struct {
		Agents, Desks, Configured, Phones, GoPhones, SippPhones, Monitors int
		AgentsPerSession, Sessions                                        int
		ChurnRate                                                         float64
		ChurnDuration, Latency                                            string
		MaxInFlight                                                       int
		Soak                                                              string
		Directory                                                         string // "scope" or "per-user targets"
		Store                                                             string // the store driver: bbolt or postgres
		XSPs                                                              int
		Pin                                                               string
	} `json:"config"`
	Machine struct {
		CPUs      int    `json:"cpus"`
		GoVersion string `json:"go_version"`
		LoadAvg   string `json:"loadavg_at_start"`
		LoadAfter string `json:"loadavg_at_end"`
		// LoadCPUs are the CPUs the load side (this process, its
		// simulator and phones, sipp) ran on with -pin: the ones the
		// connector was not pinned to. "" without -pin.
		LoadCPUs string `json:"load_cpus"`
	} `json:"machine"`
	StartUp struct {
		Baseline float64 `json:"baseline_s"`
		Full     float64 `json:"full_s"`    // until start-up recovery is done
		Settled  float64 `json:"settled_s"` // until every subscription is active and every initial event acknowledged
		Readyz   float64 `json:"readyz_s"`  // until /readyz first answered 200
	} `json:"startup"`

	// Directory is the start-up scenario (Config.DirectoryUsers), nil
	// otherwise.
	Directory *DirectoryResult `json:"directory,omitempty"`

	// XSI is the connector's Xsi-Actions requests by method
	// (connector_xsi_actions_requests_total) at the end of each stage.
	XSI struct {
		Idle       map[string]float64 `json:"idle"`
		WithCTI    map[string]float64 `json:"with_cti"`
		WithPhones map[string]float64 `json:"with_phones"`
		AfterStorm map[string]float64 `json:"after_storm"`
		End        map[string]float64 `json:"end"`
	} `json:"xsi_actions_requests"`
	// Events are the connector's event counters at the end
	// (connector_xsi_events_*: sequence gaps, out of order).
	Events map[string]float64 `json:"xsi_events"`

	Storm struct {
		N            int      `json:"n"`
		WallMS       float64  `json:"wall_ms"`
		IdealMS      float64  `json:"ideal_ms"`
		XIdeal       float64  `json:"x_ideal"`
		Latency      Stats    `json:"latency"`
		Failed       int      `json:"failed"`
		FirstFailure string   `json:"first_failure,omitempty"`
		CPUPerLogin  float64  `json:"connector_cpu_ms_per_login"`
		CPU          PhaseCPU `json:"cpu"`
		// GETs and PUTs are the storm's Xsi-Actions requests: the PUTs of
		// the logins and the GETs of the agents' first references.
		GETs float64 `json:"xsi_gets"`
		PUTs float64 `json:"xsi_puts"`
		// IdealAllMS counts every request of the storm through the C
		// slots: (GETs + PUTs) × L / C.
		IdealAllMS float64 `json:"ideal_all_requests_ms"`
		// StoreCommits is how many store transactions reached the disk
		// during the storm (connector_store_commits_total): each is a
		// disk sync that the logins waiting on it share.
		StoreCommits float64 `json:"store_commits"`
	} `json:"storm"`

	Churn struct {
		Changes     int      `json:"changes"`
		Rate        float64  `json:"achieved_per_s"`
		LagMaxMS    float64  `json:"driver_lag_max_ms"`
		PortalErrs  int      `json:"portal_errors"`
		CTI         Stats    `json:"cti"`
		CTILost     int      `json:"cti_lost"`
		Notify      Stats    `json:"notify"`
		NotifyLost  int      `json:"notify_lost"`
		CPUPerEvent float64  `json:"connector_cpu_us_per_change"`
		CPU         PhaseCPU `json:"cpu"`
	} `json:"churn"`

	Fanout struct {
		Monitors int   `json:"monitors"`
		Changes  int   `json:"changes"`
		All      Stats `json:"all_deliveries"`
		Last     Stats `json:"last_of_k"`
		Missing  int   `json:"missing"`
	} `json:"fanout"`

	Footprint struct {
		Baseline       Footprint   `json:"baseline"`
		Idle           Footprint   `json:"idle"`
		WithCTI        Footprint   `json:"with_cti"`
		WithPhones     Footprint   `json:"with_phones"`
		End            Footprint   `json:"end"`
		PerUsers       PerThousand `json:"per_1000_directory_users"`
		PerCTI         PerThousand `json:"per_1000_cti_sessions"`
		PerPhones      PerThousand `json:"per_1000_phones"`
		Target         float64     `json:"rss_100k_agents_10k_phones_bytes"`
		TargetMeasured bool        `json:"target_measured"`
	} `json:"footprint"`

	Soak struct {
		Samples     []float64 `json:"rss_mb,omitempty"`
		SlopeMBPerH float64   `json:"slope_mb_per_hour"`
		GrowthPct   float64   `json:"growth_pct"`
	} `json:"soak"`

	CTIDropped int    `json:"cti_events_dropped_by_clients"`
	Sipp       string `json:"sipp"`

	// Diagnostics: the simulator's event counters, the connector's
	// warnings and errors, changes not seen.
	Diag struct {
		Sim          xspsim.Stats `json:"simulator"`
		Warnings     int          `json:"connector_warnings"`
		WarningLines []string     `json:"connector_warning_examples,omitempty"`
		Unmatched    [2]int       `json:"unmatched_cti_notify"`
		Lost         []string     `json:"lost_examples,omitempty"`
		CTIEnded     int          `json:"cti_connections_ended_by_connector"`
	} `json:"diagnostics"`
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	res = &Result{}
	if cfg.Pin != "" {
		if res.Machine.LoadCPUs, err = pinLoad(cfg.Pin); err != nil {
			return nil, err
		}
	}
	rc := &res.Config
	rc.Agents, rc.Desks, rc.Configured, rc.Phones, rc.GoPhones, rc.SippPhones, rc.Monitors =
		cfg.Agents, cfg.Desks, cfg.Configured, cfg.Phones, cfg.GoPhones, cfg.Phones-cfg.GoPhones, cfg.Monitors
	rc.AgentsPerSession = cfg.AgentsPerSession
	rc.Sessions = (cfg.Agents + cfg.AgentsPerSession - 1) / cfg.AgentsPerSession
	rc.ChurnRate, rc.ChurnDuration, rc.Latency, rc.MaxInFlight, rc.Soak =
		cfg.ChurnRate, cfg.ChurnDuration.String(), cfg.Latency.String(), cfg.MaxInFlight, cfg.Soak.String()
	res.Machine.CPUs = runtime.NumCPU()
	res.Machine.GoVersion = runtime.Version()
	res.Machine.LoadAvg = loadAvg()
	rc.Directory, rc.Pin, rc.XSPs = "scope", cfg.Pin, cfg.XSPs
	rc.Store = cmp.Or(cfg.Store, config.StoreBolt)
	storeDSN := ""
	switch rc.Store {
	case config.StoreBolt:
	case config.StorePostgres:
		if storeDSN = cfg.StoreDSN; storeDSN == "" {
			pg, err := pgtest.Start()
			if err != nil {
				return nil, fmt.Errorf("-store postgres without -store-dsn: %w", err)
			}
			defer pg.Stop() //nolint:errcheck // a throwaway cluster; its watchdog removes it if this fails
			if storeDSN, err = pg.CreateDatabase(ctx); err != nil {
				return nil, err
			}
			logf("store: a throwaway PostgreSQL cluster on 127.0.0.1:%d", pg.Port())
		}
	default:
		return nil, fmt.Errorf("store %q: must be bbolt or postgres", cfg.Store)
	}
	if cfg.PerUserTargets {
		rc.Directory = "per-user targets"
	}

	dir := cfg.WorkDir
	if dir == "" {
		d, err := os.MkdirTemp("", "connector-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin := cfg.Connector
	if bin == "" {
		logf("building the connector")
		if bin, err = BuildConnector(ctx, dir); err != nil {
			return nil, err
		}
	}
	logger := slog.New(slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.DirectoryUsers > 0 {
		return runDirectory(ctx, cfg, res, bin, dir, logger, logf)
	}
	logf("starting the simulator: %d agents, %d desks, %d XSPs", cfg.Configured, cfg.Desks, cfg.XSPs)
	sim, err := startSimulator(cfg.Configured, cfg.Desks, cfg.PerUserTargets, cfg.XSPs, logger)
	if err != nil {
		return nil, err
	}
	defer shutdownSim(sim)
	var servers []string
	for i := range cfg.XSPs {
		servers = append(servers, sim.URLOf(i))
	}
	token := "connector-bench-admin-token"
	mkConfig := func(name string, agents, desks int) (string, error) {
		d := dir + "/" + name
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
		return writeConfig(connectorConfig{Dir: d, Servers: servers, Agents: agents, Desks: desks, PerUserTargets: cfg.PerUserTargets,
			MaxInFlight: cfg.MaxInFlight, MaxConnections: rc.Sessions + cfg.Monitors + 64, Token: token,
			ChannelSet: "bench-" + name, Timeout: 120 * time.Second, LogLevel: "info", StoreDSN: storeDSN})
	}
	settle := func() { time.Sleep(time.Second) }
	simStats := func() (int, int) { st := sim.Stats(); return st.EventsSent, st.EventsAcked }

	// Baseline: the same binary with a one-agent, one-desk directory.
	path, err := mkConfig("baseline", 1, 1)
	if err != nil {
		return nil, err
	}
	logf("baseline connector (1 agent, 1 desk)")
	base, err := startConnector(bin, path, token, cfg.Pin, cfg.PerUserTargets, cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	res.StartUp.Baseline = base.started.Seconds()
	if err := base.awaitSettled(ctx, simStats, cfg.StartTimeout); err != nil {
		base.kill()
		return nil, err
	}
	s, err := base.sample(ctx)
	if err != nil {
		base.kill()
		return nil, err
	}
	res.Footprint.Baseline = footprint(s)
	if err := base.stop(30 * time.Second); err != nil {
		return nil, err
	}

	// The connector under test.
	if path, err = mkConfig("main", cfg.Configured, cfg.Desks); err != nil {
		return nil, err
	}
	logf("connector under test (%d agents, %d desks in the directory)", cfg.Configured, cfg.Desks)
	c0 := time.Now()
	conn, err := startConnector(bin, path, token, cfg.Pin, cfg.PerUserTargets, cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	var sipp *sippPhones
	defer func() {
		if err != nil {
			conn.kill()
			sipp.kill()
		}
	}()
	res.StartUp.Full = conn.started.Seconds()
	logf("connector ready in %.1f s", conn.started.Seconds())
	// Per-user targets are not part of /readyz: it is 200 long before
	// they are all subscribed.
	rz, err := conn.awaitReadyz(ctx, c0, cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	res.StartUp.Readyz = rz.Seconds()
	t0 := time.Now()
	if err = conn.awaitSettled(ctx, simStats, cfg.StartTimeout); err != nil {
		return nil, err
	}
	res.StartUp.Settled = conn.started.Seconds() + time.Since(t0).Seconds()
	logf("connector settled (subscriptions active, events acknowledged) after %.1f s", res.StartUp.Settled)
	if s, err = conn.sample(ctx); err != nil {
		return nil, err
	}
	res.Footprint.Idle = footprint(s)
	requests := func() map[string]float64 {
		m, err := conn.counts(ctx, "connector_xsi_actions_requests_total", "method")
		if err != nil {
			logf("%v", err)
		}
		return m
	}
	res.XSI.Idle = requests()

	track := newTracker()
	fo := &fanout{}
	fo.cur.Store(-1)
	logf("CTI: %d sessions monitoring their desks (%d each), %d monitoring desk 1", rc.Sessions, cfg.AgentsPerSession, cfg.Monitors)
	cti, err := dialCTI(ctx, conn.csta, cfg.Agents, cfg.AgentsPerSession, cfg.Monitors, track, fo)
	if err != nil {
		if aerr := conn.alive(); aerr != nil {
			return nil, errors.Join(err, aerr)
		}
		return nil, fmt.Errorf("%w; the connector's log ends:\n%s", err, conn.log.Tail(3000))
	}
	result := res // res is nil when Run fails
	defer func() {
		cti.close()
		result.CTIDropped = int(cti.dropped.Load())
	}()
	settle()
	if s, err = conn.sample(ctx); err != nil {
		return nil, err
	}
	res.Footprint.WithCTI = footprint(s)
	res.XSI.WithCTI = requests()

	if cfg.GoPhones > 0 {
		logf("phones: %d Go phones", cfg.GoPhones)
		phones, err := startGoPhones(cfg.GoPhones, conn.sip, track)
		if err != nil {
			return nil, err
		}
		defer phones.Close()
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(cfg.GoPhones)*10*time.Millisecond)
		err = phones.SubscribeAll(pctx)
		cancel()
		if err != nil {
			return nil, errors.Join(err, conn.alive())
		}
	}
	sippN := cfg.Phones - cfg.GoPhones
	if sippN > 0 {
		logf("phones: %d sipp phones", sippN)
		maxDur := 10*time.Minute + cfg.Soak + cfg.ChurnDuration + time.Duration(cfg.Agents)*5*time.Millisecond
		if sipp, err = startSipp(cfg.Sipp, dir, conn.sip, cfg.GoPhones+1, cfg.Phones, 500, maxDur); err != nil {
			return nil, err
		}
		abort := make(chan error, 1)
		go func() {
			select {
			case err := <-sipp.done:
				sipp.done <- err
				abort <- sipp.failure(fmt.Errorf("ended before every phone was subscribed: %v", err))
			case <-ctx.Done():
			}
		}()
		if err = conn.awaitGauge(ctx, "connector_sip_phones", float64(cfg.Phones), 60*time.Second+time.Duration(sippN)*5*time.Millisecond, abort); err != nil {
			return nil, err
		}
	}
	settle()
	if s, err = conn.sample(ctx); err != nil {
		return nil, err
	}
	res.Footprint.WithPhones = footprint(s)
	res.XSI.WithPhones = requests()

	// Login storm.
	sim.SetActionsLatency(xspsim.Latency{Min: cfg.Latency, Max: cfg.Latency})
	logf("login storm: %d agents at %d desks, L = %v, C = %d", cfg.Agents, cfg.Agents, cfg.Latency, cfg.MaxInFlight)
	sippPid := 0
	if sipp != nil {
		sippPid = sipp.cmd.Process.Pid
	}
	commits := func() float64 {
		m, err := conn.metrics(ctx)
		if err != nil {
			logf("%v", err)
		}
		return m["connector_store_commits_total"]
	}
	commitsBefore := commits()
	meter := startMeter(conn.pid, sippPid)
	storm := cti.storm(ctx, cfg.Agents, false)
	res.Storm.CPU = meter.stop()
	res.XSI.AfterStorm = requests()
	res.Storm.StoreCommits = commits() - commitsBefore
	ideal := time.Duration(cfg.Agents) * 3 * cfg.Latency / time.Duration(cfg.MaxInFlight)
	st := &res.Storm
	st.N = cfg.Agents
	st.WallMS = float64(storm.Wall) / 1e6
	st.IdealMS = float64(ideal) / 1e6
	if ideal > 0 {
		st.XIdeal = float64(storm.Wall) / float64(ideal)
	}
	st.Latency = stats(storm.Took)
	st.CPUPerLogin = st.CPU.Connector * 1e3 / float64(cfg.Agents)
	st.GETs = res.XSI.AfterStorm["GET"] - res.XSI.WithPhones["GET"]
	st.PUTs = res.XSI.AfterStorm["PUT"] - res.XSI.WithPhones["PUT"]
	st.IdealAllMS = (st.GETs + st.PUTs) * float64(cfg.Latency) / float64(cfg.MaxInFlight) / 1e6
	for i, e := range storm.Errs {
		if e == "" {
			e = errString(checkLoggedIn(sim, i+1, forwardTo(cfg.PerUserTargets, i+1)))
		}
		if e != "" {
			st.Failed++
			if st.FirstFailure == "" {
				st.FirstFailure = fmt.Sprintf("agent %d: %s", i+1, e)
			}
		}
	}
	logf("storm: %v (%.2f × ideal %v), %d failed", storm.Wall.Round(time.Millisecond), st.XIdeal, ideal, st.Failed)
	if err := conn.alive(); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the storm's last events

	// Fan-out: single changes of agent 1, one at a time.
	next := make([]int, cfg.Agents)
	if cfg.Monitors > 0 {
		logf("fan-out: %d changes of agent 1 to %d monitors", cfg.FanoutChanges, cfg.Monitors)
		fo.at = make([]int64, cfg.FanoutChanges)
		fo.arrivals = make([][]int64, cfg.FanoutChanges)
		for k := range cfg.FanoutChanges {
			fo.arrivals[k] = make([]int64, cfg.Monitors)
		}
		var all, last []time.Duration
		for k := range cfg.FanoutChanges {
			stc := churnCycle[next[0]]
			next[0] = (next[0] + 1) % len(churnCycle)
			ev := stc.event
			fo.event.Store(&ev)
			fo.at[k] = time.Now().UnixNano()
			fo.cur.Store(int32(k))
			if err := sim.PortalSetAgentState(agentUser(1), stc.state, stc.code); err != nil {
				return nil, err
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				got := 0
				var worst int64
				for m := range cfg.Monitors {
					if v := atomic.LoadInt64(&fo.arrivals[k][m]); v > 0 {
						got++
						worst = max(worst, v)
					}
				}
				if got == cfg.Monitors || time.Now().After(deadline) {
					res.Fanout.Missing += cfg.Monitors - got
					if got == cfg.Monitors {
						last = append(last, time.Duration(worst))
					}
					break
				}
				time.Sleep(time.Millisecond)
			}
			fo.cur.Store(-1)
			for m := range cfg.Monitors {
				if v := atomic.LoadInt64(&fo.arrivals[k][m]); v > 0 {
					all = append(all, time.Duration(v))
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		res.Fanout.Monitors, res.Fanout.Changes = cfg.Monitors, cfg.FanoutChanges
		res.Fanout.All, res.Fanout.Last = stats(all), stats(last)
		time.Sleep(500 * time.Millisecond)
	}

	// State churn.
	logf("state churn: %.0f changes/s for %v over %d agents", cfg.ChurnRate, cfg.ChurnDuration, cfg.Agents)
	track.reset()
	meter = startMeter(conn.pid, sippPid)
	ch := churn(ctx, sim, track, next, cfg.ChurnRate, cfg.ChurnDuration, true)
	track.waitSeen(seenCTI, cfg.Agents, 60*time.Second)
	track.waitSeen(seenNotify, cfg.GoPhones, 20*time.Second)
	cr := &res.Churn
	cr.CPU = meter.stop()
	cr.Changes = ch.Changes
	cr.Rate = float64(ch.Changes) / ch.Elapsed.Seconds()
	cr.LagMaxMS = float64(ch.LagMax) / 1e6
	cr.PortalErrs = ch.Errors
	lat, lost := track.latencies(seenCTI, cfg.Agents)
	cr.CTI, cr.CTILost = stats(lat), lost
	lat, lost = track.latencies(seenNotify, cfg.GoPhones)
	cr.Notify, cr.NotifyLost = stats(lat), lost
	// The connector's CPU from the churn's start until its events were
	// delivered, per change.
	cr.CPUPerEvent = cr.CPU.Connector * 1e6 / float64(max(1, ch.Changes))
	res.Diag.CTIEnded = int(cti.ended.Load())
	res.Diag.Lost = append(track.lostExamples(seenCTI, cfg.Agents, 5), track.lostExamples(seenNotify, cfg.GoPhones, 5)...)
	track.mu.Lock()
	res.Diag.Unmatched = track.unmatched
	track.mu.Unlock()
	logf("churn: %.0f/s, CTI p99 %.2f ms (%d lost), NOTIFY p99 %.2f ms (%d lost)", cr.Rate, cr.CTI.P99, cr.CTILost, cr.Notify.P99, cr.NotifyLost)
	if err := conn.alive(); err != nil {
		return nil, err
	}

	// Soak.
	if cfg.Soak > 0 {
		logf("soak: %.0f changes/s for %v, RSS every %v", cfg.SoakRate, cfg.Soak, cfg.SoakInterval)
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan churnResult, 1)
		go func() { done <- churn(sctx, sim, nil, next, cfg.SoakRate, cfg.Soak, false) }()
		var xs, ys []float64
		t0 := time.Now()
		tick := time.NewTicker(cfg.SoakInterval)
	soak:
		for {
			select {
			case <-done:
				break soak
			case <-ctx.Done():
				break soak
			case <-tick.C:
				p, perr := conn.proc()
				if perr != nil {
					err = errors.Join(perr, conn.alive())
					break soak
				}
				mb := float64(p.RSS) / (1 << 20)
				xs = append(xs, time.Since(t0).Hours())
				ys = append(ys, mb)
				res.Soak.Samples = append(res.Soak.Samples, math.Round(mb*10)/10)
			}
		}
		tick.Stop()
		cancel()
		if err != nil {
			return nil, err
		}
		if len(xs) >= 2 {
			slope := linearSlope(xs, ys)
			res.Soak.SlopeMBPerH = slope
			mean := 0.0
			for _, y := range ys {
				mean += y
			}
			mean /= float64(len(ys))
			res.Soak.GrowthPct = slope * cfg.Soak.Hours() / mean * 100
		}
	}

	if s, err = conn.sample(ctx); err != nil {
		return nil, err
	}
	res.Footprint.End = footprint(s)
	res.XSI.End = requests()
	res.Events = map[string]float64{}
	for _, name := range []string{"sequence_gaps", "out_of_order", "received", "duplicates"} {
		if m, err := conn.counts(ctx, "connector_xsi_events_"+name+"_total", ""); err == nil {
			res.Events[name] = m[""]
		}
	}
	fp := &res.Footprint
	fp.PerUsers = perThousand(fp.Idle, fp.Baseline, cfg.Configured+cfg.Desks-2)
	fp.PerCTI = perThousand(fp.WithCTI, fp.Idle, rc.Sessions+cfg.Monitors)
	fp.PerPhones = perThousand(fp.WithPhones, fp.WithCTI, cfg.Phones)
	if cfg.Configured >= 100000 && cfg.Phones >= 10000 {
		fp.Target, fp.TargetMeasured = float64(fp.End.HWM), true
	} else {
		// 100,000 agents and 10,000 desks in the directory, 10,000 phones.
		// A stage that sampled less RSS than the one before (the runtime
		// gave memory back between the samples: small runs) counts as
		// costing nothing, not as memory the users or phones free.
		fp.Target = float64(fp.Baseline.RSS) + max(0, fp.PerUsers.RSS)*110 + max(0, fp.PerPhones.RSS)*10
	}

	logf("stopping the connector (SIGTERM)")
	if err = conn.stop(30 * time.Second); err != nil {
		return nil, err
	}
	if sipp != nil {
		if err = sipp.wait(30 * time.Second); err != nil {
			res.Sipp = "failed: " + firstLine(err.Error())
			fmt.Fprintln(cfg.Log, err)
			err = nil
		} else {
			res.Sipp = fmt.Sprintf("all %d sipp phones stayed subscribed until the connector's terminating NOTIFY", sippN)
		}
	}
	res.Machine.LoadAfter = loadAvg()
	res.Diag.Sim = sim.Stats()
	res.Diag.Warnings, res.Diag.WarningLines = warnings(conn.log.String(), 5)
	return res, nil
}

// warnings counts the WARN and ERROR lines of a log and returns the
// first n distinct messages.
func warnings(log string, n int) (count int, first []string) {
	seen := map[string]bool{}
	for line := range strings.SplitSeq(log, "\n") {
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		count++
		_, msg, _ := strings.Cut(line, "msg=")
		key, _, _ := strings.Cut(msg, "=")
		if !seen[key] && len(first) < n {
			seen[key] = true
			first = append(first, line)
		}
	}
	return count, first
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// linearSlope is the least-squares slope of ys over xs.
func linearSlope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// JSON writes the result as indented JSON.
func (r *Result) JSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}
