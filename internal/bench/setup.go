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
// one domain; an agent's forward-to number is its agent ID.
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

// startSimulator seeds the XSP simulator with agents and desks (every desk
// a hoteling host; even desks with their own CFA, which a login must
// remember and a logout restore) and starts two XSPs sharing its state.
func startSimulator(agents, desks int, logger *slog.Logger) (*xspsim.Server, error) {
	users := make([]xspsim.User, 0, agents+desks)
	for i := 1; i <= agents; i++ {
		users = append(users, xspsim.User{ID: agentUser(i), FirstName: agentID(i), LastName: "Agent", CallCenter: true})
	}
	for i := 1; i <= desks; i++ {
		users = append(users, xspsim.User{ID: deskUser(i), FirstName: deskID(i), LastName: "Desk", HotelingHost: true, CallCenter: true})
	}
	queue := max(4096, 8*len(users))
	sim := xspsim.New(xspsim.Config{
		Users: users, Username: xsiUser, Password: xsiPass,
		QueueSize: queue, BacklogSize: queue,
		UnavailableCodes: []xspsim.UnavailableCode{{Code: "LUNCH", Description: "Lunch", Active: true, Default: true},
			{Code: "MEETING", Description: "Meeting", Active: true}, {Code: "TRAINING", Description: "Training", Active: true}},
	}, logger.With("component", "xspsim"))
	if err := sim.Start(); err != nil {
		return nil, fmt.Errorf("bench: simulator: %w", err)
	}
	if _, err := sim.AddXSP(); err != nil {
		shutdownSim(sim)
		return nil, fmt.Errorf("bench: simulator's second XSP: %w", err)
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
	Dir            string   // files: config, journal, hoteling state
	Servers        []string // XSP base URLs
	Agents, Desks  int      // directory: agents 1..Agents, desks 1..Desks
	MaxInFlight    int
	MaxConnections int
	Token          string
	ChannelSet     string // xsi.channel_set_id and application_id
	Timeout        time.Duration
	LogLevel       string
}

// writeConfig writes the connector's configuration: every listener on
// 127.0.0.1:0 (the addresses are read from its log), the XSI link to the
// bench's simulator (xsi.simulate false), the directory of Agents agents
// and Desks hot desks with a user target for each, phones without digest
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
	var targets strings.Builder
	targets.WriteString("[")
	for i := 1; i <= c.Agents; i++ {
		if i > 1 {
			targets.WriteString(", ")
		}
		targets.WriteString(q("user:" + agentUser(i)))
	}
	for i := 1; i <= c.Desks; i++ {
		targets.WriteString(", " + q("user:"+deskUser(i)))
	}
	targets.WriteString("]")
	to := c.Timeout.String()
	fmt.Fprintf(&b, `log:
  level: %s
csta:
  listen: 127.0.0.1:0
  limits:
    max_connections: %d
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
`, c.LogLevel, c.MaxConnections, (c.Timeout + 5*time.Second).String(), q(c.Token),
		strings.Join(servers, ", "), xsiUser, q(xsiPass), c.ChannelSet, c.ChannelSet, to, c.MaxInFlight,
		targets.String(), domain,
		list(c.Desks, func(i int) string { return deskID(i) + "=" + deskUser(i) + ",hotdesk" }),
		list(c.Agents, func(i int) string { return agentID(i) + "=" + agentUser(i) + "," + agentID(i) }),
		to, to, filepath.Join(c.Dir, "hoteling.json"), filepath.Join(c.Dir, "journal.db"))
	path := filepath.Join(c.Dir, "connector.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
