// Package config is the connector's typed configuration: one YAML file read
// with viper, every key overridable by an environment variable
// CONNECTOR_<PATH> (csta.listen → CONNECTOR_CSTA_LISTEN), validated as a whole
// so that an operator sees every problem at once, each named by its key path.
//
// The key paths are the mapstructure tags of the structs below; Load, the
// validation, Diff and the YAML printer all walk the same tags, so a key added
// here is loaded, overridable, printed and diffed without further wiring.
package config

import (
	"log/slog"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// Config is the whole configuration of one connector process.
type Config struct {
	Log          Log              `mapstructure:"log"`
	CSTAFrontEnd CSTA             `mapstructure:"csta"`
	Admin        Admin            `mapstructure:"admin"`
	XSILink      XSI              `mapstructure:"xsi"`
	XSPSimulator Simulator        `mapstructure:"simulator"`
	Directory    Directory        `mapstructure:"directory"`
	GatewayCore  GatewaySettings  `mapstructure:"gateway"`
	HotDesks     HotelingSettings `mapstructure:"hoteling"`
	SIP          SIP              `mapstructure:"sip"`
	Journal      JournalSettings  `mapstructure:"journal"`
	Store        StoreSettings    `mapstructure:"store"`
	HA           HA               `mapstructure:"ha"`
}

// Log configures the process logger (slog, to stderr).
type Log struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

// CSTA configures the CSTA front end (TCP listener and the WebSocket at
// admin.listen/csta).
type CSTA struct {
	Listen         string    `mapstructure:"listen"`
	TLS            TLS       `mapstructure:"tls"`
	Auth           Auth      `mapstructure:"auth"`
	RequireSession bool      `mapstructure:"require_session"`
	DefaultEdition string    `mapstructure:"default_edition"` // none | ed2 … ed6
	Session        Session   `mapstructure:"session"`
	Limits         Limits    `mapstructure:"limits"`
	WebSocket      WebSocket `mapstructure:"websocket"`
	// Authorization limits the users of both listeners (csta.auth,
	// csta.websocket.auth) to devices.
	Authorization Authorization `mapstructure:"authorization"`
}

// TLS names the certificate and key of a listener (csta.tls, admin.tls);
// both empty means plain TCP.
type TLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// Auth is the authentication of one CSTA listener. After Load, Password holds
// the secret whether it came inline or from PasswordFile.
type Auth struct {
	Mode         string `mapstructure:"mode"` // none | password
	Username     string `mapstructure:"username"`
	Password     string `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	// Users are further users of the listener, "name=password" like
	// sip.auth.phones (names are case-sensitive, so a list, not a mapping).
	Users []string `mapstructure:"users"`
}

// Authorization confines CTI users to devices.
type Authorization struct {
	// Devices are "user=dev1 dev2 …": a user with an entry may name only
	// those devices in its requests (blank-separated, since a list from the
	// environment splits on commas), and only agents whose own device or
	// hot desk is one of them; a user without one may name any.
	Devices []string `mapstructure:"devices"`
}

// Session bounds the ECMA-354 application session duration.
type Session struct {
	DefaultDuration time.Duration `mapstructure:"default_duration"`
	MinDuration     time.Duration `mapstructure:"min_duration"`
	MaxDuration     time.Duration `mapstructure:"max_duration"`
}

// Limits bound what one CSTA listener and connection may consume.
type Limits struct {
	MaxConnections           int           `mapstructure:"max_connections"`
	MaxConnectionsPerSource  int           `mapstructure:"max_connections_per_source"`
	MaxOutstandingRequests   int           `mapstructure:"max_outstanding_requests"`
	MaxMonitorsPerConnection int           `mapstructure:"max_monitors_per_connection"`
	MaxMonitors              int           `mapstructure:"max_monitors"`
	MaxFrameBytes            int           `mapstructure:"max_frame_bytes"`
	MaxXMLDepth              int           `mapstructure:"max_xml_depth"`
	WriteQueueLength         int           `mapstructure:"write_queue_length"`
	WriteTimeout             time.Duration `mapstructure:"write_timeout"`
	RequestTimeout           time.Duration `mapstructure:"request_timeout"`
	HandshakeTimeout         time.Duration `mapstructure:"handshake_timeout"`
	IdleTimeout              time.Duration `mapstructure:"idle_timeout"`
	SessionStartTimeout      time.Duration `mapstructure:"session_start_timeout"`
	// Failed StartApplicationSession throttling, per source and per user.
	LoginFailuresBeforeBackoff int           `mapstructure:"login_failures_before_backoff"`
	LoginLockoutAfter          int           `mapstructure:"login_lockout_after"`
	LoginLockout               time.Duration `mapstructure:"login_lockout"`
}

// WebSocket configures CSTA over WebSocket at ws://<admin.listen>/csta.
type WebSocket struct {
	Enabled bool `mapstructure:"enabled"`
	Auth    Auth `mapstructure:"auth"`
}

// Admin configures the admin HTTP server.
type Admin struct {
	Listen string `mapstructure:"listen"`
	// TLS: HTTPS (and wss:// for /csta and the stream) when both are set.
	TLS TLS `mapstructure:"tls"`
	// Token is the bearer token of the admin API (every route but
	// /healthz); empty: the API answers 401 to everything. Token holds the
	// secret whether it came inline or from TokenFile.
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
}

// Default returns the configuration used for every key that neither the file
// nor the environment sets. Where it overlaps the CSTA front end it is
// csta.DefaultConfig(), and where it overlaps the XSI link xsi.DefaultConfig(),
// so they cannot drift apart.
func Default() *Config {
	front := csta.DefaultConfig()
	return &Config{
		Log: Log{Level: "info", Format: "text"},
		CSTAFrontEnd: CSTA{
			Listen:         front.Listen,
			TLS:            TLS{CertFile: front.TLSCertFile, KeyFile: front.TLSKeyFile},
			Auth:           authFromFrontEnd(front.TCPAuth),
			RequireSession: front.RequireSession,
			DefaultEdition: front.DefaultEdition.String(),
			Session: Session{
				DefaultDuration: front.DefaultSessionDuration,
				MinDuration:     front.MinSessionDuration,
				MaxDuration:     front.MaxSessionDuration,
			},
			Limits: Limits{
				MaxConnections:             front.MaxConnections,
				MaxConnectionsPerSource:    front.MaxConnectionsPerSource,
				MaxOutstandingRequests:     front.MaxOutstandingRequests,
				MaxMonitorsPerConnection:   front.MaxMonitorsPerConn,
				MaxMonitors:                front.MaxMonitors,
				MaxFrameBytes:              front.MaxFrameBytes,
				MaxXMLDepth:                front.MaxXMLDepth,
				WriteQueueLength:           front.WriteQueueLength,
				WriteTimeout:               front.WriteTimeout,
				RequestTimeout:             front.RequestTimeout,
				HandshakeTimeout:           front.HandshakeTimeout,
				IdleTimeout:                front.IdleTimeout,
				SessionStartTimeout:        front.SessionStartTimeout,
				LoginFailuresBeforeBackoff: front.LoginFailuresBeforeBackoff,
				LoginLockoutAfter:          front.LoginLockoutAfter,
				LoginLockout:               front.LoginLockout,
			},
			WebSocket:     WebSocket{Enabled: true, Auth: authFromFrontEnd(front.WebSocketAuth)},
			Authorization: Authorization{Devices: deviceLimitsFromFrontEnd(front.DeviceLimits)},
		},
		Admin:        Admin{Listen: "127.0.0.1:8080"},
		XSILink:      defaultXSI(),
		XSPSimulator: defaultSimulator(),
		Directory:    defaultDirectory(),
		GatewayCore:  defaultGateway(),
		HotDesks:     defaultHoteling(),
		Journal:      defaultJournal(),
		Store:        defaultStore(),
		HA:           defaultHA(),
		SIP:          defaultSIP(),
	}
}

func authFromFrontEnd(a csta.Auth) Auth {
	return Auth{Mode: a.Mode, Username: a.UserName, Password: a.Password, Users: usersFromFrontEnd(a.Users)}
}

func (a Auth) frontEnd() csta.Auth {
	return csta.Auth{Mode: a.Mode, UserName: a.Username, Password: a.Password, Users: usersToFrontEnd(a.Users)}
}

// CSTA converts the configuration to the CSTA front end's. It expects a
// validated Config (an invalid csta.default_edition becomes EditionNone).
func (c *Config) CSTA() csta.Config {
	f := c.CSTAFrontEnd
	edition, _ := csta.ParseEdition(f.DefaultEdition)
	return csta.Config{
		Listen:                     f.Listen,
		TLSCertFile:                f.TLS.CertFile,
		TLSKeyFile:                 f.TLS.KeyFile,
		TCPAuth:                    f.Auth.frontEnd(),
		WebSocketAuth:              f.WebSocket.Auth.frontEnd(),
		DeviceLimits:               deviceLimitsToFrontEnd(f.Authorization.Devices),
		RequireSession:             f.RequireSession,
		DefaultEdition:             edition,
		DefaultSessionDuration:     f.Session.DefaultDuration,
		MinSessionDuration:         f.Session.MinDuration,
		MaxSessionDuration:         f.Session.MaxDuration,
		MaxConnections:             f.Limits.MaxConnections,
		MaxConnectionsPerSource:    f.Limits.MaxConnectionsPerSource,
		MaxOutstandingRequests:     f.Limits.MaxOutstandingRequests,
		MaxMonitorsPerConn:         f.Limits.MaxMonitorsPerConnection,
		MaxMonitors:                f.Limits.MaxMonitors,
		MaxFrameBytes:              f.Limits.MaxFrameBytes,
		MaxXMLDepth:                f.Limits.MaxXMLDepth,
		WriteQueueLength:           f.Limits.WriteQueueLength,
		WriteTimeout:               f.Limits.WriteTimeout,
		RequestTimeout:             f.Limits.RequestTimeout,
		HandshakeTimeout:           f.Limits.HandshakeTimeout,
		IdleTimeout:                f.Limits.IdleTimeout,
		SessionStartTimeout:        f.Limits.SessionStartTimeout,
		LoginFailuresBeforeBackoff: f.Limits.LoginFailuresBeforeBackoff,
		LoginLockoutAfter:          f.Limits.LoginLockoutAfter,
		LoginLockout:               f.Limits.LoginLockout,
	}
}

// SlogLevel is log.level as a slog.Level (info for an invalid value).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// MaskedSecret replaces every inline secret in Masked's copy.
const MaskedSecret = "***"

// Masked returns a copy fit for printing: an inline password becomes "***";
// a password read from password_file is dropped (the file name stays), so the
// printed configuration loads again without naming both. In the
// "name=password" lists of csta.auth.users, csta.websocket.auth.users and
// sip.auth the names stay and each password becomes "***".
func (c *Config) Masked() *Config {
	masked := *c
	maskAuth(&masked.CSTAFrontEnd.Auth)
	maskAuth(&masked.CSTAFrontEnd.WebSocket.Auth)
	maskSecret(&masked.XSILink.Password, masked.XSILink.PasswordFile)
	maskSecret(&masked.Admin.Token, masked.Admin.TokenFile)
	maskSecret(&masked.Store.Postgres.DSN, masked.Store.Postgres.DSNFile)
	masked.SIP.Auth.Phones = maskPairs(c.SIP.Auth.Phones)
	masked.SIP.Auth.AgentPasswords = maskPairs(c.SIP.Auth.AgentPasswords)
	return &masked
}

func maskAuth(a *Auth) {
	maskSecret(&a.Password, a.PasswordFile)
	a.Users = maskPairs(a.Users)
}

func maskSecret(password *string, passwordFile string) {
	switch {
	case passwordFile != "":
		*password = ""
	case *password != "":
		*password = MaskedSecret
	}
}
