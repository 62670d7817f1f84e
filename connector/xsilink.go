package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// buildXSILink starts the simulator when xsi.simulate is true and builds
// the Xsi-Actions client and the Xsi-Events channel set (pointed at the
// simulator's actual URL in that case: simulator.listen may be port 0, so
// xsi.servers cannot name it).
func (c *Connector) buildXSILink() error {
	cfg := c.Config()
	xcfg := cfg.XSI()
	if cfg.XSILink.Simulate {
		sim, err := StartSimulator(cfg, c.logger)
		if err != nil {
			return err
		}
		c.simulator = sim
		xcfg.Servers = []string{sim.URL()}
		c.logger.Info("xsp simulator running; the XSI link uses it instead of xsi.servers (xsi.simulate is true)",
			"url", sim.URL(), "users", len(cfg.XSPSimulator.Users))
	}
	client, err := xsi.NewClient(xcfg, c.logger)
	if err != nil {
		return err
	}
	c.client = client
	events, err := xsi.NewEvents(xcfg, c.logger)
	if err != nil {
		return err
	}
	c.events = events
	c.logger.Info("xsi link built", "servers", xcfg.Servers, "channel_set_id", xcfg.ChannelSetID,
		"scopes", len(xcfg.Scopes), "targets", len(xcfg.Targets), "event_packages", xcfg.EventPackages)
	return nil
}

// buildGateway builds the gateway and its hot-desk sequencer. They need
// each other (the sequencer reads the gateway's view, the gateway runs
// hot-desk logins through the sequencer): the sequencer is handed over
// before anything runs. The journal and the admin observer are set before
// the first event too.
func (c *Connector) buildGateway() {
	cfg := c.Config()
	var actions interface {
		gateway.Actions
		hoteling.Actions
	} = c.client
	if c.gate != nil {
		actions = &gatedActions{Client: c.client, gate: c.gate}
	}
	gcfg := cfg.Gateway()
	// A request given up on may still be applied by the XSP until any
	// request sent then has surely ended (the reconciler's doubts).
	gcfg.DoubtWindow = max(2*cfg.XSILink.RequestTimeout, 10*time.Second)
	gcfg.RecoverMode = cfg.HotDesks.RecoverMode
	deps := gateway.Deps{Actions: actions, Publisher: c.publisher, Scopes: c.events}
	if c.store != nil {
		deps.Promises = promiseStore{intents: c.store.Intents(), gate: c.gate}
	}
	c.gateway = gateway.New(gcfg, deps,
		c.logger.With("component", "gateway"))
	if c.journal != nil {
		c.gateway.SetJournal(c.journal)
	}
	hcfg := cfg.Hoteling()
	// The number a desk forwards to comes from the directory in force
	// (SIGHUP may reload it).
	hcfg.NumberOf = c.gateway.NumberOf // an entry's number, else BroadWorks' (users.go)
	hcfg.XSILoad = c.client.Load       // admission judges by it
	if c.store != nil {
		// The store's (store.path); without it the sequencer remembers
		// desks' own forwarding in memory only.
		hcfg.Store = c.store.Remembered()
	}
	if c.gate != nil && hcfg.Store != nil {
		hcfg.Store = gatedStore{Store: hcfg.Store, gate: c.gate}
	}
	c.sequencer = hoteling.New(hcfg, actions, c.gateway, c.logger.With("component", "hoteling"))
	c.gateway.SetHoteling(c.sequencer)
}

// startLink starts the gateway's event loop, the repair loop and the
// channel set.
func (c *Connector) startLink() error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	// The link-state logger passes every change on to the gateway: both
	// need LinkChanges, which has room for one receiver only.
	gwChanges := make(chan struct{}, 1)
	c.linkLoggerWG.Add(1)
	go c.logLinkChanges(gwChanges)
	evs := c.events.Events()
	var running sync.WaitGroup
	if tap := c.opts.tap; tap != nil {
		// Passed on one by one, unbuffered: the gateway still takes each
		// event when the channel set hands it over.
		tapped := make(chan xsi.Event)
		evs = tapped
		running.Add(1)
		go func() {
			defer running.Done()
			defer close(tapped)
			for {
				var ev xsi.Event
				var open bool
				select {
				case ev, open = <-c.events.Events():
					if !open {
						return
					}
				case <-ctx.Done():
					return
				}
				tap(ev)
				select {
				case tapped <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	running.Add(2)
	go func() {
		defer running.Done()
		c.gateway.Run(ctx, evs, gwChanges, c.events.LinkState)
	}()
	go func() {
		defer running.Done()
		c.repairLoop(ctx)
	}()
	go func() {
		running.Wait()
		close(c.gatewayDone)
	}()
	// The channel set lives until stopLink, not until ctx ends: Stop
	// deletes the channels.
	return c.events.Start(context.Background())
}

// repairLoop reads the start-up users once the link is first up, and has
// the reconciler take the promises a connector before this one left
// unkept (a hot-desk sequence a crash cut off: hoteling.recover_mode) and
// the desks the sequencer remembers; once those repairs have settled, the
// journal closes what BroadWorks no longer shows. Every later repair (a
// failed request, a lost link, an association BroadWorks ended) is the
// reconciler's own work, in the gateway.
func (c *Connector) repairLoop(ctx context.Context) {
	defer c.startupOnce.Do(func() { close(c.startupRepaired) }) // also when ctx ends first
	users := c.Config().StartUpUsers()
	if c.opts.hasStartUp {
		users = c.opts.startUp
	}
	c.gateway.Recover(ctx, users, recoverSnapshotWait, func() {
		repaired, failed := 0, 0
		for _, r := range c.gateway.Repairs() {
			if r.Err != nil {
				failed++
			} else {
				repaired++
			}
		}
		c.logger.Info("reconciler: start-up recovery done", "repairs", repaired, "failed", failed)
		if c.journal != nil {
			c.journal.reconcile(ctx, c.gateway)
		}
		c.startupOnce.Do(func() { close(c.startupRepaired) })
	})
}

// logLinkChanges logs, on every change, the state of each XSP whose state
// changed since the last one, passes the change on to the gateway, and logs
// the final states when the link stops.
func (c *Connector) logLinkChanges(forward chan<- struct{}) {
	defer c.linkLoggerWG.Done()
	last := make(map[string]xsi.LinkStatus)
	for {
		stopping := false
		select {
		case <-c.linkLogDone:
			stopping = true // log the final states once more
		case <-c.events.LinkChanges():
			select {
			case forward <- struct{}{}:
			default: // one pending is enough: the gateway reads LinkState
			}
		}
		for _, s := range c.events.LinkState() {
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
			c.logger.Info("xsi link", attrs...)
		}
		if stopping {
			return
		}
	}
}

// stopLink ends the gateway (its event loop, the repair loop and the
// held-event timers), deletes the XSI channels and closes the Actions
// client, in that order.
func (c *Connector) stopLink(ctx context.Context) error {
	var err error
	if c.cancel != nil {
		c.cancel()
		select {
		case <-c.gatewayDone:
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("gateway: %w", ctx.Err()))
		}
		err = errors.Join(err, c.events.Stop(ctx))
		close(c.linkLogDone)
		waited := make(chan struct{})
		go func() {
			c.linkLoggerWG.Wait()
			close(waited)
		}()
		select {
		case <-waited:
		case <-ctx.Done(): // Stop already reported it; the logger ends on its own
		}
	}
	c.client.Close()
	return err
}
