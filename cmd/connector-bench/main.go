// Command connector-bench is the connector's end-to-end benchmark (issue 7):
// it builds the connector, runs it as a child process against an XSP
// simulator with two XSPs and injected latency, drives it with CTI
// sessions and phones, and prints a table (or -json). The work is in
// internal/bench; BENCHMARKS.md has the method and results.
//
//	go run ./cmd/connector-bench                     # the default run, under 5 minutes on 2 cores
//	go run ./cmd/connector-bench -agents 10000 -phones 1000
//	go run ./cmd/connector-bench -configured 100000 -phones 10000 -agents 1000
//	go run ./cmd/connector-bench -soak 30m
//	go run ./cmd/connector-bench -directory-users 100000   # start-up with 100,000 users in scope
//	go run ./cmd/connector-bench -per-user-targets          # the directory layout before issue 15
//	go run ./cmd/connector-bench -takeover 10               # an active/standby pair on PostgreSQL: takeover time over ten kills
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/broadworks-connector/connector/internal/bench"
	"github.com/broadworks-connector/connector/internal/failover"
)

func main() {
	d := bench.Defaults()
	cfg := d
	fs := flag.NewFlagSet("connector-bench", flag.ContinueOnError)
	fs.IntVar(&cfg.Agents, "agents", d.Agents, "agents logged in by the storm, each from its own CTI session at its own hot desk")
	fs.IntVar(&cfg.AgentsPerSession, "agents-per-session", 1, "agents (and their desks) per CTI session: above 1 keeps the sessions under the connector's descriptor budget")
	fs.IntVar(&cfg.Desks, "desks", 0, "hot desks in the directory (default max(-agents, -phones))")
	fs.IntVar(&cfg.Configured, "configured", 0, "agents in the directory, the ones beyond -agents idle (default -agents)")
	fs.IntVar(&cfg.Phones, "phones", d.Phones, "phones subscribed to as-feature-event, one per desk")
	fs.IntVar(&cfg.GoPhones, "go-phones", d.GoPhones, "of the phones, Go phones (exact NOTIFY times); the rest are sipp")
	fs.IntVar(&cfg.Monitors, "monitors", d.Monitors, "K: extra CTI sessions monitoring desk 1 (fan-out)")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", d.ChurnRate, "agent state changes per second")
	fs.DurationVar(&cfg.ChurnDuration, "churn-duration", d.ChurnDuration, "how long the churn runs")
	fs.DurationVar(&cfg.Latency, "latency", d.Latency, "latency the simulator adds to every Xsi-Actions request (L)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", d.MaxInFlight, "xsi.max_in_flight (C)")
	fs.IntVar(&cfg.FanoutChanges, "fanout-changes", d.FanoutChanges, "single changes of agent 1 for the fan-out row")
	fs.DurationVar(&cfg.Soak, "soak", 0, "soak: keep churning this long after the churn, sampling RSS (e.g. 30m); 0 none")
	fs.DurationVar(&cfg.SoakInterval, "soak-interval", 0, "RSS sample interval during the soak (default 10s)")
	fs.Float64Var(&cfg.SoakRate, "soak-rate", 0, "changes per second during the soak (default -churn-rate)")
	fs.BoolVar(&cfg.PerUserTargets, "per-user-targets", false, "generate a user target and directory entries for every agent and desk, no scope (the layout before issue 15)")
	fs.IntVar(&cfg.DirectoryUsers, "directory-users", 0, "run the start-up scenario instead: this many users in the simulator's group, the scope only; time to /readyz 200 and idle RSS")
	fs.DurationVar(&cfg.Settle, "settle", 0, "start-up scenario: idle time after settling before the memory sample (default 10s)")
	fs.IntVar(&cfg.XSPs, "xsps", 2, "XSPs the simulator serves, one event channel on each (their events are not ordered with each other)")
	fs.StringVar(&cfg.Pin, "pin", "", "run the connector under `taskset -c CPUS` (e.g. 1) and the load (this process, the simulator, phones, sipp) on the other CPUs, for steadier CPU figures")
	fs.StringVar(&cfg.Connector, "connector", "", "a connector binary to run instead of building ./cmd/connector")
	fs.StringVar(&cfg.WorkDir, "workdir", "", "directory for the generated config, journal and sipp files (default a temporary one, removed)")
	fs.StringVar(&cfg.Store, "store", "bbolt", "the connector's store driver: bbolt (a file in the work directory) or postgres")
	fs.StringVar(&cfg.StoreDSN, "store-dsn", "", "-store postgres: the database's DSN (default a throwaway PostgreSQL cluster, started and removed by this run)")
	takeovers := fs.Int("takeover", 0, "run the takeover scenario instead: an active/standby pair on a throwaway PostgreSQL, the active SIGKILLed this many times; time from the kill to the standby's first successful CSTA answer")
	takeoverAgents := fs.Int("takeover-agents", 50, "takeover scenario: agents logged in at their desks before the first kill")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of the table")
	jsonFile := fs.String("json-file", "", "also write the result as JSON to this `file`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "connector-bench: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *takeovers > 0 {
		os.Exit(runTakeovers(ctx, cfg.Connector, *takeovers, *takeoverAgents, *asJSON))
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connector-bench:", err)
		os.Exit(1)
	}
	if *jsonFile != "" {
		f, ferr := os.Create(*jsonFile)
		if ferr == nil {
			ferr = res.JSON(f)
			ferr = errors.Join(ferr, f.Close())
		}
		if ferr != nil {
			fmt.Fprintln(os.Stderr, "connector-bench:", ferr)
		}
	}
	if *asJSON {
		err = res.JSON(os.Stdout)
	} else {
		err = res.Table(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "connector-bench:", err)
		os.Exit(1)
	}
}

// runTakeovers is the -takeover scenario (internal/failover.Takeovers).
func runTakeovers(ctx context.Context, binary string, kills, agents int, asJSON bool) int {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	res, err := failover.Takeovers(ctx, failover.TakeoverConfig{Binary: binary, Kills: kills, Agents: agents, Logf: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connector-bench:", err)
		return 1
	}
	if asJSON {
		out := struct {
			LeaseTTL    string  `json:"leaseTTL"`
			Agents      int     `json:"agents"`
			TakeoversMS []int64 `json:"takeoversMs"`
			P50MS       int64   `json:"p50Ms"`
			P99MS       int64   `json:"p99Ms"`
			Max         string  `json:"max"`
		}{LeaseTTL: res.LeaseTTL.String(), Agents: res.Agents, P50MS: res.Percentile(50).Milliseconds(), P99MS: res.Percentile(99).Milliseconds(), Max: res.Percentile(100).String()}
		for _, d := range res.Takeovers {
			out.TakeoversMS = append(out.TakeoversMS, d.Milliseconds())
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, "connector-bench:", err)
			return 1
		}
		return 0
	}
	fmt.Printf("takeover (SIGKILL of the active → the standby's first successful CSTA answer), lease_ttl %v, %d agents at desks, %d kills\n",
		res.LeaseTTL, res.Agents, len(res.Takeovers))
	fmt.Printf("  p50 %v   p99 %v   min %v   max %v\n", res.Percentile(50).Round(time.Millisecond), res.Percentile(99).Round(time.Millisecond),
		res.Percentile(0).Round(time.Millisecond), res.Percentile(100).Round(time.Millisecond))
	for i, d := range res.Takeovers {
		fmt.Printf("  kill %2d: %v\n", i+1, d.Round(time.Millisecond))
	}
	return 0
}
