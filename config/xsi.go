package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// XSI configures the link to BroadWorks: the Xsi-Actions client and the
// Xsi-Events channel set (one streaming channel per server). After Load,
// Password holds the secret whether it came inline or from PasswordFile.
type XSI struct {
	// Simulate starts the embedded XSP simulator (section simulator) and
	// points the link at it instead of Servers.
	Simulate        bool     `mapstructure:"simulate"`
	Servers         []string `mapstructure:"servers"`
	Username        string   `mapstructure:"username"`
	Password        string   `mapstructure:"password"`
	PasswordFile    string   `mapstructure:"password_file"`
	ChannelSetID    string   `mapstructure:"channel_set_id"`
	ApplicationID   string   `mapstructure:"application_id"`
	ProtocolVersion string   `mapstructure:"protocol_version"`

	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	MaxInFlight    int           `mapstructure:"max_in_flight"`
	RateLimit      int           `mapstructure:"rate_limit"` // requests per second per XSP
	RateBurst      int           `mapstructure:"rate_burst"`
	MaxRetries     int           `mapstructure:"max_retries"`

	HeartbeatInterval   time.Duration `mapstructure:"heartbeat_interval"`
	ChannelExpires      time.Duration `mapstructure:"channel_expires"`
	SubscriptionExpires time.Duration `mapstructure:"subscription_expires"`
	ReconnectMin        time.Duration `mapstructure:"reconnect_min"`
	ReconnectMax        time.Duration `mapstructure:"reconnect_max"`

	// Scope lists "group:<groupId>@<enterpriseId>", "enterprise:<enterpriseId>"
	// and "serviceprovider:<serviceProviderId>": one subscription each, with
	// an event package list, for every user in it.
	Scope []string `mapstructure:"scope"`
	// Targets are "user:<userId>", "group:<groupId>@<enterpriseId>" or
	// "enterprise:<enterpriseId>"; each is subscribed to every EventPackages
	// (for user-scoped credentials and users outside every scope).
	Targets       []string `mapstructure:"targets"`
	EventPackages []string `mapstructure:"event_packages"`
	// MaxWatchedUsers bounds the users outside every scope subscribed on
	// their own at run time (xsi.Events.WatchUser).
	MaxWatchedUsers int `mapstructure:"max_watched_users"`
}

// Simulator configures the embedded BroadWorks XSP simulator (xsi.simulate,
// and the xspsim command). Every user is in GroupID of EnterpriseID.
type Simulator struct {
	Listen           string        `mapstructure:"listen"` // loopback only
	Users            []string      `mapstructure:"users"`
	HotelingHosts    []string      `mapstructure:"hoteling_hosts"`     // a subset of Users
	CallCenterAgents []string      `mapstructure:"call_center_agents"` // a subset of Users
	SignedInAgents   []string      `mapstructure:"signed_in_agents"`   // a subset of CallCenterAgents; they start Available
	EnterpriseID     string        `mapstructure:"enterprise_id"`
	GroupID          string        `mapstructure:"group_id"`
	UnavailableCodes []string      `mapstructure:"unavailable_codes"` // "code:description"; the first is the group default
	EventAckTimeout  time.Duration `mapstructure:"event_ack_timeout"` // 0 = never
}

// EventPackages are the Xsi-Events packages the connector understands.
var EventPackages = []string{
	"Call Center Agent",
	"Call Forwarding Always",
	"Call Forwarding Busy",
	"Call Forwarding No Answer",
	"Do Not Disturb",
	"Hoteling Guest",
}

// The simulator's example directory and the XSI defaults that match it.
const (
	defaultSimulatorListen = "127.0.0.1:8090"
	defaultEnterpriseID    = "ent1"
	defaultGroupID         = "grp1"
)

func defaultXSI() XSI {
	d := xsi.DefaultConfig()
	return XSI{
		Simulate:            true,
		Servers:             []string{"http://" + defaultSimulatorListen},
		Username:            "connector@example.com",
		ChannelSetID:        d.ChannelSetID,
		ApplicationID:       d.ApplicationID,
		ProtocolVersion:     d.ProtocolVersion,
		RequestTimeout:      d.RequestTimeout,
		MaxInFlight:         d.MaxInFlight,
		RateLimit:           int(d.RateLimit),
		RateBurst:           d.RateBurst,
		MaxRetries:          d.MaxRetries,
		HeartbeatInterval:   d.HeartbeatInterval,
		ChannelExpires:      d.ChannelExpires,
		SubscriptionExpires: d.SubscriptionExpires,
		ReconnectMin:        d.ReconnectMin,
		ReconnectMax:        d.ReconnectMax,
		// The simulator's one group.
		Scope: []string{"group:" + defaultGroupID + "@" + defaultEnterpriseID},
		// No user targets: the scope's users are read from BroadWorks on
		// first reference (the gateway's snapshot).
		Targets:         []string{},
		EventPackages:   slices.Clone(d.EventPackages),
		MaxWatchedUsers: d.MaxWatchedUsers,
	}
}

func defaultSimulator() Simulator {
	return Simulator{
		Listen: defaultSimulatorListen,
		Users: []string{
			"agent1@example.com", "agent2@example.com", "agent3@example.com", "agent4@example.com",
			"desk1@example.com", "desk2@example.com",
		},
		HotelingHosts: []string{"desk1@example.com", "desk2@example.com"},
		CallCenterAgents: []string{
			"agent1@example.com", "agent2@example.com", "agent3@example.com", "agent4@example.com",
		},
		SignedInAgents:   []string{},
		EnterpriseID:     defaultEnterpriseID,
		GroupID:          defaultGroupID,
		UnavailableCodes: []string{"LUNCH:Lunch", "MEETING:Meeting", "TRAINING:Training"},
		EventAckTimeout:  30 * time.Second,
	}
}

// XSI converts the configuration to the XSI link's. It expects a validated
// Config. With xsi.simulate the servers are still xsi.servers: the caller
// replaces them with the started simulator's URL (simulator.listen may be
// port 0).
func (c *Config) XSI() xsi.Config {
	x := c.XSILink
	out := xsi.Config{
		Servers:             slices.Clone(x.Servers),
		Username:            x.Username,
		Password:            x.Password,
		ChannelSetID:        x.ChannelSetID,
		ApplicationID:       x.ApplicationID,
		ProtocolVersion:     x.ProtocolVersion,
		RequestTimeout:      x.RequestTimeout,
		MaxInFlight:         x.MaxInFlight,
		RateLimit:           float64(x.RateLimit),
		RateBurst:           x.RateBurst,
		MaxRetries:          x.MaxRetries,
		HeartbeatInterval:   x.HeartbeatInterval,
		ChannelExpires:      x.ChannelExpires,
		SubscriptionExpires: x.SubscriptionExpires,
		ReconnectMin:        x.ReconnectMin,
		ReconnectMax:        x.ReconnectMax,
		EventPackages:       slices.Clone(x.EventPackages),
		MaxWatchedUsers:     x.MaxWatchedUsers,
	}
	out.Targets = parseItems(x.Targets, parseTarget)
	out.Scopes = parseItems(x.Scope, parseScope)
	return out
}

// Simulator converts the configuration to the XSP simulator's. Its HTTP
// Basic credential is xsi.username / xsi.password, so the embedded pair
// works out of the box.
func (c *Config) Simulator() xspsim.Config {
	s := c.XSPSimulator
	out := xspsim.Config{
		Listen:          s.Listen,
		EnterpriseID:    s.EnterpriseID,
		GroupID:         s.GroupID,
		Username:        c.XSILink.Username,
		Password:        c.XSILink.Password,
		EventAckTimeout: s.EventAckTimeout,
	}
	agents, hosts, signedIn := setOf(s.CallCenterAgents), setOf(s.HotelingHosts), setOf(s.SignedInAgents)
	out.Users = make([]xspsim.User, 0, len(s.Users))
	for _, id := range s.Users {
		u := xspsim.User{
			ID:           id,
			FirstName:    firstName(id),
			LastName:     "Example",
			CallCenter:   agents[id],
			HotelingHost: hosts[id],
		}
		if signedIn[id] {
			u.ACDState = xspsim.StateAvailable
		}
		out.Users = append(out.Users, u)
	}
	for i, item := range s.UnavailableCodes {
		code, description, _ := strings.Cut(item, ":")
		out.UnavailableCodes = append(out.UnavailableCodes, xspsim.UnavailableCode{
			Code: code, Description: description, Active: true, Default: i == 0,
		})
	}
	return out
}

func userPart(id string) string {
	user, _, _ := strings.Cut(id, "@")
	return user
}

// firstName is the simulator's first name of user id: its user part, cut
// to the 30 characters BroadWorks allows (XSD FirstName).
func firstName(id string) string {
	name := []rune(userPart(id))
	return string(name[:min(len(name), 30)])
}

// setOf makes list a set: users lists may hold 100,000 IDs.
func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, id := range list {
		m[id] = true
	}
	return m
}

// parseTarget reads "user:<id>", "group:<groupId>@<enterpriseId>" or
// "enterprise:<id>".
func parseTarget(item string) (xsi.Target, error) {
	kind, id, ok := strings.Cut(item, ":")
	if !ok || id == "" || strings.TrimSpace(id) != id {
		return xsi.Target{}, fmt.Errorf(`must be "user:<userId>", "group:<groupId>@<enterpriseId>" or "enterprise:<enterpriseId>", got %q`, item)
	}
	switch kind {
	case "user", "enterprise":
		return xsi.Target{Kind: kind, ID: id}, nil
	case "group":
		at := strings.LastIndexByte(id, '@')
		if at <= 0 || at == len(id)-1 {
			return xsi.Target{}, fmt.Errorf(`%q: a group target must be "group:<groupId>@<enterpriseId>"`, item)
		}
		return xsi.Target{Kind: kind, ID: id[:at], ParentID: id[at+1:]}, nil
	}
	return xsi.Target{}, fmt.Errorf(`%q: kind must be user, group or enterprise, got %q`, item, kind)
}

// scopeForms is what an xsi.scope item may be.
const scopeForms = `"group:<groupId>@<enterpriseId>", "enterprise:<enterpriseId>" or "serviceprovider:<serviceProviderId>"`

// parseScope reads "group:<groupId>@<enterpriseId>", "enterprise:<id>" or
// "serviceprovider:<id>".
func parseScope(item string) (xsi.Target, error) {
	bad := fmt.Errorf("%q must be %s", item, scopeForms)
	kind, id, ok := strings.Cut(item, ":")
	if !ok || id == "" || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) {
		return xsi.Target{}, bad
	}
	switch kind {
	case xsi.KindEnterprise, xsi.KindServiceProvider:
		if strings.Contains(id, "@") {
			return xsi.Target{}, bad
		}
		return xsi.Target{Kind: kind, ID: id}, nil
	case xsi.KindGroup:
		at := strings.LastIndexByte(id, '@')
		if at <= 0 || at == len(id)-1 {
			return xsi.Target{}, bad
		}
		return xsi.Target{Kind: kind, ID: id[:at], ParentID: id[at+1:]}, nil
	}
	return xsi.Target{}, bad
}

// enterpriseOf is the enterprise (service provider) a scope lies in;
// enterprise:X and serviceprovider:X are the same one.
func enterpriseOf(t xsi.Target) string {
	if t.Kind == xsi.KindGroup {
		return t.ParentID
	}
	return t.ID
}

// scopesOverlap reports whether the users of b are (some of) those of a:
// the same scope, or a group inside an enterprise (service provider) also
// listed. Their events would arrive twice.
func scopesOverlap(a, b xsi.Target) bool {
	if a.Kind == xsi.KindGroup && b.Kind == xsi.KindGroup {
		return a == b
	}
	return enterpriseOf(a) == enterpriseOf(b)
}

func validateScope(ps *problems, items []string) {
	var scopes []xsi.Target
	for i, item := range items {
		key := fmt.Sprintf("xsi.scope[%d]", i)
		t, err := parseScope(item)
		if err != nil {
			ps.add(key, "%v", err)
			return // one malformed item is enough to go on with
		}
		for j, o := range scopes {
			if !scopesOverlap(o, t) {
				continue
			}
			if item == items[j] {
				ps.add(key, "%q is listed twice (also xsi.scope[%d])", item, j)
			} else {
				ps.add(key, "%q overlaps xsi.scope[%d] %q (the same users: their events would arrive twice)", item, j, items[j])
			}
			return
		}
		scopes = append(scopes, t)
	}
}

var protocolVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

func validateXSI(ps *problems, x XSI) {
	if len(x.Servers) == 0 && !x.Simulate {
		ps.add("xsi.servers", "at least one server is required when xsi.simulate is false")
	}
	for i, s := range x.Servers {
		if err := checkServerURL(s); err != nil {
			ps.add("xsi.servers", "item %d %q: %v", i, s, err)
			break
		}
	}
	if d := firstDuplicate(x.Servers); d != "" {
		ps.add("xsi.servers", "%q is listed twice", d)
	}
	if x.Username == "" {
		ps.add("xsi.username", "required")
	}
	if x.Password == "" && !x.Simulate && !ps.has("xsi.password_file") {
		ps.add("xsi.password", "required when xsi.simulate is false (or set xsi.password_file)")
	}
	if x.ChannelSetID == "" {
		ps.add("xsi.channel_set_id", "required")
	}
	if x.ApplicationID == "" {
		ps.add("xsi.application_id", "required")
	}
	if x.ProtocolVersion != "" && !protocolVersion.MatchString(x.ProtocolVersion) {
		ps.add("xsi.protocol_version", `must be empty or a version like "22.0", got %q`, x.ProtocolVersion)
	}

	positive(ps, "xsi.request_timeout", x.RequestTimeout)
	between(ps, "xsi.max_in_flight", x.MaxInFlight, 1, math.MaxInt)
	between(ps, "xsi.rate_limit", x.RateLimit, 1, math.MaxInt)
	between(ps, "xsi.rate_burst", x.RateBurst, 1, math.MaxInt)
	between(ps, "xsi.max_retries", x.MaxRetries, 0, 10)

	positive(ps, "xsi.heartbeat_interval", x.HeartbeatInterval)
	positive(ps, "xsi.channel_expires", x.ChannelExpires)
	positive(ps, "xsi.subscription_expires", x.SubscriptionExpires)
	positive(ps, "xsi.reconnect_min", x.ReconnectMin)
	positive(ps, "xsi.reconnect_max", x.ReconnectMax)
	if !ps.has("xsi.reconnect_min") && !ps.has("xsi.reconnect_max") && x.ReconnectMin > x.ReconnectMax {
		ps.add("xsi.reconnect_max", "must be at least xsi.reconnect_min (%s), got %s",
			formatDuration(x.ReconnectMin), formatDuration(x.ReconnectMax))
	}

	validateScope(ps, x.Scope)
	for _, item := range x.Targets {
		if _, err := parseTarget(item); err != nil {
			ps.add("xsi.targets", "%v", err)
			break
		}
	}
	if d := firstDuplicate(x.Targets); d != "" {
		ps.add("xsi.targets", "%q is listed twice", d)
	}
	for _, p := range x.EventPackages {
		if !slices.Contains(EventPackages, p) {
			ps.add("xsi.event_packages", "unknown package %q; known: %s", p, strings.Join(EventPackages, ", "))
			break
		}
	}
	if d := firstDuplicate(x.EventPackages); d != "" {
		ps.add("xsi.event_packages", "%q is listed twice", d)
	}
	if (len(x.Targets) > 0 || len(x.Scope) > 0) && len(x.EventPackages) == 0 {
		ps.add("xsi.event_packages", "at least one package is required when xsi.targets or xsi.scope is set")
	}
	between(ps, "xsi.max_watched_users", x.MaxWatchedUsers, 1, 1_000_000)
}

func checkServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("must name a host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must be a base URL without user, query or fragment")
	}
	return nil
}

var unavailableCode = regexp.MustCompile(`^[^:\s]{1,10}:\S.*$`)

// validateSimulator checks the simulator; with xsi.simulate it must not
// share a fixed address with the other listeners (pairs of key, address).
func validateSimulator(ps *problems, s Simulator, x XSI, others [][2]string) {
	listenAddress(ps, "simulator.listen", s.Listen)
	if !ps.has("simulator.listen") {
		host, _, _ := net.SplitHostPort(s.Listen)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			ps.add("simulator.listen", "must be a loopback address (127.0.0.1, ::1 or localhost), got %q", s.Listen)
		}
	}
	if x.Simulate && !ps.has("simulator.listen") {
		for _, other := range others {
			key, addr := other[0], other[1]
			if !ps.has(key) && sameFixedAddress(s.Listen, addr) {
				ps.add("simulator.listen", "must differ from %s, both are %q", key, addr)
				break
			}
		}
	}

	if len(s.Users) == 0 {
		ps.add("simulator.users", "at least one user is required")
	}
	for _, id := range s.Users {
		if at := strings.IndexByte(id, '@'); at <= 0 || at == len(id)-1 || strings.ContainsAny(id, " \t/") {
			ps.add("simulator.users", `item %q: must be a user ID "user@domain"`, id)
			break
		}
	}
	if d := firstDuplicate(s.Users); d != "" {
		ps.add("simulator.users", "%q is listed twice", d)
	}
	users := setOf(s.Users)
	subset(ps, "simulator.hoteling_hosts", s.HotelingHosts, users, "simulator.users")
	subset(ps, "simulator.call_center_agents", s.CallCenterAgents, users, "simulator.users")
	subset(ps, "simulator.signed_in_agents", s.SignedInAgents, setOf(s.CallCenterAgents), "simulator.call_center_agents")
	if s.EnterpriseID == "" {
		ps.add("simulator.enterprise_id", "required")
	}
	if s.GroupID == "" {
		ps.add("simulator.group_id", "required")
	}
	var codes []string
	for _, item := range s.UnavailableCodes {
		if !unavailableCode.MatchString(item) {
			ps.add("simulator.unavailable_codes", `item %q: must be "code:description" with a code of 1 to 10 characters`, item)
			break
		}
		code, _, _ := strings.Cut(item, ":")
		codes = append(codes, code)
	}
	if d := firstDuplicate(codes); d != "" {
		ps.add("simulator.unavailable_codes", "code %q is listed twice", d)
	}
	if s.EventAckTimeout < 0 {
		ps.add("simulator.event_ack_timeout", "must be 0 (never) or positive, got %s", formatDuration(s.EventAckTimeout))
	}
}

// subset reports the first item of list that is not in the set of key
// setKey.
func subset(ps *problems, key string, list []string, set map[string]bool, setKey string) {
	for _, id := range list {
		if !set[id] {
			ps.add(key, "item %q is not in %s", id, setKey)
			return
		}
	}
	if d := firstDuplicate(list); d != "" {
		ps.add(key, "%q is listed twice", d)
	}
}

func firstDuplicate(list []string) string {
	seen := make(map[string]bool, len(list))
	for _, item := range list {
		if seen[item] {
			return item
		}
		seen[item] = true
	}
	return ""
}
