package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// xsiLink is the BroadWorks side of a running connector: the embedded XSP
// simulator (with xsi.simulate), the Xsi-Actions client, the Xsi-Events
// channel set and the gateway (with its hot-desk sequencer) they feed.
type xsiLink struct {
	journal   *journalAdapter // nil without journal.path
	logger    *slog.Logger
	simulator *xspsim.Server // nil unless xsi.simulate
	client    *xsi.Client
	events    *xsi.Events
	gateway   *gateway.Gateway
	sequencer *hoteling.Sequencer
	publisher *frontPublisher

	cancel      context.CancelFunc // ends the gateway's Run and the recovery
	gatewayDone chan struct{}      // closed when Run and the recovery returned
	done        chan struct{}      // closed by stop: ends the link-state logger
	wg          sync.WaitGroup     // the link-state logger
}

// frontPublisher hands the gateway's events to the CSTA front end, which is
// built after the gateway (it needs the gateway as its csta.Service); until
// then nothing is published.
type frontPublisher struct {
	srv atomic.Pointer[csta.Server]
}

func (p *frontPublisher) Publish(ev csta.Event) {
	if s := p.srv.Load(); s != nil {
		s.Publish(ev)
	}
}

func (p *frontPublisher) Monitored(dev csta.DeviceID) bool {
	s := p.srv.Load()
	return s != nil && s.Monitored(dev)
}

func (p *frontPublisher) SetSystemStatus(v csta.SystemStatusValue) {
	if s := p.srv.Load(); s != nil {
		s.SetSystemStatus(v)
	}
}

// startSimulator builds the XSP simulator from the configuration and starts
// it on simulator.listen.
func startSimulator(cfg *config.Config, logger *slog.Logger) (*xspsim.Server, error) {
	sim := xspsim.New(cfg.Simulator(), logger.With("component", "xspsim"))
	if err := sim.Start(); err != nil {
		shutdownSimulator(sim, logger)
		return nil, fmt.Errorf("xsp simulator: %w", err)
	}
	return sim, nil
}

func shutdownSimulator(sim *xspsim.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := sim.Shutdown(ctx); err != nil {
		logger.Error("connector: xsp simulator shutdown", "error", err)
	}
}

// newXSILink starts the simulator when xsi.simulate is true and builds the
// Xsi-Actions client, the Xsi-Events channel set (pointed at the
// simulator's actual URL in that case: simulator.listen may be port 0, so
// xsi.servers cannot name it) and the gateway with its sequencer. Nothing
// talks to BroadWorks until start.
func newXSILink(cfg *config.Config, logger *slog.Logger, remembered hoteling.Store) (*xsiLink, error) {
	l := &xsiLink{logger: logger, done: make(chan struct{}), gatewayDone: make(chan struct{}),
		publisher: &frontPublisher{}}
	xcfg := cfg.XSI()
	if cfg.XSILink.Simulate {
		sim, err := startSimulator(cfg, logger)
		if err != nil {
			return nil, err
		}
		l.simulator = sim
		xcfg.Servers = []string{sim.URL()}
		logger.Info("xsp simulator running; the XSI link uses it instead of xsi.servers (xsi.simulate is true)",
			"url", sim.URL(), "users", len(cfg.XSPSimulator.Users))
	}
	client, err := xsi.NewClient(xcfg, logger)
	if err != nil {
		l.stopSimulator()
		return nil, err
	}
	l.client = client
	events, err := xsi.NewEvents(xcfg, logger)
	if err != nil {
		client.Close()
		l.stopSimulator()
		return nil, err
	}
	l.events = events

	glog := logger.With("component", "gateway")
	gcfg := cfg.Gateway()
	// An agent-state request given up on may still be applied by the XSP:
	// look again once any request sent then has surely ended.
	gcfg.RecheckAfter = max(2*xcfg.RequestTimeout, 10*time.Second)
	l.gateway = gateway.New(gcfg, gateway.Deps{Actions: client, Publisher: l.publisher, Scopes: events}, glog)
	hcfg := cfg.Hoteling()
	hcfg.Store = remembered // the store's (store.path); nil keeps it in memory
	// The number a desk forwards to comes from the directory in force
	// (SIGHUP may reload it).
	hcfg.NumberOf = l.gateway.NumberOf // an entry's number, else BroadWorks' (users.go)
	// A step given up on (timeout, 5xx) may still be applied by the XSP:
	// look again once any request sent then has surely ended.
	hcfg.RecheckAfter = max(2*xcfg.RequestTimeout, 10*time.Second)
	l.sequencer = hoteling.New(hcfg, client, l.gateway, logger.With("component", "hoteling"))
	l.gateway.SetHoteling(l.sequencer)
	logger.Info("xsi link built", "servers", xcfg.Servers, "channel_set_id", xcfg.ChannelSetID,
		"scopes", len(xcfg.Scopes), "targets", len(xcfg.Targets), "event_packages", xcfg.EventPackages)
	return l, nil
}

// start connects the gateway to the CSTA front end, then starts the
// gateway's event loop and the channel set; once the link is first up and
// the snapshots of recoverUsers are in, half-done hot-desk sequences are
// repaired (hoteling.recover_mode).
func (l *xsiLink) start(front *csta.Server, recoverUsers []string) error {
	l.publisher.srv.Store(front)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	// The link-state logger passes every change on to the gateway: both
	// need LinkChanges, which has room for one receiver only.
	gwChanges := make(chan struct{}, 1)
	l.wg.Add(1)
	go l.logLinkChanges(gwChanges)
	var running sync.WaitGroup
	running.Add(2)
	go func() {
		defer running.Done()
		l.gateway.Run(ctx, l.events.Events(), gwChanges, l.events.LinkState)
	}()
	go func() {
		defer running.Done()
		l.recover(ctx, recoverUsers)
	}()
	go func() {
		running.Wait()
		close(l.gatewayDone)
	}()
	// The channel set lives until stop, not until ctx ends: Stop deletes
	// the channels.
	return l.events.Start(context.Background())
}

// recoverSnapshotWait bounds how long recovery waits for the users'
// snapshots after the link is (back) up; users without one are looked at
// anyway.
const recoverSnapshotWait = 15 * time.Second

// recover repairs half-done hot-desk sequences (hoteling.recover_mode) once
// the link is first up and the users' snapshots are in, and again after
// every link recovery once the resync has refreshed them.
func (l *xsiLink) recover(ctx context.Context, users []string) {
	l.gateway.RepairLoop(ctx, users, gateway.RepairOptions{Startup: true, SnapshotWait: recoverSnapshotWait},
		func(ctx context.Context, users []string) {
			repairs := l.sequencer.Recover(ctx, users)
			// Recover logs each repair itself; this is the summary.
			failed := 0
			for _, r := range repairs {
				if r.Err != nil {
					failed++
				}
			}
			when := gateway.RepairPass(ctx)
			if when == gateway.PassStartup && l.journal != nil {
				l.journal.reconcile(ctx, l.gateway)
			}
			l.logger.Info("hoteling: recovery done", "when", when, "users", len(users), "repairs", len(repairs), "failed", failed)
		})
}

// logLinkChanges logs, on every change, the state of each XSP whose state
// changed since the last one, passes the change on to the gateway, and logs
// the final states when the link stops.
func (l *xsiLink) logLinkChanges(forward chan<- struct{}) {
	defer l.wg.Done()
	last := make(map[string]xsi.LinkStatus)
	for {
		stopping := false
		select {
		case <-l.done:
			stopping = true // log the final states once more
		case <-l.events.LinkChanges():
			select {
			case forward <- struct{}{}:
			default: // one pending is enough: the gateway reads LinkState
			}
		}
		for _, s := range l.events.LinkState() {
			prev, seen := last[s.Server]
			if seen && prev.State == s.State && prev.Since.Equal(s.Since) {
				continue
			}
			last[s.Server] = s
			attrs := []any{"server", s.Server, "state", s.State.String(), "since", s.Since.Format(time.RFC3339Nano)}
			if s.ChannelID != "" {
				attrs = append(attrs, "channel", s.ChannelID)
			}
			if s.LastError != nil {
				attrs = append(attrs, "last_error", s.LastError.Error())
			}
			l.logger.Info("xsi link", attrs...)
		}
		if stopping {
			return
		}
	}
}

// stop ends the gateway (its event loop, the recovery and the held-event
// timers), deletes the XSI channels, closes the Actions client and stops
// the simulator, in that order.
func (l *xsiLink) stop(ctx context.Context) error {
	var err error
	l.sequencer.Close() // no re-checks of failed sequences from here on
	if l.cancel != nil {
		l.cancel()
		select {
		case <-l.gatewayDone:
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("gateway: %w", ctx.Err()))
		}
		l.gateway.Wait()
	}
	err = errors.Join(err, l.events.Stop(ctx))
	close(l.done)
	waited := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done(): // Stop already reported it; the goroutines end on their own
	}
	l.client.Close()
	if l.simulator != nil {
		if serr := l.simulator.Shutdown(ctx); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (l *xsiLink) stopSimulator() {
	if l.simulator != nil {
		shutdownSimulator(l.simulator, l.logger)
	}
}
