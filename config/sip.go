package config

import (
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/phonesync"
)

// SIP configures phone synchronization (phonesync): phones SUBSCRIBE to
// as-feature-event and x-broadworks-hoteling on Listen, and optionally the
// connector SUBSCRIBEs to a PBX's presence. Every sip.* key needs a restart:
// the phonesync server is built once and has no way to take new settings
// while it runs.
type SIP struct {
	// Listen is UDP and TCP on one address; "" switches phone sync off.
	Listen string  `mapstructure:"listen"`
	TLS    SIPTLS  `mapstructure:"tls"`
	Auth   SIPAuth `mapstructure:"auth"`

	Subscription SIPSubscription `mapstructure:"subscription"`
	Limits       SIPLimits       `mapstructure:"limits"`

	NotifyPerFeature bool `mapstructure:"notify_per_feature"`
	AgentState       bool `mapstructure:"agent_state"`

	Liveness SIPLiveness `mapstructure:"liveness"`
	// PersistDialogs keeps UDP subscription dialogs across restarts, in the
	// store (store.path).
	PersistDialogs bool `mapstructure:"persist_dialogs"`
	// StateFile is where connectors before the store kept the dialogs: a
	// file there is migrated into the store on first start; set, it also
	// turns PersistDialogs on, as it did.
	StateFile      string        `mapstructure:"state_file"`
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	Presence       SIPPresence   `mapstructure:"presence"`
}

// SIPTLS is SIP over TLS: all three keys or none.
type SIPTLS struct {
	Listen   string `mapstructure:"listen"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// SIPAuth is the digest authentication of phones and the agents' passwords
// for logins from a phone. User names and agent IDs are case-sensitive, so
// the pairs live in string lists, never as map keys (viper lowercases keys).
type SIPAuth struct {
	Realm    string `mapstructure:"realm"`
	Required bool   `mapstructure:"required"`
	// Phones are "user=password": a digest user name and its password.
	Phones []string `mapstructure:"phones"`
	// AgentPasswords are "agentID=password": what an x-broadworks-hoteling
	// login from a phone must prove (MD5(nonce:password)).
	AgentPasswords []string `mapstructure:"agent_passwords"`
}

// SIPSubscription bounds the subscription lifetimes granted to phones.
type SIPSubscription struct {
	MinExpires     time.Duration `mapstructure:"min_expires"`
	MaxExpires     time.Duration `mapstructure:"max_expires"`
	DefaultExpires time.Duration `mapstructure:"default_expires"`
}

// SIPLimits bound what phones may consume.
type SIPLimits struct {
	MaxSubscriptions int `mapstructure:"max_subscriptions"`
	// Devices subscribed to one line for one event package.
	MaxSubscriptionsPerLine int     `mapstructure:"max_subscriptions_per_line"`
	SubscribeRate           float64 `mapstructure:"subscribe_rate"` // per second per source address
	SubscribeBurst          int     `mapstructure:"subscribe_burst"`
	MaxBodyBytes            int     `mapstructure:"max_body_bytes"`
	// SIP over TCP and TLS together: connections open at once, from one IP
	// address, and the time without a byte read that closes one.
	TCPMaxConnections          int           `mapstructure:"tcp_max_connections"`
	TCPMaxConnectionsPerSource int           `mapstructure:"tcp_max_connections_per_source"`
	TCPIdleTimeout             time.Duration `mapstructure:"tcp_idle_timeout"`
}

// SIPLiveness is how a silent phone is noticed.
type SIPLiveness struct {
	OptionsInterval time.Duration `mapstructure:"options_interval"` // 0: no OPTIONS pings
	Timeout         time.Duration `mapstructure:"timeout"`
}

// SIPPresence subscribes to a PBX's presence for DNs; PBX "" is off.
type SIPPresence struct {
	PBX     string        `mapstructure:"pbx"`
	DNs     []string      `mapstructure:"dns"`
	Expires time.Duration `mapstructure:"expires"`
}

// sip.max_body_bytes bounds: a body below 1 KiB cannot hold a multipart
// as-feature-event document; 1 MiB is far beyond any phone's.
const (
	minSIPBodyBytes = 1 << 10
	maxSIPBodyBytes = 1 << 20
)

// maxSubscriptionsPerLine bounds sip.limits.max_subscriptions_per_line: a
// change to a line is one NOTIFY per device, so a line is no broadcast
// medium.
const maxSubscriptionsPerLine = 1000

// defaultSIP is phonesync.DefaultConfig() plus the demo credentials: the
// demo's phones 4001..4004 and hot desks, and agents agent1..agent4 (see
// defaultDirectory), each with an obvious password.
func defaultSIP() SIP {
	d := phonesync.DefaultConfig()
	return SIP{
		Listen: d.Listen,
		TLS:    SIPTLS{Listen: d.TLSListen, CertFile: d.TLSCertFile, KeyFile: d.TLSKeyFile},
		Auth: SIPAuth{
			Realm:    d.Realm,
			Required: d.RequireAuth,
			Phones: []string{
				"4001=phone4001", "4002=phone4002", "4003=phone4003", "4004=phone4004",
				"desk1=phonedesk1", "desk2=phonedesk2",
			},
			AgentPasswords: []string{"agent1=agent1pw", "agent2=agent2pw", "agent3=agent3pw", "agent4=agent4pw"},
		},
		Subscription: SIPSubscription{MinExpires: d.MinExpires, MaxExpires: d.MaxExpires, DefaultExpires: d.DefaultExpires},
		Limits: SIPLimits{
			MaxSubscriptions: d.MaxSubscriptions,
			SubscribeRate:    d.SubscribeRate,

			MaxSubscriptionsPerLine: d.MaxSubscriptionsPerLine,
			SubscribeBurst:          d.SubscribeBurst,
			MaxBodyBytes:            d.MaxBodyBytes,

			TCPMaxConnections:          d.TCPMaxConnections,
			TCPMaxConnectionsPerSource: d.TCPMaxConnectionsPerSource,
			TCPIdleTimeout:             d.TCPIdleTimeout,
		},
		NotifyPerFeature: d.NotifyPerFeature,
		AgentState:       d.AgentState,
		Liveness:         SIPLiveness{OptionsInterval: d.OptionsInterval, Timeout: d.LivenessTimeout},
		StateFile:        d.StateFile,
		RequestTimeout:   d.RequestTimeout,
		// An empty list, not nil: what "dns: []" in a file loads to.
		Presence: SIPPresence{PBX: d.Presence.PBX, DNs: []string{}, Expires: d.Presence.Expires},
	}
}

// PhoneSync converts the configuration to phonesync's. It expects a
// validated Config (invalid credential items are left out). Listen "" means
// phone sync is off; the caller does not start the server then.
func (c *Config) PhoneSync() phonesync.Config {
	s := c.SIP
	out := phonesync.Config{
		Listen:           s.Listen,
		TLSListen:        s.TLS.Listen,
		TLSCertFile:      s.TLS.CertFile,
		TLSKeyFile:       s.TLS.KeyFile,
		Realm:            s.Auth.Realm,
		RequireAuth:      s.Auth.Required,
		MinExpires:       s.Subscription.MinExpires,
		MaxExpires:       s.Subscription.MaxExpires,
		DefaultExpires:   s.Subscription.DefaultExpires,
		MaxSubscriptions: s.Limits.MaxSubscriptions,
		SubscribeRate:    s.Limits.SubscribeRate,

		MaxSubscriptionsPerLine: s.Limits.MaxSubscriptionsPerLine,
		SubscribeBurst:          s.Limits.SubscribeBurst,
		MaxBodyBytes:            s.Limits.MaxBodyBytes,

		TCPMaxConnections:          s.Limits.TCPMaxConnections,
		TCPMaxConnectionsPerSource: s.Limits.TCPMaxConnectionsPerSource,
		TCPIdleTimeout:             s.Limits.TCPIdleTimeout,
		NotifyPerFeature:           s.NotifyPerFeature,
		AgentState:                 s.AgentState,
		OptionsInterval:            s.Liveness.OptionsInterval,
		LivenessTimeout:            s.Liveness.Timeout,
		// StateFile stays empty: the dialogs are kept in the store
		// (PersistSIPDialogs), sip.state_file is only migrated into it.
		RequestTimeout: s.RequestTimeout,
		Presence:       phonesync.PresenceConfig{PBX: s.Presence.PBX, Expires: s.Presence.Expires},
	}
	if len(s.Presence.DNs) > 0 {
		out.Presence.DNs = slices.Clone(s.Presence.DNs)
	}
	for _, item := range s.Auth.Phones {
		if user, password, err := parseSecretPair(item); err == nil {
			if out.Credentials == nil {
				out.Credentials = make(map[string]string, len(s.Auth.Phones))
			}
			out.Credentials[user] = password
		}
	}
	return out
}

// agentPasswords converts sip.auth.agent_passwords for Gateway().
func (c *Config) agentPasswords() []gateway.AgentPassword {
	var out []gateway.AgentPassword
	for _, item := range c.SIP.Auth.AgentPasswords {
		if id, password, err := parseSecretPair(item); err == nil {
			out = append(out, gateway.AgentPassword{AgentID: id, Password: password})
		}
	}
	return out
}

// errSecretPair never quotes the item: the part after "=" is a password,
// and problems are printed and logged.
var errSecretPair = errors.New(`must be "name=password"`)

// parseSecretPair reads "name=password" (sip.auth.phones,
// sip.auth.agent_passwords). The name is what a phone sends, so it has no
// blanks, quotes or commas; the password is everything after the first "=".
func parseSecretPair(item string) (name, password string, err error) {
	name, password, ok := strings.Cut(item, "=")
	if !ok || name == "" || password == "" || strings.ContainsAny(name, " \t\r\n\",") {
		return "", "", errSecretPair
	}
	return name, password, nil
}

// maskPairs returns a new list with each password replaced by MaskedSecret,
// so the printed configuration still loads.
func maskPairs(items []string) []string {
	if items == nil {
		return nil
	}
	out := make([]string, len(items))
	for i, item := range items {
		name, _, ok := strings.Cut(item, "=")
		if !ok {
			name = ""
		}
		out[i] = name + "=" + MaskedSecret
	}
	return out
}

// validateSIP checks sip.*; the other listeners and the directory are
// needed for address clashes and agent IDs.
func validateSIP(ps *problems, c *Config) {
	s := c.SIP
	if s.Listen != "" {
		listenAddress(ps, "sip.listen", s.Listen)
	}
	validateSIPTLS(ps, s)
	others := [][2]string{{"csta.listen", c.CSTAFrontEnd.Listen}, {"admin.listen", c.Admin.Listen}}
	if c.XSILink.Simulate {
		others = append(others, [2]string{"simulator.listen", c.XSPSimulator.Listen})
	}
	// TCP on sip.listen and on sip.tls.listen clashes with the TCP listeners.
	clash(ps, "sip.listen", s.Listen, others)
	clash(ps, "sip.tls.listen", s.TLS.Listen, append([][2]string{{"sip.listen", s.Listen}}, others...))

	validateSIPAuth(ps, s, c.Directory)
	validateSIPSubscription(ps, s.Subscription)

	l := s.Limits
	between(ps, "sip.limits.max_subscriptions", l.MaxSubscriptions, 1, math.MaxInt)
	between(ps, "sip.limits.max_subscriptions_per_line", l.MaxSubscriptionsPerLine, 1, maxSubscriptionsPerLine)
	if !(l.SubscribeRate > 0) || math.IsInf(l.SubscribeRate, 0) {
		ps.add("sip.limits.subscribe_rate", "must be a positive number (SUBSCRIBEs per second per source address), got %s", formatFloat(l.SubscribeRate))
	}
	between(ps, "sip.limits.subscribe_burst", l.SubscribeBurst, 1, math.MaxInt)
	between(ps, "sip.limits.max_body_bytes", l.MaxBodyBytes, minSIPBodyBytes, maxSIPBodyBytes)
	between(ps, "sip.limits.tcp_max_connections", l.TCPMaxConnections, 1, math.MaxInt)
	between(ps, "sip.limits.tcp_max_connections_per_source", l.TCPMaxConnectionsPerSource, 1, math.MaxInt)
	if l.TCPIdleTimeout < time.Second {
		ps.add("sip.limits.tcp_idle_timeout", "must be at least 1s, got %s", formatDuration(l.TCPIdleTimeout))
	}

	lv := s.Liveness
	if lv.OptionsInterval < 0 {
		ps.add("sip.liveness.options_interval", "must be 0 (no OPTIONS pings) or positive, got %s", formatDuration(lv.OptionsInterval))
	}
	positive(ps, "sip.liveness.timeout", lv.Timeout)
	if !ps.has("sip.liveness.options_interval") && !ps.has("sip.liveness.timeout") &&
		lv.OptionsInterval > 0 && lv.Timeout <= lv.OptionsInterval {
		ps.add("sip.liveness.timeout", "must be longer than sip.liveness.options_interval (%s), got %s",
			formatDuration(lv.OptionsInterval), formatDuration(lv.Timeout))
	}

	stateFileDirectory(ps, "sip.state_file", s.StateFile)
	positive(ps, "sip.request_timeout", s.RequestTimeout)
	validateSIPPresence(ps, s)
}

func validateSIPTLS(ps *problems, s SIP) {
	t := s.TLS
	keys := []string{"sip.tls.listen", "sip.tls.cert_file", "sip.tls.key_file"}
	values := []string{t.Listen, t.CertFile, t.KeyFile}
	var set []string
	for i, v := range values {
		if v != "" {
			set = append(set, keys[i])
		}
	}
	if len(set) > 0 && len(set) < len(keys) {
		verb := "is"
		if len(set) > 1 {
			verb = "are"
		}
		for i, v := range values {
			if v == "" {
				ps.add(keys[i], "required when %s %s set (sip.tls.listen, cert_file and key_file go together, or none)",
					strings.Join(set, " and "), verb)
			}
		}
	}
	if t.Listen != "" {
		listenAddress(ps, "sip.tls.listen", t.Listen)
		if s.Listen == "" {
			ps.add("sip.tls.listen", "needs sip.listen: phone sync is off while sip.listen is empty")
		}
	}
	readable(ps, "sip.tls.cert_file", t.CertFile)
	readable(ps, "sip.tls.key_file", t.KeyFile)
}

// clash reports key when its fixed address is also another listener's.
func clash(ps *problems, key, addr string, others [][2]string) {
	if addr == "" || ps.has(key) {
		return
	}
	for _, other := range others {
		if !ps.has(other[0]) && sameFixedAddress(addr, other[1]) {
			ps.add(key, "must differ from %s, both are %q", other[0], addr)
			return
		}
	}
}

func validateSIPAuth(ps *problems, s SIP, d Directory) {
	a := s.Auth
	if a.Realm == "" || strings.ContainsAny(a.Realm, "\"\\\r\n") {
		ps.add("sip.auth.realm", `must be a non-empty realm without quotes or backslashes, got %q`, a.Realm)
	}

	users := secretPairNames(ps, "sip.auth.phones", a.Phones, "user")
	if a.Required && s.Listen != "" && len(a.Phones) == 0 {
		ps.add("sip.auth.phones", "at least one phone is required when sip.auth.required is true (or no phone could subscribe)")
	}
	if dup := firstDuplicate(users); dup != "" {
		ps.add("sip.auth.phones", "user %q is listed twice", dup)
	}

	agents := secretPairNames(ps, "sip.auth.agent_passwords", a.AgentPasswords, "agent")
	if dup := firstDuplicate(agents); dup != "" {
		ps.add("sip.auth.agent_passwords", "agent %q is listed twice", dup)
	}
	// An agent ID the gateway cannot resolve could never log in: it must
	// have a directory.agents entry, be a user ID, or be completed by
	// directory.domain (the gateway's Directory.Agent rule).
	if ps.has("directory.agents") || ps.has("directory.domain") {
		return
	}
	entries := make(map[string]string) // agent ID → user ID
	for _, item := range d.Agents {
		if e, err := parseAgent(item); err == nil {
			entries[e.AgentID] = e.UserID
		}
	}
	owner := make(map[string]string) // user ID → the agent ID whose password it got first
	for _, id := range agents {
		user, ok := entries[id]
		switch {
		case ok:
		case strings.Contains(id, "@"):
			user = id
		case d.Domain != "":
			user = id + "@" + d.Domain
		default:
			ps.add("sip.auth.agent_passwords", "agent %q is not in directory.agents and directory.domain is empty, so it names no user", id)
			return
		}
		// The gateway takes the first password of a user; a second one
		// for the same user under another name would be silently unused.
		if first, dup := owner[user]; dup && first != id {
			ps.add("sip.auth.agent_passwords", "agents %q and %q are the same user %q", first, id, user)
			return
		}
		owner[user] = id
	}
}

// secretPairNames checks "name=password" items and returns the names; a
// problem names the item by its position and never shows the password.
func secretPairNames(ps *problems, key string, items []string, what string) []string {
	var names []string
	for i, item := range items {
		name, _, err := parseSecretPair(item)
		if err != nil {
			ps.add(key, `item %d: must be "%s=password" with neither part empty and no blanks, quotes or commas in the %s`, i, what, what)
			return nil
		}
		names = append(names, name)
	}
	return names
}

func validateSIPSubscription(ps *problems, s SIPSubscription) {
	if s.MinExpires < time.Second {
		ps.add("sip.subscription.min_expires", "must be at least 1s, got %s", formatDuration(s.MinExpires))
	}
	positive(ps, "sip.subscription.max_expires", s.MaxExpires)
	positive(ps, "sip.subscription.default_expires", s.DefaultExpires)
	minDefaultMax(ps, "sip.subscription.min_expires", "sip.subscription.default_expires", "sip.subscription.max_expires",
		s.MinExpires, s.DefaultExpires, s.MaxExpires)
}

// minPresenceExpires: RFC 3856 §6.4 lets a notifier refuse shorter
// subscriptions, and a PBX refreshed more often than every minute per DN
// gains nothing.
const minPresenceExpires = 60 * time.Second

func validateSIPPresence(ps *problems, s SIP) {
	p := s.Presence
	if p.PBX != "" {
		host, port, err := net.SplitHostPort(p.PBX)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil || host == "":
			ps.add("sip.presence.pbx", "must be empty or host:port, got %q", p.PBX)
		case perr != nil || n < 1 || n > 65535:
			ps.add("sip.presence.pbx", "port must be a number from 1 to 65535, got %q", port)
		case s.Listen == "":
			ps.add("sip.presence.pbx", "needs sip.listen: phone sync is off while sip.listen is empty")
		}
		if len(p.DNs) == 0 {
			ps.add("sip.presence.dns", "at least one DN is required when sip.presence.pbx is set")
		}
	}
	for _, dn := range p.DNs {
		if dn == "" || strings.ContainsAny(dn, " \t\r\n@;,<>\"") {
			ps.add("sip.presence.dns", `item %q: must be a DN (the user part of a SIP URI) without blanks or any of @ ; , < > "`, dn)
			break
		}
	}
	if dup := firstDuplicate(p.DNs); dup != "" {
		ps.add("sip.presence.dns", "%q is listed twice", dup)
	}
	if p.Expires < minPresenceExpires {
		ps.add("sip.presence.expires", "must be at least %s, got %s", formatDuration(minPresenceExpires), formatDuration(p.Expires))
	}
}

// stateFileDirectory: a state file is written at run time, so its
// directory must exist now, where an operator still sees the problem.
func stateFileDirectory(ps *problems, key, path string) {
	if path == "" {
		return
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		ps.add(key, "directory %q of %q does not exist", dir, path)
	}
}

// validateConflictWindow checks gateway.conflict_window.
func validateConflictWindow(ps *problems, w time.Duration) {
	if w < 0 || w > time.Minute {
		ps.add("gateway.conflict_window", "must be between 0s (off) and 1m, got %s", formatDuration(w))
	}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
