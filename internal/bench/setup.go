package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Directory naming: agent i and desk i (1-based) are BroadWorks users of
// one domain, in the simulator's one group (scope). With the scope (the
// default) a desk forwards to its guest's BroadWorks number (agentNumber);
// with per-user targets (the layout before issue 15) to the agent ID given
// in directory.agents.
const (
	domain    = "example.com"
	xsiUser   = "connector@" + domain
	xsiPass   = "bench-secret"
	appID     = "connector-bench"
	reasonNR  = "2" // the CSTA not-ready reason the churn uses
	codeNR    = "MEETING"
	deskOwnNo = "+1555%07d"
)

func agentID(i int) string   { return fmt.Sprintf("agent%06d", i) }
func agentUser(i int) string { return agentID(i) + "@" + domain }
func deskID(i int) string    { return fmt.Sprintf("desk%06d", i) }
func deskUser(i int) string  { return deskID(i) + "@" + domain }

// agentNumber is agent i's BroadWorks number (its profile's number).
func agentNumber(i int) string { return fmt.Sprintf("+1666%07d", i) }

// plainUser is user i of the start-up scenario's directory.
func plainUser(i int) string { return fmt.Sprintf("user%06d@%s", i, domain) }

// scope is the one xsi.scope item: the simulator's default group.
const scope = "group:grp1@ent1"

// forwardTo is what desk i forwards to while agent i is its guest.
func forwardTo(perUserTargets bool, i int) string {
	if perUserTargets {
		return agentID(i)
	}
	return agentNumber(i)
}

// startSimulator seeds the XSP simulator with agents (Call Center, a
// number) and desks (every desk a hoteling host; even desks with their own
// CFA, which a login must remember and a logout restore), all in one
// group, and starts two XSPs sharing its state. The desks are call-center
// agents too only in the per-user layout (then one package list had to fit
// every user target); signed out, so a login has no host to sign out.
func startSimulator(agents, desks int, perUserTargets bool, xsps int, logger *slog.Logger) (*xspsim.Server, error) {
	users := make([]xspsim.User, 0, agents+desks)
	for i := 1; i <= agents; i++ {
		users = append(users, xspsim.User{ID: agentUser(i), FirstName: agentID(i), LastName: "Agent", CallCenter: true, PhoneNumber: agentNumber(i)})
	}
	for i := 1; i <= desks; i++ {
		users = append(users, xspsim.User{ID: deskUser(i), FirstName: deskID(i), LastName: "Desk", HotelingHost: true, CallCenter: perUserTargets})
	}
	return launchSimulator(users, desks, xsps, logger)
}

// startDirectorySimulator seeds the simulator with n users in its one
// group, as a contact center's BroadWorks directory: every tenth a
// hoteling host, the others call-center agents with a number.
func startDirectorySimulator(n int, logger *slog.Logger) (*xspsim.Server, error) {
	users := make([]xspsim.User, n)
	for i := range users {
		u := &users[i]
		u.ID, u.FirstName, u.LastName = plainUser(i+1), fmt.Sprintf("user%06d", i+1), "User"
		if (i+1)%10 == 0 {
			u.HotelingHost = true
		} else {
			u.CallCenter, u.PhoneNumber = true, fmt.Sprintf("+1777%07d", i+1)
		}
	}
	return launchSimulator(users, 0, 2, logger)
}

func launchSimulator(users []xspsim.User, desks, xsps int, logger *slog.Logger) (*xspsim.Server, error) {
	queue := max(4096, 8*len(users))
	sim := xspsim.New(xspsim.Config{
		Users: users, Username: xsiUser, Password: xsiPass,
		QueueSize: queue, BacklogSize: queue,
		RequestLogSize: -1, // a million requests of a storm are not kept
		UnavailableCodes: []xspsim.UnavailableCode{{Code: "LUNCH", Description: "Lunch", Active: true, Default: true},
			{Code: "MEETING", Description: "Meeting", Active: true}, {Code: "TRAINING", Description: "Training", Active: true}},
	}, logger.With("component", "xspsim"))
	if err := sim.Start(); err != nil {
		return nil, fmt.Errorf("bench: simulator: %w", err)
	}
	for range xsps - 1 {
		if _, err := sim.AddXSP(); err != nil {
			shutdownSim(sim)
			return nil, fmt.Errorf("bench: simulator's second XSP: %w", err)
		}
	}
	for i := 2; i <= desks; i += 2 {
		if err := sim.PortalSetCFA(deskUser(i), true, fmt.Sprintf(deskOwnNo, i)); err != nil {
			shutdownSim(sim)
			return nil, err
		}
	}
	return sim, nil
}

func shutdownSim(sim *xspsim.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim.Shutdown(ctx)
}

// connectorConfig is what the generated configuration holds.
type connectorConfig struct {
	Dir           string   // files: config, store
	Servers       []string // XSP base URLs
	Agents, Desks int      // directory: agents 1..Agents, desks 1..Desks
	// PerUserTargets is the layout before issue 15: a user target and a
	// directory entry for every agent and desk, no scope. Otherwise the
	// scope alone: users are read from the simulator on first reference.
	PerUserTargets bool
	Users          int // the start-up scenario's users 1..Users (plainUser): user targets with PerUserTargets
	MaxInFlight    int
	MaxConnections int
	Token          string
	ChannelSet     string // xsi.channel_set_id and application_id
	Timeout        time.Duration
	LogLevel       string
	StoreDSN       string // store.driver postgres with this DSN; "" bbolt in Dir
}

// writeConfig writes the connector's configuration: every listener on
// 127.0.0.1:0 (the addresses are read from its log), the XSI link to the
// bench's simulator (xsi.simulate false), the scope and nothing else about
// the users (or, with PerUserTargets, the directory of Agents agents and
// Desks hot desks with a user target for each), phones without digest
// authentication, and limits opened where the bench's load would hit a
// limit meant for one client (rate limits per source address, the XSI rate
// limit, timeouts shorter than a storm's queue). Everything else is the
// default an operator gets.
func writeConfig(c connectorConfig) (string, error) {
	var b strings.Builder
	q := func(s string) string { return `"` + s + `"` }
	list := func(n int, f func(i int) string) string {
		var l strings.Builder
		l.WriteString("[")
		for i := 1; i <= n; i++ {
			if i > 1 {
				l.WriteString(", ")
			}
			l.WriteString(q(f(i)))
		}
		l.WriteString("]")
		return l.String()
	}
	servers := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		servers[i] = q(s)
	}
	scopes, targets, devices, agents := "["+q(scope)+"]", "[]", "[]", "[]"
	if c.PerUserTargets {
		scopes = "[]"
		targets = list(c.Agents+c.Desks+c.Users, func(i int) string {
			switch {
			case i <= c.Agents:
				return "user:" + agentUser(i)
			case i <= c.Agents+c.Desks:
				return "user:" + deskUser(i-c.Agents)
			}
			return "user:" + plainUser(i-c.Agents-c.Desks)
		})
		devices = list(c.Desks, func(i int) string { return deskID(i) + "=" + deskUser(i) + ",hotdesk" })
		agents = list(c.Agents, func(i int) string { return agentID(i) + "=" + agentUser(i) + "," + agentID(i) })
	}
	to := c.Timeout.String()
	fmt.Fprintf(&b, `log:
  level: %s
csta:
  listen: 127.0.0.1:0
  limits:
    max_connections: %d
    max_connections_per_source: %d
    request_timeout: %s
admin:
  listen: 127.0.0.1:0
  token: %s
xsi:
  simulate: false
  servers: [%s]
  username: %s
  password: %s
  channel_set_id: %s
  application_id: %s
  request_timeout: %s
  max_in_flight: %d
  rate_limit: 1000000
  rate_burst: 1000000
  scope: %s
  targets: %s
directory:
  domain: %s
  devices: %s
  agents: %s
  reason_codes: ["1=LUNCH", "2=MEETING", "3=TRAINING"]
  default_unavailable_code: LUNCH
gateway:
  request_timeout: %s
hoteling:
  step_timeout: %s
  state_file: %s
sip:
  listen: 127.0.0.1:0
  auth:
    required: false
    phones: []
    agent_passwords: []
  limits:
    subscribe_rate: 1000000
    subscribe_burst: 1000000
journal:
  path: %s
store:
  path: %s
%s`, c.LogLevel, c.MaxConnections, c.MaxConnections, (c.Timeout + 5*time.Second).String(), q(c.Token),
		strings.Join(servers, ", "), xsiUser, q(xsiPass), c.ChannelSet, c.ChannelSet, to, c.MaxInFlight,
		scopes, targets, domain, devices, agents, to, to, filepath.Join(c.Dir, "hoteling.json"), filepath.Join(c.Dir, "journal.db"), filepath.Join(c.Dir, "connector.db"), storeDriver(c.StoreDSN))
	path := filepath.Join(c.Dir, "connector.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// storeDriver is the store section's driver lines: none (bbolt) without a
// DSN.
func storeDriver(dsn string) string {
	if dsn == "" {
		return ""
	}
	return "  driver: postgres\n  postgres:\n    dsn: \"" + dsn + "\"\n"
}
