package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// DirectoryResult is the start-up scenario (issue 15): a connector whose
// only view of the users is the scope, against a simulator with Users
// users in that group.
type DirectoryResult struct {
	Users int `json:"users"`
	// ReadyS is from the connector's exec until /readyz first answered
	// 200: listeners serving, an XSI event channel up, the scope's
	// subscription active (with per-user targets: their subscriptions are
	// not part of /readyz, SettledS is the figure to read).
	ReadyS float64 `json:"readyz_s"`
	// SettledS is until the connector's log says every subscription it
	// wants is active and the simulator has had every event it sent
	// acknowledged, steadily for a second.
	SettledS float64 `json:"settled_s"`
	// CPUToReadyS and CPUToSettledS are the connector's CPU time (user +
	// system) by then.
	CPUToReadyS   float64 `json:"connector_cpu_to_ready_s"`
	CPUToSettledS float64 `json:"connector_cpu_to_settled_s"`
	// Idle is the footprint after Settle more seconds with nothing to do.
	Idle     Footprint          `json:"idle"`
	SettleS  float64            `json:"settle_s"`
	Requests map[string]float64 `json:"xsi_actions_requests"` // by method, at the idle sample
	Warnings int                `json:"connector_warnings"`
	Examples []string           `json:"connector_warning_examples,omitempty"`
}

// Targets of issue 15 for the start-up scenario.
const (
	targetDirectoryUsers = 100_000
	targetReadyS         = 10
	targetIdleRSS        = 150 << 20
)

// runDirectory is the start-up scenario: the simulator with
// cfg.DirectoryUsers users in one group (two XSPs), the connector with
// the scope only (or, with PerUserTargets, a user target for each), the
// time to /readyz 200 and to settled, the idle footprint.
func runDirectory(ctx context.Context, cfg Config, res *Result, bin, dir string, logger *slog.Logger, logf func(string, ...any)) (*Result, error) {
	n := cfg.DirectoryUsers
	logf("starting the simulator: %d users in one group, two XSPs", n)
	sim, err := startDirectorySimulator(n, logger)
	if err != nil {
		return nil, err
	}
	defer shutdownSim(sim)
	d := dir + "/directory"
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	token := "connector-bench-admin-token"
	cc := connectorConfig{Dir: d, Servers: []string{sim.URLOf(0), sim.URLOf(1)}, PerUserTargets: cfg.PerUserTargets,
		MaxInFlight: cfg.MaxInFlight, MaxConnections: 64, Token: token, ChannelSet: "bench-directory",
		Timeout: 120 * time.Second, LogLevel: "info"}
	if cfg.PerUserTargets {
		cc.Users = n
	}
	path, err := writeConfig(cc)
	if err != nil {
		return nil, err
	}
	logf("connector: %s, %d users in the simulator", res.Config.Directory, n)
	conn, t0, err := launchConnector(bin, path, token, cfg.Pin)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			conn.kill()
		}
	}()
	r := &DirectoryResult{Users: n, SettleS: cfg.Settle.Seconds()}
	ready, err := conn.awaitReadyz(ctx, t0, cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	r.ReadyS, r.CPUToReadyS = ready.Seconds(), pidCPU(conn.pid).Seconds()
	logf("/readyz 200 after %.2f s (connector CPU %.2f s)", r.ReadyS, r.CPUToReadyS)
	if err = conn.awaitStarted(t0, cfg.StartTimeout); err != nil {
		return nil, err
	}
	simStats := func() (int, int) { st := sim.Stats(); return st.EventsSent, st.EventsAcked }
	if err = conn.awaitSettled(ctx, simStats, cfg.StartTimeout); err != nil {
		return nil, err
	}
	// awaitSettled returns a second after the last change it saw.
	r.SettledS = time.Since(t0).Seconds() - 1
	r.CPUToSettledS = pidCPU(conn.pid).Seconds()
	logf("settled after %.1f s (connector CPU %.2f s); idle for %v", r.SettledS, r.CPUToSettledS, cfg.Settle)
	select {
	case <-ctx.Done():
		err = ctx.Err()
		return nil, err
	case <-time.After(cfg.Settle):
	}
	s, err := conn.sample(ctx)
	if err != nil {
		return nil, err
	}
	r.Idle = footprint(s)
	if r.Requests, err = conn.counts(ctx, "connector_xsi_actions_requests_total", "method"); err != nil {
		return nil, err
	}
	logf("idle: RSS %s, heap in use %s, %d goroutines", mib(float64(s.RSS)), mib(float64(s.HeapInuse)), s.Goroutines)
	if err = conn.stop(30 * time.Second); err != nil {
		return nil, err
	}
	r.Warnings, r.Examples = warnings(conn.log.String(), 5)
	res.Directory = r
	res.Diag.Sim = sim.Stats()
	res.Machine.LoadAfter = loadAvg()
	return res, nil
}

// directoryRows are the start-up scenario's table lines.
func (r *DirectoryResult) rows() []Row {
	var rows []Row
	add := func(name, value, target, met string) { rows = append(rows, Row{name, value, target, met}) }
	forTarget := func(ok bool) string {
		m := yesNo(ok)
		if r.Users < targetDirectoryUsers {
			m += fmt.Sprintf(" (target is for %d users)", targetDirectoryUsers)
		}
		return m
	}
	add("start-up: /readyz 200 (channel up, scope subscribed)", fmt.Sprintf("%.2f s (connector CPU %.2f s)", r.ReadyS, r.CPUToReadyS),
		fmt.Sprintf("< %d s", targetReadyS), forTarget(r.ReadyS > 0 && r.ReadyS < targetReadyS))
	add("start-up: settled (every subscription active, every event acknowledged)", fmt.Sprintf("%.2f s (connector CPU %.2f s)", r.SettledS, r.CPUToSettledS), "", "")
	add(fmt.Sprintf("idle footprint (%.0f s after settled)", r.SettleS), fmt.Sprintf("RSS %s, peak (VmHWM) %s, heap in use %s, %d goroutines, %d threads",
		mib(float64(r.Idle.RSS)), mib(float64(r.Idle.HWM)), mib(float64(r.Idle.HeapInuse)), r.Idle.Goroutines, r.Idle.Threads),
		fmt.Sprintf("< %d MiB RSS", targetIdleRSS>>20), forTarget(r.Idle.RSS > 0 && r.Idle.RSS < targetIdleRSS))
	add("Xsi-Actions requests by then", fmt.Sprintf("%.0f GET, %.0f PUT", r.Requests["GET"], r.Requests["PUT"]), "", "")
	add("connector warnings/errors logged", fmt.Sprintf("%d", r.Warnings), "", "")
	return rows
}

func (r *DirectoryResult) table(res *Result, w interface{ Write([]byte) (int, error) }) {
	fmt.Fprintf(w, "connector-bench start-up: %d users in the simulator's group, directory %s\n", r.Users, res.Config.Directory)
	fmt.Fprintf(w, "machine: %d CPUs, %s, load average %s at start, %s at end; connector pinned to CPUs %q, load on CPUs %q\n\n",
		res.Machine.CPUs, res.Machine.GoVersion, res.Machine.LoadAvg, res.Machine.LoadAfter, res.Config.Pin, res.Machine.LoadCPUs)
}
