package csta

import "time"

// Auth is the authentication of one listener.
type Auth struct {
	// Mode is "none" or "password". With "password", StartApplicationSession
	// must carry the name and password of one of the listener's users
	// (either applicationSpecificInfo form) and a session is required before
	// any other request.
	Mode string
	// UserName and Password are one user (csta.auth.username/password);
	// an empty UserName is no user.
	UserName string
	Password string
	// Users are the listener's further users, name → password
	// (csta.auth.users).
	Users map[string]string
}

// hasUser reports whether name is one of the listener's users.
func (a *Auth) hasUser(name string) bool {
	if name == "" {
		return false
	}
	if name == a.UserName {
		return true
	}
	_, ok := a.Users[name]
	return ok
}

// Config is everything the front end needs; cmd/connector builds it from the
// typed application config. All durations and counts must be positive.
type Config struct {
	// TCP listener address (csta.listen).
	Listen string
	// TLS for the TCP listener; both empty means plain TCP.
	TLSCertFile string
	TLSKeyFile  string

	TCPAuth       Auth // csta.auth
	WebSocketAuth Auth // csta.websocket.auth

	// DeviceLimits confines a user authenticated on either listener to the
	// devices listed for it (csta.authorization.devices): a request naming
	// any other device is answered operation/privilegeViolationSpecifiedDevice
	// before the Service sees it. IDs are compared exactly as the client
	// writes them. A user without an entry, and every client of a listener
	// whose Mode is "none", may name any device. Requests carry the limit
	// to the Service (Requester.Devices), which refuses an agent sitting
	// outside it.
	DeviceLimits map[string][]DeviceID

	// deviceSets is DeviceLimits as sets, built by Server.store.
	deviceSets map[string]map[DeviceID]struct{}

	// RequireSession refuses every request but session and system messages
	// until StartApplicationSession succeeded (ErrSessionRequired).
	RequireSession bool

	// DefaultEdition answers clients before they reveal their edition.
	DefaultEdition Edition

	// Session timer bounds: requestedSessionDuration is clamped to
	// [MinSessionDuration, MaxSessionDuration]; absent means DefaultSessionDuration.
	DefaultSessionDuration time.Duration
	MinSessionDuration     time.Duration
	MaxSessionDuration     time.Duration

	MaxConnections          int           // per listener; excess connections are closed at once
	MaxConnectionsPerSource int           // per source address (sourceOf), both listeners together; excess closed at once
	MaxOutstandingRequests  int           // per connection; excess answered outstandingReqLimitExceeded
	MaxMonitorsPerConn      int           // excess answered objectMonitorLimitExceeded
	MaxMonitors             int           // all connections together; excess answered objectMonitorLimitExceeded
	MaxFrameBytes           int           // total frame size incl. header, at most 65535
	MaxXMLDepth             int           // deeper documents are answered, not parsed further
	WriteQueueLength        int           // frames queued per connection before it counts as stalled
	WriteTimeout            time.Duration // one flush to the socket
	RequestTimeout          time.Duration // deadline given to the Service
	HandshakeTimeout        time.Duration // TLS handshake / WebSocket upgrade
	IdleTimeout             time.Duration // no frame at all for this long closes a session-less connection
	// SessionStartTimeout closes a connection that has not started a
	// session this long after it was accepted (or after its session was
	// stopped), when the listener requires sessions. A deadline, not an
	// idle timer: bytes trickling in do not extend it.
	SessionStartTimeout time.Duration

	// Failed StartApplicationSession throttling, per source address and per
	// user name (see loginThrottle): after LoginFailuresBeforeBackoff
	// failures each further attempt waits a doubling back-off (1 s, 2 s, …,
	// at most LoginLockout); after LoginLockoutAfter failures attempts are
	// refused for LoginLockout. A record without a failure for LoginLockout
	// is forgotten.
	LoginFailuresBeforeBackoff int
	LoginLockoutAfter          int
	LoginLockout               time.Duration
}

// auth is the authentication of the listener a transport kind belongs to.
func (c *Config) auth(transportKind string) *Auth {
	if transportKind == "websocket" {
		return &c.WebSocketAuth
	}
	return &c.TCPAuth
}

// sessionsRequired reports whether a client of the listener must start a
// session before anything but session and system messages.
func (c *Config) sessionsRequired(transportKind string) bool {
	return c.RequireSession || c.auth(transportKind).Mode == "password"
}

// deviceAllowed reports whether user, authenticated on a listener with
// auth, may name device.
func (c *Config) deviceAllowed(auth *Auth, user string, device DeviceID) bool {
	return c.deviceLimit(auth, user).Allows(device)
}

// deviceLimit is what user, authenticated on a listener with auth, may
// name. It fails closed: with mode password, a session without a user the
// listener still has may name nothing (Reload ends such sessions; this
// covers the moment in between).
func (c *Config) deviceLimit(auth *Auth, user string) DeviceLimit {
	if auth.Mode != "password" {
		return DeviceLimit{}
	}
	if !auth.hasUser(user) {
		return DeviceLimit{Limited: true}
	}
	set, limited := c.deviceSets[user]
	return DeviceLimit{Limited: limited, set: set}
}

// DeviceLimit is the devices a requester may act on: for a CTI user, its
// csta.authorization.devices. The front end checks the device a request
// names; the Service checks what else the request touches (an agent it
// names: where that agent sits). The zero value limits nothing.
type DeviceLimit struct {
	// Limited is false when every device is allowed.
	Limited bool
	set     map[DeviceID]struct{} // shared with the Config in force: never written
}

// LimitTo is a limit to the given devices only.
func LimitTo(devices ...DeviceID) DeviceLimit {
	set := make(map[DeviceID]struct{}, len(devices))
	for _, d := range devices {
		set[d] = struct{}{}
	}
	return DeviceLimit{Limited: true, set: set}
}

// Allows reports whether device is one the requester may act on. IDs are
// compared exactly as written; a Service that knows which IDs name the same
// device asks for each of them.
func (l DeviceLimit) Allows(device DeviceID) bool {
	if !l.Limited {
		return true
	}
	_, ok := l.set[device]
	return ok
}

// DefaultConfig is what config.example.yaml documents.
func DefaultConfig() Config {
	return Config{
		Listen:                 "127.0.0.1:8800",
		TCPAuth:                Auth{Mode: "none"},
		WebSocketAuth:          Auth{Mode: "none"},
		DefaultEdition:         Edition3,
		DefaultSessionDuration: 180 * time.Second,
		MinSessionDuration:     10 * time.Second,
		MaxSessionDuration:     3600 * time.Second,
		MaxConnections:         1000,
		// A CTI server farm behind one NAT address is a real deployment:
		// a tenth of the listener's budget per source.
		MaxConnectionsPerSource:    100,
		MaxOutstandingRequests:     256,
		MaxMonitorsPerConn:         5000,
		MaxMonitors:                100000,
		MaxFrameBytes:              65535,
		MaxXMLDepth:                32,
		WriteQueueLength:           1024,
		WriteTimeout:               10 * time.Second,
		RequestTimeout:             10 * time.Second,
		HandshakeTimeout:           10 * time.Second,
		IdleTimeout:                600 * time.Second,
		SessionStartTimeout:        10 * time.Second,
		LoginFailuresBeforeBackoff: 5,
		LoginLockoutAfter:          20,
		LoginLockout:               5 * time.Minute,
	}
}
