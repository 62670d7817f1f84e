package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// xspsimCommand runs the XSP simulator alone on simulator.listen, for
// integrators, until SIGINT or SIGTERM.
func xspsimCommand(args []string, stderr io.Writer) int {
	cfg, _, code, ok := loadRequiredConfig("xspsim", args, stderr)
	if !ok {
		return code
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.SlogLevel())

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	sim, err := startSimulator(cfg, logger)
	if err != nil {
		logger.Error("connector: cannot start", "error", err)
		return exitFailure
	}
	s := cfg.XSPSimulator
	logger.Info("xsp simulator running", "url", sim.URL(), "username", cfg.XSILink.Username,
		"enterprise_id", s.EnterpriseID, "group_id", s.GroupID)
	for _, id := range s.Users {
		logger.Info("xsp simulator user", "user", id,
			"call_center_agent", slices.Contains(s.CallCenterAgents, id), "hoteling_host", slices.Contains(s.HotelingHosts, id))
	}

	sig := <-signals
	logger.Info("xsp simulator shutting down", "signal", sig.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := sim.Shutdown(ctx); err != nil {
		logger.Error("connector: shutdown", "error", err)
		return exitFailure
	}
	logger.Info("xsp simulator stopped")
	return exitOK
}
