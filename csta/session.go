package csta

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"
)

// ECMA-354 application sessions (research/csta.md §1.8). A connection holds
// at most one session. The session timer is the keep-alive: a client that
// does not reset it in time gets ApplicationSessionTerminated
// (sessionTimerExpired) and is disconnected.

func (c *conn) startSession(invokeID int, m StartApplicationSession) {
	cfg := c.srv.config()
	neg := func(e SessionError) {
		c.send(invokeID, StartApplicationSessionNegResponse{ErrorCode: e}, EditionNone)
	}
	auth := c.auth()
	var authUser string
	if auth.Mode == "password" {
		var reason string
		if authUser, reason = c.authenticate(cfg, &auth, m); authUser == "" {
			// One answer for every failure — wrong password, unknown user,
			// no credentials, throttled, locked out — so a client learns
			// nothing from it but "no".
			c.srv.metrics.loginFailures.WithLabelValues(c.transportKind, reason).Inc()
			c.log.Warn("CSTA session refused: authentication failed", "reason", reason,
				"application", wire(m.ApplicationID), "user", wire(m.UserName), "sent_credentials", m.HasCredentials)
			neg(SessionError{DefinedError: SessionErrInvalidApplicationInfo})
			c.closeGraceful(closePolicyViolation, "authentication failed")
			return
		}
	}
	ed, version, ok := negotiateEdition(m.ProtocolVersions, cfg.DefaultEdition)
	if !ok {
		c.log.Info("CSTA session refused: no supported protocol version", "requested", wire(strings.Join(m.ProtocolVersions, " ")))
		neg(SessionError{DefinedError: SessionErrProtocolVersionNotSupported})
		return
	}
	d := clampDuration(m.RequestedSessionDuration, cfg)
	id := newSessionID()

	c.mu.Lock()
	if c.session != nil {
		c.mu.Unlock()
		neg(SessionError{ApplError: "a session is already open on this connection"})
		return
	}
	s := &session{id: id, applicationID: m.ApplicationID, userName: m.UserName, authUser: authUser, duration: d}
	s.timer = time.AfterFunc(d, func() { c.sessionExpired(id) })
	c.session = s
	// Only a requested version binds the edition; a client that asked for
	// none keeps being answered in each request's own namespace.
	if len(m.ProtocolVersions) > 0 {
		c.edition, c.negotiated = ed, true
	}
	c.mu.Unlock()

	c.log.Info("CSTA session started", "session", id, "application", wire(m.ApplicationID), "user", wire(m.UserName), "edition", ed.String(), "duration", d)
	c.send(invokeID, StartApplicationSessionPosResponse{
		SessionID:             id,
		ActualProtocolVersion: version,
		ActualSessionDuration: int(d / time.Second),
	}, EditionNone)
}

// Login failure reasons, as in connector_cti_login_failures_total.
const (
	loginBadCredentials = "bad_credentials" // wrong password or unknown user, deliberately not told apart
	loginNoCredentials  = "no_credentials"
)

// authenticate checks a StartApplicationSession's credentials through the
// login throttle: the listener's user they match, or "" and why not. A
// throttled attempt is refused without its password being looked at; it
// takes the same answer and the same way out as a wrong password. Nothing
// here sleeps: a refusal is immediate, for known and unknown names alike.
func (c *conn) authenticate(cfg *Config, auth *Auth, m StartApplicationSession) (user, reason string) {
	var key string
	if m.HasCredentials {
		key = userKey(c.transportKind, m.UserName)
	}
	attempt, refused := c.srv.logins.begin(policyOf(cfg), c.source, key, c.srv.now())
	if attempt == nil {
		return "", refused
	}
	user = matchingUser(auth, m)
	attempt.done(user != "", c.srv.now())
	switch {
	case user != "":
		return user, ""
	case !m.HasCredentials:
		return "", loginNoCredentials
	}
	return "", loginBadCredentials
}

// matchingUser returns the listener's user whose name and password the
// session request carries, "" for none. Every user is compared, in constant
// time, whichever matches; hashing first hides the length of the
// configured secrets too.
func matchingUser(a *Auth, m StartApplicationSession) string {
	if !m.HasCredentials {
		return ""
	}
	hu, hp := sha256.Sum256([]byte(m.UserName)), sha256.Sum256([]byte(m.Password))
	eq := func(x string, h [sha256.Size]byte) int {
		hx := sha256.Sum256([]byte(x))
		return subtle.ConstantTimeCompare(hx[:], h[:])
	}
	var match string
	try := func(name, password string) {
		// An empty name is no user, not one anybody can be.
		if name != "" && eq(name, hu)&eq(password, hp) == 1 {
			match = name
		}
	}
	try(a.UserName, a.Password)
	for name, password := range a.Users {
		try(name, password)
	}
	return match
}

// negotiateEdition picks the first requested protocol version the codec
// speaks, in the client's order of preference. It answers with the client's
// own string, Avaya's ".../ed3/priv5" included. No list means the default.
func negotiateEdition(requested []string, def Edition) (Edition, string, bool) {
	if len(requested) == 0 {
		if def == EditionNone {
			def = Edition3
		}
		return def, def.Namespace(), true
	}
	for _, v := range requested {
		if ed, ok := editionOfProtocolVersion(v); ok {
			return ed, v, true
		}
	}
	return 0, "", false
}

func clampDuration(seconds int, cfg *Config) time.Duration {
	if seconds <= 0 {
		return cfg.DefaultSessionDuration
	}
	d := time.Duration(seconds) * time.Second
	return min(max(d, cfg.MinSessionDuration), cfg.MaxSessionDuration)
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *conn) stopSession(invokeID int, m StopApplicationSession) {
	c.mu.Lock()
	s := c.session
	if s == nil || s.id != m.SessionID {
		c.mu.Unlock()
		c.send(invokeID, StopApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidSessionID}}, EditionNone)
		return
	}
	s.timer.Stop()
	c.session = nil
	c.negotiated = false
	c.sessionless = time.Now() // session_start_timeout runs again
	c.mu.Unlock()
	c.dropMonitors()
	reason := m.DefinedEndReason
	if reason == "" {
		reason = m.AppEndReason
	}
	c.log.Info("CSTA session stopped by the client", "session", s.id, "reason", reason)
	c.send(invokeID, StopApplicationSessionPosResponse{}, EditionNone)
}

func (c *conn) resetSession(invokeID int, m ResetApplicationSessionTimer) {
	cfg := c.srv.config()
	c.mu.Lock()
	s := c.session
	if s == nil || s.id != m.SessionID {
		c.mu.Unlock()
		c.send(invokeID, ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidSessionID}}, EditionNone)
		return
	}
	if m.RequestedSessionDuration > 0 {
		s.duration = clampDuration(m.RequestedSessionDuration, cfg)
	}
	// Stop fails once the timer fired: the expiry is then already under way.
	if !s.timer.Stop() {
		c.mu.Unlock()
		c.send(invokeID, ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}, EditionNone)
		return
	}
	s.timer.Reset(s.duration)
	d := s.duration
	c.mu.Unlock()
	c.send(invokeID, ResetApplicationSessionTimerPosResponse{ActualSessionDuration: int(d / time.Second)}, EditionNone)
}

func (c *conn) sessionExpired(id string) {
	c.mu.Lock()
	s := c.session
	if s == nil || s.id != id {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.log.Info("CSTA session timer expired", "session", id)
	c.terminateSession(ApplicationSessionTerminated{DefinedTermReason: SessionTermReasonSessionTimerExpired}, closeNormal, "session timer expired")
}

// terminateSession tells the client its session is over (if it has one) and
// closes the connection once that message is written.
func (c *conn) terminateSession(t ApplicationSessionTerminated, code closeCode, reason string) {
	c.mu.Lock()
	if s := c.session; s != nil {
		s.timer.Stop()
		t.SessionID = s.id
		c.session = nil
	}
	c.mu.Unlock()
	if t.SessionID != "" {
		c.send(EventInvokeID, t, EditionNone)
	}
	c.closeGraceful(code, reason)
}
