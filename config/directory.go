package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
)

// Directory maps CSTA device and agent IDs to BroadWorks users. CSTA IDs are
// case-sensitive, so they live in string lists, never as map keys (viper
// lowercases keys).
type Directory struct {
	// Domain completes IDs without "@": "1001" → "1001@<Domain>".
	Domain string `mapstructure:"domain"`
	// Devices are "deviceID=userID" or "deviceID=userID,hotdesk" (a hoteling
	// host device where agents log on as guests).
	Devices []string `mapstructure:"devices"`
	// Agents are "agentID=userID" or "agentID=userID,number" (the agent's own
	// number, what a hot desk forwards to; default the agent ID).
	Agents []string `mapstructure:"agents"`
	// ReasonCodes are "reason=code": a CSTA not-ready reason and the
	// BroadWorks unavailable code it becomes.
	ReasonCodes []string `mapstructure:"reason_codes"`
	// DefaultUnavailableCode goes with notReady when the request names no
	// reason the table knows; empty sends none.
	DefaultUnavailableCode string `mapstructure:"default_unavailable_code"`
	// IdleTTL: a BroadWorks user nothing refers to (no monitor, phone,
	// association, request or repair) is dropped from memory this long
	// after its last use; 0 never.
	IdleTTL time.Duration `mapstructure:"idle_ttl"`
	// MaxConcurrentLoads bounds the users read from BroadWorks at once
	// (each read is 8 Actions GETs in parallel).
	MaxConcurrentLoads int `mapstructure:"max_concurrent_loads"`
}

// GatewaySettings configures the gateway between CSTA and BroadWorks.
type GatewaySettings struct {
	// RequestTimeout bounds the XSI work of one CSTA request; 0: only the
	// request's own deadline (csta.limits.request_timeout).
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// ConflictWindow: desktop and phone asking for contradicting agent
	// states within it resolve to Not Ready / Logout; 0: off.
	ConflictWindow time.Duration `mapstructure:"conflict_window"`
	// StaleLoginGrace: agents a vanished CTI connection left logged on are
	// logged off this long after; 0 off.
	StaleLoginGrace time.Duration `mapstructure:"stale_login_grace"`
}

// HotelingSettings configures the hot-desk login and logout sequences.
type HotelingSettings struct {
	StepTimeout        time.Duration `mapstructure:"step_timeout"`
	QueueLength        int           `mapstructure:"queue_length"` // 0: none may wait
	RefuseOccupiedHost bool          `mapstructure:"refuse_occupied_host"`
	RecoverMode        string        `mapstructure:"recover_mode"` // undo | complete
	// Admission refuses (resourceBusy) a login or logout the XSI capacity
	// cannot confirm in time, before its first step (hoteling/admission.go).
	Admission bool `mapstructure:"admission"`
	// StateFile is where connectors before the store remembered hosts' own
	// forwarding: a file there is migrated into store.path on first start
	// and renamed *.migrated. The store keeps it now.
	StateFile string `mapstructure:"state_file"`
}

const defaultDomain = "example.com"

// The demo directory: four agents with their own phones 4001..4004 and two
// hot desks, matching the simulator's seed.
func defaultDirectory() Directory {
	return Directory{
		Domain: defaultDomain,
		Devices: []string{
			"4001=agent1@example.com", "4002=agent2@example.com", "4003=agent3@example.com", "4004=agent4@example.com",
			"desk1=desk1@example.com,hotdesk", "desk2=desk2@example.com,hotdesk",
		},
		Agents: []string{
			"agent1=agent1@example.com,4001", "agent2=agent2@example.com,4002",
			"agent3=agent3@example.com,4003", "agent4=agent4@example.com,4004",
		},
		ReasonCodes:            []string{"1=LUNCH", "2=MEETING", "3=TRAINING"},
		DefaultUnavailableCode: "LUNCH",
		IdleTTL:                10 * time.Minute,
		MaxConcurrentLoads:     16,
	}
}

func defaultGateway() GatewaySettings {
	return GatewaySettings{RequestTimeout: 10 * time.Second, ConflictWindow: 2 * time.Second}
}

func defaultHoteling() HotelingSettings {
	return HotelingSettings{
		StepTimeout: 5 * time.Second,
		QueueLength: 4,
		RecoverMode: hoteling.RecoverUndo,
		Admission:   true,
		StateFile:   "connector-hoteling.json",
	}
}

// parseDevice reads "deviceID=userID" or "deviceID=userID,hotdesk".
func parseDevice(item string) (gateway.DeviceEntry, error) {
	id, user, flags, err := parseEntry(item, "deviceID=userID", "deviceID=userID,hotdesk")
	if err != nil {
		return gateway.DeviceEntry{}, err
	}
	e := gateway.DeviceEntry{DeviceID: id, UserID: user}
	switch flags {
	case "":
	case "hotdesk":
		e.HotDesk = true
	default:
		return gateway.DeviceEntry{}, fmt.Errorf(`item %q: the only flag after "," is hotdesk, got %q`, item, flags)
	}
	if err := checkUserID(item, user); err != nil {
		return gateway.DeviceEntry{}, err
	}
	return e, nil
}

// parseAgent reads "agentID=userID" or "agentID=userID,number".
func parseAgent(item string) (gateway.AgentEntry, error) {
	id, user, number, err := parseEntry(item, "agentID=userID", "agentID=userID,number")
	if err != nil {
		return gateway.AgentEntry{}, err
	}
	if err := checkUserID(item, user); err != nil {
		return gateway.AgentEntry{}, err
	}
	return gateway.AgentEntry{AgentID: id, UserID: user, Number: number}, nil
}

// parseReason reads "reason=code".
func parseReason(item string) (gateway.ReasonEntry, error) {
	reason, code, ok := strings.Cut(item, "=")
	if !ok || reason == "" || code == "" || strings.TrimSpace(item) != item || strings.ContainsAny(code, " \t=") {
		return gateway.ReasonEntry{}, fmt.Errorf(`item %q: must be "reason=code"`, item)
	}
	if n := len([]rune(code)); n > 10 {
		return gateway.ReasonEntry{}, fmt.Errorf(`item %q: code must be 1 to 10 characters, got %d`, item, n)
	}
	return gateway.ReasonEntry{Reason: reason, Code: code}, nil
}

// parseEntry splits "id=user" or "id=user,extra". ";" may stand for ","
// (an environment variable's list is comma-separated itself).
func parseEntry(item, form1, form2 string) (id, user, extra string, err error) {
	id, rest, ok := strings.Cut(item, "=")
	user, extra, hasExtra := strings.Cut(strings.Replace(rest, ";", ",", 1), ",")
	if !ok || id == "" || user == "" || (hasExtra && extra == "") ||
		strings.ContainsAny(id, " \t=,;") || strings.ContainsAny(user, " \t=") || strings.ContainsAny(extra, " \t=,;") {
		hint := ""
		if !ok {
			hint = ` (in CONNECTOR_* variables, write ";" for the "," inside an item)`
		}
		return "", "", "", fmt.Errorf(`item %q: must be "%s" or "%s"%s`, item, form1, form2, hint)
	}
	return id, user, extra, nil
}

func checkUserID(item, user string) error {
	if at := strings.IndexByte(user, '@'); at <= 0 || at == len(user)-1 || strings.ContainsAny(user, "/") {
		return fmt.Errorf(`item %q: the user must be a user ID "user@domain", got %q`, item, user)
	}
	return nil
}

func validateDirectory(ps *problems, d Directory, sim Simulator, simulate bool) {
	// Entries are checked against the simulator's users only when those are
	// valid themselves (else the simulator's own problems say it all).
	checkUsers := simulate && !ps.has("simulator.users")
	checkHosts := checkUsers && !ps.has("simulator.hoteling_hosts")
	checkAgents := checkUsers && !ps.has("simulator.call_center_agents")
	if strings.ContainsAny(d.Domain, "@ \t/") {
		ps.add("directory.domain", `must be a domain without "@", got %q`, d.Domain)
	}
	var ids []string
	for _, item := range d.Devices {
		e, err := parseDevice(item)
		if err != nil {
			ps.add("directory.devices", "%v", err)
			break
		}
		ids = append(ids, e.DeviceID)
		if checkUsers && !slices.Contains(sim.Users, e.UserID) {
			ps.add("directory.devices", "item %q: user %q is not in simulator.users (xsi.simulate is true)", item, e.UserID)
			break
		}
		if checkHosts && e.HotDesk && !slices.Contains(sim.HotelingHosts, e.UserID) {
			ps.add("directory.devices", "item %q: hot desk %q is not in simulator.hoteling_hosts (xsi.simulate is true)", item, e.UserID)
			break
		}
	}
	if dup := firstDuplicate(ids); dup != "" {
		ps.add("directory.devices", "device %q is listed twice", dup)
	}

	ids = nil
	for _, item := range d.Agents {
		e, err := parseAgent(item)
		if err != nil {
			ps.add("directory.agents", "%v", err)
			break
		}
		ids = append(ids, e.AgentID)
		if checkUsers && !slices.Contains(sim.Users, e.UserID) {
			ps.add("directory.agents", "item %q: user %q is not in simulator.users (xsi.simulate is true)", item, e.UserID)
			break
		}
		if checkAgents && !slices.Contains(sim.CallCenterAgents, e.UserID) {
			ps.add("directory.agents", "item %q: user %q is not in simulator.call_center_agents (xsi.simulate is true)", item, e.UserID)
			break
		}
	}
	if dup := firstDuplicate(ids); dup != "" {
		ps.add("directory.agents", "agent %q is listed twice", dup)
	}

	ids = nil
	for _, item := range d.ReasonCodes {
		e, err := parseReason(item)
		if err != nil {
			ps.add("directory.reason_codes", "%v", err)
			break
		}
		ids = append(ids, e.Reason)
	}
	if dup := firstDuplicate(ids); dup != "" {
		ps.add("directory.reason_codes", "reason %q is listed twice", dup)
	}

	if d.IdleTTL < 0 {
		ps.add("directory.idle_ttl", "must be 0 (never) or positive, got %s", formatDuration(d.IdleTTL))
	}
	between(ps, "directory.max_concurrent_loads", d.MaxConcurrentLoads, 1, 1000)
	if c := d.DefaultUnavailableCode; len([]rune(c)) > 10 || strings.ContainsAny(c, " \t") {
		ps.add("directory.default_unavailable_code", "must be empty or a code of 1 to 10 characters without spaces, got %q", c)
	}
}

func validateGatewayAndHoteling(ps *problems, g GatewaySettings, h HotelingSettings) {
	if g.RequestTimeout < 0 {
		ps.add("gateway.request_timeout", "must be 0 (no bound of its own) or positive, got %s", formatDuration(g.RequestTimeout))
	}
	validateConflictWindow(ps, g.ConflictWindow)
	if g.StaleLoginGrace < 0 {
		ps.add("gateway.stale_login_grace", "must be 0 (off) or positive, got %s", formatDuration(g.StaleLoginGrace))
	}
	positive(ps, "hoteling.step_timeout", h.StepTimeout)
	between(ps, "hoteling.queue_length", h.QueueLength, 0, 1000)
	oneOf(ps, "hoteling.recover_mode", h.RecoverMode, hoteling.RecoverUndo, hoteling.RecoverComplete)
	stateFileDirectory(ps, "hoteling.state_file", h.StateFile)
}

// Gateway converts the configuration to the gateway's. It expects a
// validated Config (invalid entries are left out).
func (c *Config) Gateway() gateway.Config {
	d := c.Directory
	out := gateway.Config{
		Domain:                 d.Domain,
		DefaultUnavailableCode: d.DefaultUnavailableCode,
		RequestTimeout:         c.GatewayCore.RequestTimeout,
		EventPackages:          slices.Clone(c.XSILink.EventPackages),
		ConflictWindow:         c.GatewayCore.ConflictWindow,
		StaleLoginGrace:        c.GatewayCore.StaleLoginGrace,
		AgentPasswords:         c.agentPasswords(),
		LoadUsers:              true, // BroadWorks is the directory
		IdleTTL:                d.IdleTTL,
		MaxUserLoads:           d.MaxConcurrentLoads,
	}
	out.Devices = parseItems(d.Devices, parseDevice)
	out.Agents = parseItems(d.Agents, parseAgent)
	out.ReasonCodes = parseItems(d.ReasonCodes, parseReason)
	return out
}

// parseItems converts the entries of a validated list key; validation has
// already reported the ones that do not parse, so they are skipped here.
func parseItems[T any](items []string, parse func(string) (T, error)) []T {
	var out []T
	for _, item := range items {
		if v, err := parse(item); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// Hoteling converts the configuration to the hot-desk sequencer's, with
// NumberOf from the
// directory (an agent entry's number, else its agent ID; for a user of
// directory.domain without an entry, the user part).
func (c *Config) Hoteling() hoteling.Config {
	h := c.HotDesks
	out := hoteling.Config{
		StepTimeout:        h.StepTimeout,
		QueueLength:        h.QueueLength,
		RefuseOccupiedHost: h.RefuseOccupiedHost,
		DisableAdmission:   !h.Admission,
	}
	if out.QueueLength == 0 {
		out.QueueLength = -1 // hoteling: 0 is "default", negative "none may wait"
	}
	// Store: the caller gives the store's (store.path), which holds what
	// hoteling.state_file held before.
	out.NumberOf = gateway.NewDirectory(c.Gateway()).NumberOf
	return out
}

// StartUpUsers are the users read from BroadWorks at start, before the
// start-up recovery settles: every hot-desk host and every agent of the
// directory, each once, in configuration order (the view, the dashboard
// and the first requests know them from the start).
func (c *Config) StartUpUsers() []string {
	g := c.Gateway()
	var out []string
	seen := make(map[string]bool, len(g.Devices)+len(g.Agents))
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, d := range g.Devices {
		if d.HotDesk {
			add(d.UserID)
		}
	}
	for _, a := range g.Agents {
		add(a.UserID)
	}
	return out
}
