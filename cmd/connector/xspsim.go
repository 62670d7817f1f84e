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

	sim, err := startSimulator(cfg, logger)
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
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := sim.Shutdown(ctx); err != nil {
		logger.Error("connector: shutdown", "error", err)
		return exitFailure
	}
	logger.Info("xsp simulator stopped")
	return exitOK
}

// reloadSimulatorUsers reads the configuration at path again and applies
// it to sim with addSimulatorUsers; other simulator changes need a restart
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
		if !slices.Contains(simulatorUserKeys, key) && (strings.HasPrefix(key, "simulator.") || key == "xsi.username" || key == "xsi.password" || key == "xsi.password_file") {
			logger.Warn("reload: change needs a restart of the simulator, not applied", "key", key)
		}
	}
	if !addSimulatorUsers(sim, cur, next, logger) {
		return cur
	}
	return next
}

// simulatorUserKeys are the keys addSimulatorUsers applies live.
var simulatorUserKeys = []string{"simulator.users", "simulator.hoteling_hosts", "simulator.call_center_agents", "simulator.signed_in_agents"}

// addSimulatorUsers adds to sim the users of next's simulator.users it does
// not have, with their roles (hoteling_hosts, call_center_agents,
// signed_in_agents), as an administrator creating them in BroadWorks
// would. Users no longer listed stay (a simulator, like BroadWorks under a
// connector, does not lose users on a file edit) and roles of existing
// users stay until a restart; both are logged. It reports whether the
// users were added (false: the simulator refused them, nothing changed).
// The embedded simulator of `run` can use it from its reload as well.
func addSimulatorUsers(sim *xspsim.Server, cur, next *config.Config, logger *slog.Logger) bool {
	var added []xspsim.User
	before := make(map[string]xspsim.User)
	for _, u := range cur.Simulator().Users {
		before[u.ID] = u
	}
	rolesKept := 0
	nextUsers := next.Simulator().Users
	for _, u := range nextUsers {
		old, ok := before[u.ID]
		switch {
		case !sim.HasUser(u.ID):
			added = append(added, u)
		case ok && (old.CallCenter != u.CallCenter || old.HotelingHost != u.HotelingHost || old.ACDState != u.ACDState):
			rolesKept++
		}
	}
	if len(added) == 0 && rolesKept == 0 && len(nextUsers) == len(before) {
		return true
	}
	if err := sim.AddUsers(added...); err != nil {
		logger.Error("reload: users not added, keeping the running ones", "error", err)
		return false
	}
	total := sim.UserCount()
	logger.Info("reload: xsp simulator users added", "added", len(added), "users", total)
	if removed := total - len(nextUsers); removed > 0 {
		logger.Warn("reload: users not in simulator.users stay in the simulator until a restart", "users", removed)
	}
	if rolesKept > 0 {
		logger.Warn("reload: role changes of existing users need a restart, not applied", "users", rolesKept)
	}
	return true
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
