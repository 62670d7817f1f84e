package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// xsiLink is the XSI side of a running connector: the embedded XSP
// simulator (with xsi.simulate) and the Xsi-Events channel set.
type xsiLink struct {
	logger    *slog.Logger
	simulator *xspsim.Server // nil unless xsi.simulate
	events    *xsi.Events
	done      chan struct{} // closed by stop: ends the link-state logger
	wg        sync.WaitGroup
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

// startXSILink starts the simulator when xsi.simulate is true and then the
// Xsi-Events channel set, pointed at the simulator's actual URL in that case
// (simulator.listen may be port 0, so xsi.servers cannot name it).
func startXSILink(cfg *config.Config, logger *slog.Logger) (*xsiLink, error) {
	l := &xsiLink{logger: logger, done: make(chan struct{})}
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

	events, err := xsi.NewEvents(xcfg, logger)
	if err != nil {
		l.stopSimulator()
		return nil, err
	}
	l.events = events
	// Subscribe to the link changes before Start so that none is missed.
	l.wg.Add(1)
	go l.logLinkChanges()
	if err := events.Start(context.Background()); err != nil {
		close(l.done)
		l.wg.Wait()
		l.stopSimulator()
		return nil, err
	}
	// The gateway that turns XSI events into CSTA events is a later issue;
	// until then the events are drained and logged at debug level so that
	// the channel set keeps acknowledging them.
	logger.Warn("no BroadWorks gateway built yet: XSI events are only logged (debug level)")
	l.wg.Add(1)
	go l.drainEvents()
	logger.Info("xsi link starting", "servers", xcfg.Servers, "channel_set_id", xcfg.ChannelSetID,
		"targets", len(xcfg.Targets), "event_packages", xcfg.EventPackages)
	return l, nil
}

// drainEvents logs every event until Stop closes the stream.
func (l *xsiLink) drainEvents() {
	defer l.wg.Done()
	for ev := range l.events.Events() {
		if se, ok := ev.(*xsi.SubscriptionEvent); ok {
			l.logger.Debug("xsi event", "type", fmt.Sprintf("%T", se.Data), "target", se.TargetID, "server", se.Server,
				"subscription", se.SubscriptionID, "event_id", se.EventID)
			continue
		}
		l.logger.Debug("xsi event", "type", fmt.Sprintf("%T", ev))
	}
}

// logLinkChanges logs, on every change, the state of each XSP whose state
// changed since the last one, and the final states when the link stops.
func (l *xsiLink) logLinkChanges() {
	defer l.wg.Done()
	last := make(map[string]xsi.LinkStatus)
	for {
		stopping := false
		select {
		case <-l.done:
			stopping = true // log the final states once more
		case <-l.events.LinkChanges():
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

// stop deletes the XSI channels, then stops the simulator.
func (l *xsiLink) stop(ctx context.Context) error {
	err := l.events.Stop(ctx)
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
