package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/connector"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// maxListedUsers bounds the users `connector xspsim` names one by one at
// start; a larger directory is summarised (a contact center has 100,000).
const maxListedUsers = 50

// xspsimCommand runs the XSP simulator alone on simulator.listen, for
// integrators, until SIGINT or SIGTERM. SIGHUP reads the configuration
// again and adds the users that appeared in simulator.users.
func xspsimCommand(args []string, stderr io.Writer) int {
	cfg, path, code, ok := loadRequiredConfig("xspsim", args, stderr)
	if !ok {
		return code
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.SlogLevel())

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	sim, err := connector.StartSimulator(cfg, logger)
	if err != nil {
		logger.Error("connector: cannot start", "error", err)
		return exitFailure
	}
	s := cfg.XSPSimulator
	logger.Info("xsp simulator running", "url", sim.URL(), "username", cfg.XSILink.Username,
		"enterprise_id", s.EnterpriseID, "group_id", s.GroupID, "users", len(s.Users),
		"hoteling_hosts", len(s.HotelingHosts), "call_center_agents", len(s.CallCenterAgents),
		"signed_in_agents", len(s.SignedInAgents))
	if len(s.Users) <= maxListedUsers {
		for _, u := range cfg.Simulator().Users {
			logger.Info("xsp simulator user", "user", u.ID, "call_center_agent", u.CallCenter,
				"hoteling_host", u.HotelingHost, "signed_in", u.ACDState != "")
		}
	}

	for sig := range signals {
		if sig == syscall.SIGHUP {
			cfg = reloadSimulatorUsers(sim, cfg, path, logger)
			continue
		}
		logger.Info("xsp simulator shutting down", "signal", sig.String())
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), connector.ShutdownTimeout)
	defer cancel()
	if err := sim.Shutdown(ctx); err != nil {
		logger.Error("connector: shutdown", "error", err)
		return exitFailure
	}
	logger.Info("xsp simulator stopped")
	return exitOK
}

// reloadSimulatorUsers reads the configuration at path again and applies
// it to sim with connector.AddSimulatorUsers; other simulator changes need a restart
// (logged). It returns the configuration now in force: the new one, or cur
// when the file is invalid or the users are refused.
func reloadSimulatorUsers(sim *xspsim.Server, cur *config.Config, path string, logger *slog.Logger) *config.Config {
	logger.Info("reload: reading configuration", "config", path)
	next, err := config.Load(path)
	if err != nil {
		logConfigProblems(logger, err)
		logger.Error("reload: configuration invalid, keeping the running one")
		return cur
	}
	for _, key := range config.Diff(cur, next) {
		if !slices.Contains(connector.SimulatorUserKeys, key) && (strings.HasPrefix(key, "simulator.") || key == "xsi.username" || key == "xsi.password" || key == "xsi.password_file") {
			logger.Warn("reload: change needs a restart of the simulator, not applied", "key", key)
		}
	}
	if !connector.AddSimulatorUsers(sim, cur, next, logger) {
		return cur
	}
	return next
}

func logConfigProblems(logger *slog.Logger, err error) {
	var problems *config.Errors
	if !errors.As(err, &problems) {
		logger.Error(err.Error())
		return
	}
	for _, problem := range problems.Problems {
		logger.Error("config: invalid key", "key", problem.Key, "problem", problem.Reason)
	}
}
