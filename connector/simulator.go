package connector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// StartSimulator builds the XSP simulator from the configuration
// (simulator.*, with xsi.username and xsi.password as its credentials) and
// starts it on simulator.listen: the embedded one of xsi.simulate, and
// `connector xspsim`'s.
func StartSimulator(cfg *config.Config, logger *slog.Logger) (*xspsim.Server, error) {
	sim := xspsim.New(cfg.Simulator(), logger.With("component", "xspsim"))
	if err := sim.Start(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if serr := sim.Shutdown(ctx); serr != nil {
			logger.Error("connector: xsp simulator shutdown", "error", serr)
		}
		return nil, fmt.Errorf("xsp simulator: %w", err)
	}
	return sim, nil
}

// SimulatorUserKeys are the keys AddSimulatorUsers applies live.
var SimulatorUserKeys = []string{"simulator.users", "simulator.hoteling_hosts", "simulator.call_center_agents", "simulator.signed_in_agents"}

// AddSimulatorUsers adds to sim the users of next's simulator.users it does
// not have, with their roles (hoteling_hosts, call_center_agents,
// signed_in_agents), as an administrator creating them in BroadWorks
// would. Users no longer listed stay (a simulator, like BroadWorks under a
// connector, does not lose users on a file edit) and roles of existing
// users stay until a restart; both are logged. It reports whether the
// users were added (false: the simulator refused them, nothing changed).
// The embedded simulator of a connector takes them on Reload too.
func AddSimulatorUsers(sim *xspsim.Server, cur, next *config.Config, logger *slog.Logger) bool {
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
