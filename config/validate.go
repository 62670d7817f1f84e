package config

import (
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// validate checks values and their consistency; keys that already failed to
// decode keep their default and are not reported twice (see problems.add).
func validate(c *Config, ps *problems) {
	oneOf(ps, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(ps, "log.format", c.Log.Format, "text", "json")

	f := &c.CSTAFrontEnd
	listenAddress(ps, "csta.listen", f.Listen)
	validateTLS(ps, "csta.tls", f.TLS)
	listenerUsers := map[string][]string{
		"csta.auth":           validateAuth(ps, "csta.auth", f.Auth),
		"csta.websocket.auth": validateAuth(ps, "csta.websocket.auth", f.WebSocket.Auth),
	}
	validateRequireSession(ps, f)
	validateAuthorization(ps, f, listenerUsers)
	if _, ok := csta.ParseEdition(f.DefaultEdition); !ok {
		ps.add("csta.default_edition", "must be one of none, ed2, ed3, ed4, ed5, ed6, got %q", f.DefaultEdition)
	}
	validateSession(ps, f.Session)
	validateLimits(ps, f.Limits)

	listenAddress(ps, "admin.listen", c.Admin.Listen)
	validateTLS(ps, "admin.tls", c.Admin.TLS)
	if t := c.Admin.Token; t != "" && len(t) < 16 && !ps.has("admin.token_file") {
		key := "admin.token"
		if c.Admin.TokenFile != "" {
			key = "admin.token_file"
		}
		ps.add(key, "must be at least 16 characters (a bearer token guessable in a few tries protects nothing), got %d", len(t))
	}
	if !ps.has("csta.listen") && !ps.has("admin.listen") && sameFixedAddress(f.Listen, c.Admin.Listen) {
		ps.add("admin.listen", "must differ from csta.listen, both are %q", f.Listen)
	}

	validateXSI(ps, c.XSILink)
	validateSimulator(ps, c.XSPSimulator, c.XSILink, [][2]string{{"csta.listen", f.Listen}, {"admin.listen", c.Admin.Listen}})
	validateDirectory(ps, c.Directory, c.XSPSimulator, c.XSILink.Simulate)
	validateGatewayAndHoteling(ps, c.GatewayCore, c.HotDesks)
	validateSIP(ps, c)
	validateJournal(ps, c.Journal)
	validateStore(ps, c)
	validateHA(ps, c)
}

func oneOf(ps *problems, key, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		ps.add(key, "must be one of %s, got %q", strings.Join(allowed, ", "), value)
	}
}

// listenAddress accepts host:port with a numeric port; an empty host means
// every interface and port 0 an ephemeral port.
func listenAddress(ps *problems, key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.add(key, "must be host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add(key, "port must be a number from 0 to 65535, got %q", port)
	}
}

func sameFixedAddress(a, b string) bool {
	_, port, _ := net.SplitHostPort(a)
	return a == b && port != "0"
}

// validateTLS checks the TLS section at key (csta.tls, admin.tls).
func validateTLS(ps *problems, key string, t TLS) {
	cert, k := key+".cert_file", key+".key_file"
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		ps.add(k, "required when %s is set", cert)
	case t.CertFile == "" && t.KeyFile != "":
		ps.add(cert, "required when %s is set", k)
	}
	readable(ps, cert, t.CertFile)
	readable(ps, k, t.KeyFile)
}

func readable(ps *problems, key, path string) {
	if path == "" {
		return
	}
	file, err := os.Open(path)
	if err != nil {
		ps.add(key, "cannot read: %v", err)
		return
	}
	file.Close()
}

// validateAuth checks one listener's authentication and returns its user
// names (see validateUsers). With mode password it needs at least one user:
// username with a password, or users, or both.
func validateAuth(ps *problems, section string, a Auth) []string {
	users := validateUsers(ps, section, a)
	switch a.Mode {
	case "none":
	case "password":
		hasPassword := a.Password != "" || ps.has(section+".password_file")
		if len(a.Users) > 0 && a.Username == "" && !hasPassword {
			break // the users list alone
		}
		if a.Username == "" {
			ps.add(section+".username", "required when %s.mode is password (or list users in %s.users)", section, section)
		}
		if !hasPassword {
			ps.add(section+".password", "required when %s.mode is password (or set %s.password_file)", section, section)
		}
	default:
		ps.add(section+".mode", "must be one of none, password, got %q", a.Mode)
	}
	return users
}

// validateRequireSession: with a password configured but no session
// required, a client could skip StartApplicationSession and send requests
// unauthenticated.
func validateRequireSession(ps *problems, f *CSTA) {
	if f.RequireSession {
		return
	}
	for _, section := range []struct {
		key  string
		auth Auth
	}{{"csta.auth", f.Auth}, {"csta.websocket.auth", f.WebSocket.Auth}} {
		if section.auth.Mode == "password" {
			ps.add("csta.require_session",
				"must be true when %s.mode is password, or clients could send requests without authenticating", section.key)
			return
		}
	}
}

func validateSession(ps *problems, s Session) {
	positive(ps, "csta.session.min_duration", s.MinDuration)
	positive(ps, "csta.session.max_duration", s.MaxDuration)
	positive(ps, "csta.session.default_duration", s.DefaultDuration)
	minDefaultMax(ps, "csta.session.min_duration", "csta.session.default_duration", "csta.session.max_duration",
		s.MinDuration, s.DefaultDuration, s.MaxDuration)
}

// minDefaultMax checks min ≤ max and min ≤ def ≤ max for three duration
// keys whose own problems (if any) are already reported.
func minDefaultMax(ps *problems, minKey, defKey, maxKey string, lo, def, hi time.Duration) {
	if ps.has(minKey) || ps.has(defKey) || ps.has(maxKey) {
		return
	}
	if lo > hi {
		ps.add(maxKey, "must be at least %s (%s), got %s", minKey, formatDuration(lo), formatDuration(hi))
		return
	}
	if def < lo || def > hi {
		ps.add(defKey, "must be between %s (%s) and %s (%s), got %s",
			minKey, formatDuration(lo), maxKey, formatDuration(hi), formatDuration(def))
	}
}

// maxFrameBytes is what the 16-bit length of the 8-byte CSTA header allows;
// minFrameBytes leaves room for the header and a minimal document.
const (
	minFrameBytes = 64
	maxFrameBytes = 65535
)

func validateLimits(ps *problems, l Limits) {
	between(ps, "csta.limits.max_connections", l.MaxConnections, 1, math.MaxInt)
	between(ps, "csta.limits.max_connections_per_source", l.MaxConnectionsPerSource, 1, math.MaxInt)
	between(ps, "csta.limits.max_outstanding_requests", l.MaxOutstandingRequests, 1, math.MaxInt)
	between(ps, "csta.limits.max_monitors_per_connection", l.MaxMonitorsPerConnection, 1, math.MaxInt)
	between(ps, "csta.limits.max_monitors", l.MaxMonitors, 1, math.MaxInt)
	between(ps, "csta.limits.max_frame_bytes", l.MaxFrameBytes, minFrameBytes, maxFrameBytes)
	between(ps, "csta.limits.max_xml_depth", l.MaxXMLDepth, 1, math.MaxInt)
	between(ps, "csta.limits.write_queue_length", l.WriteQueueLength, 1, math.MaxInt)
	positive(ps, "csta.limits.write_timeout", l.WriteTimeout)
	positive(ps, "csta.limits.request_timeout", l.RequestTimeout)
	positive(ps, "csta.limits.handshake_timeout", l.HandshakeTimeout)
	positive(ps, "csta.limits.idle_timeout", l.IdleTimeout)
	positive(ps, "csta.limits.session_start_timeout", l.SessionStartTimeout)
	between(ps, "csta.limits.login_failures_before_backoff", l.LoginFailuresBeforeBackoff, 1, math.MaxInt)
	between(ps, "csta.limits.login_lockout_after", l.LoginLockoutAfter, 1, math.MaxInt)
	positive(ps, "csta.limits.login_lockout", l.LoginLockout)
	if !ps.has("csta.limits.login_failures_before_backoff") && !ps.has("csta.limits.login_lockout_after") &&
		l.LoginLockoutAfter < l.LoginFailuresBeforeBackoff {
		ps.add("csta.limits.login_lockout_after", "must be at least csta.limits.login_failures_before_backoff (%d), got %d",
			l.LoginFailuresBeforeBackoff, l.LoginLockoutAfter)
	}
}

func between(ps *problems, key string, n, lo, hi int) {
	switch {
	case hi == math.MaxInt && n < lo:
		ps.add(key, "must be at least %d, got %d", lo, n)
	case n < lo || n > hi:
		ps.add(key, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func positive(ps *problems, key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, "must be positive, got %s", formatDuration(d))
	}
}

// formatDuration writes whole hours as "1h" and whole seconds as "180s", the
// way the example file does; anything finer as time.Duration does.
func formatDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
