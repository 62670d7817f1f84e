package failover

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/internal/stack"
)

// TakeoverConfig sizes the takeover benchmark.
type TakeoverConfig struct {
	Binary   string        // the connector; "" builds ./cmd/connector
	Kills    int           // takeovers measured; default 10
	Agents   int           // agents logged in at their desks before the first kill (the new active's recovery loads them); default 50
	LeaseTTL time.Duration // ha.lease_ttl; default 3s
	Logf     func(format string, args ...any)
}

// TakeoverResult is what the benchmark measured: per kill, from SIGKILL of
// the active to the standby's first successful CSTA answer.
type TakeoverResult struct {
	Takeovers []time.Duration
	LeaseTTL  time.Duration
	Agents    int
}

// Percentile is the p-th percentile (0..100, nearest rank) of the
// takeovers.
func (r TakeoverResult) Percentile(p float64) time.Duration {
	if len(r.Takeovers) == 0 {
		return 0
	}
	s := slices.Clone(r.Takeovers)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Takeovers runs a pair (ha.mode active-standby) on a throwaway PostgreSQL
// and the simulator, kills the active cfg.Kills times with SIGKILL, and
// measures each takeover: a prober dials the standby's CSTA port every
// 10 ms from just before the kill and asks a desk's agent state until an
// answer is a success. After each kill the killed instance is started
// again and stands by for the next round.
func Takeovers(ctx context.Context, cfg TakeoverConfig) (TakeoverResult, error) {
	if cfg.Kills <= 0 {
		cfg.Kills = 10
	}
	if cfg.Agents <= 0 {
		cfg.Agents = 50
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 3 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	res := TakeoverResult{LeaseTTL: cfg.LeaseTTL, Agents: cfg.Agents}
	dir, err := os.MkdirTemp("", "takeover-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if cfg.Binary == "" {
		if cfg.Binary, err = BuildConnector(dir); err != nil {
			return res, err
		}
	}
	pg, err := pgtest.Start()
	if err != nil {
		return res, err
	}
	defer pg.Stop()
	dsn, err := pg.CreateDatabase(ctx)
	if err != nil {
		return res, err
	}
	env, err := NewEnv(cfg.Binary, dir, dsn, EnvConfig{Agents: cfg.Agents})
	if err != nil {
		return res, err
	}
	defer env.Close()
	member := func(id string) InstanceConfig {
		return InstanceConfig{ID: id, ChannelSet: "pair-1", Scope: []string{stack.Scope("grp1")}, HA: true, LeaseTTL: cfg.LeaseTTL}
	}
	active, err := env.Start(member("a"))
	if err != nil {
		return res, err
	}
	if err := active.AwaitReady(ctx, 30*time.Second); err != nil {
		return res, err
	}
	standby, err := env.Start(member("b"))
	if err != nil {
		return res, err
	}
	if err := standby.AwaitStandby(ctx, 30*time.Second); err != nil {
		return res, err
	}
	// Agents at their desks: the new active's recovery has work.
	c, err := NewCTIClient(ctx, 10*time.Second, active.CSTA)
	if err != nil {
		return res, err
	}
	s := &Storm{start: time.Now()}
	for i := 1; i <= cfg.Agents; i++ {
		a := &AgentRun{I: i, Promise: stack.Promise{Login: stack.LoggedOut}}
		s.set(a, c, csta.ReqLoggedOn)
		if len(a.Acks) != 1 {
			c.Close()
			return res, fmt.Errorf("failover: login of agent %d: %v", i, a.Ops)
		}
	}
	c.Close()

	for k := range cfg.Kills {
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		type probe struct {
			answered time.Time
			err      error
		}
		done := make(chan probe, 1)
		go func() {
			_, answered, err := FirstAnswer(pctx, standby.CSTA, stack.DeskID(1))
			done <- probe{answered, err}
		}()
		time.Sleep(50 * time.Millisecond) // the prober is dialling
		killed := active.Kill()
		p := <-done
		cancel()
		if p.err != nil {
			return res, fmt.Errorf("failover: kill %d: %w; the standby's log:\n%s", k+1, p.err, Tail(standby.Log(), 40))
		}
		took := p.answered.Sub(killed)
		res.Takeovers = append(res.Takeovers, took)
		cfg.Logf("kill %d: %s took over in %v", k+1, standby.Cfg.ID, took.Round(time.Millisecond))
		if err := standby.AwaitReady(ctx, 30*time.Second); err != nil {
			return res, err
		}
		// The killed one comes back and stands by.
		again, err := env.Start(active.Cfg)
		if err != nil {
			return res, err
		}
		if err := again.AwaitStandby(ctx, 30*time.Second); err != nil {
			return res, err
		}
		active, standby = standby, again
	}
	return res, nil
}
