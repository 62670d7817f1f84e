package phonesync

import (
	"time"

	"github.com/broadworks-connector/connector/internal/netguard"
)

// Config is the phonesync part of the connector's configuration (sip.* keys,
// filled in by cmd/connector from the config package).
type Config struct {
	// Listen is the UDP and TCP address for phones (sip.listen).
	Listen string
	// TLSListen, TLSCertFile, TLSKeyFile enable SIP over TLS when all are set.
	TLSListen, TLSCertFile, TLSKeyFile string

	// Realm is the digest realm (sip.auth.realm, default "BroadWorks").
	Realm string
	// Credentials maps a digest username to its password (sip.auth.phones,
	// "user=password" items). The username is the phone's DN (the From
	// user): credentials of one phone do not open another's line. With
	// RequireAuth, a SUBSCRIBE without a valid digest response is answered
	// 401/403; a phone whose DN is not in the directory gets 404.
	Credentials map[string]string
	// RequireAuth digest-challenges every SUBSCRIBE (sip.auth.required,
	// default true). When false, unauthenticated phones may subscribe but
	// their change requests are still refused unless credentials match.
	RequireAuth bool

	// MinExpires, MaxExpires and DefaultExpires bound subscription lifetimes
	// (sip.subscription.*; defaults 60 s, 3600 s, 3600 s).
	MinExpires, MaxExpires, DefaultExpires time.Duration
	// MaxSubscriptions caps dialogs held (sip.limits.max_subscriptions).
	MaxSubscriptions int
	// MaxSubscriptionsPerLine caps the devices subscribed to one line for
	// one event package (sip.limits.max_subscriptions_per_line, default
	// 8): a desk phone, a soft client, a sidecar… each holds a dialog and
	// hears every change. One more is refused 403.
	MaxSubscriptionsPerLine int
	// SubscribeRate and SubscribeBurst limit SUBSCRIBEs per source address
	// per second (sip.limits.subscribe_rate / subscribe_burst).
	SubscribeRate  float64
	SubscribeBurst int
	// MaxBodyBytes caps a request body (sip.limits.max_body_bytes, 16 KiB).
	MaxBodyBytes int
	// TCPMaxConnections caps SIP connections open at once over TCP and TLS
	// together (sip.limits.tcp_max_connections); it is further held to half
	// of Budget. A connection over it is closed as soon as it is accepted.
	TCPMaxConnections int
	// TCPMaxConnectionsPerSource caps those from one IP address
	// (sip.limits.tcp_max_connections_per_source). An SBC or proxy carries
	// many phones over few connections, but every phone behind a NAT that
	// uses TCP has one of its own: the default, 256, leaves room for both.
	TCPMaxConnectionsPerSource int
	// TCPIdleTimeout closes a TCP or TLS connection from which nothing was
	// read for this long (sip.limits.tcp_idle_timeout). A subscribed phone
	// sends at least a refreshing SUBSCRIBE before its subscription expires
	// (at most MaxExpires), and more often answers NOTIFYs and OPTIONS
	// pings or sends CRLF keep-alives (RFC 5626 §3.5.1), so the default,
	// 65 minutes, is longer than the default MaxExpires: an honest phone is
	// never cut, a vanished one or an idle attacker's is, in time.
	TCPIdleTimeout time.Duration
	// Budget is the process's descriptor budget shared with the other
	// listeners (nil: none); not reloaded.
	Budget *netguard.Budget

	// NotifyPerFeature sends the full state as one NOTIFY per feature instead
	// of one multipart/mixed NOTIFY (sip.notify_per_feature, default false).
	NotifyPerFeature bool
	// AgentState includes the agent state in as-feature-event NOTIFYs
	// (sip.agent_state, default true).
	AgentState bool

	// OptionsInterval is how often phones are pinged with OPTIONS (0 = never;
	// sip.liveness.options_interval, default 15 s); LivenessTimeout is the
	// silence after which a phone is out of service (default 30 s).
	OptionsInterval, LivenessTimeout time.Duration

	// StateFile persists UDP subscription dialogs across restarts ("" = off)
	// in a file of their own; Dialogs, when set, keeps them in the
	// connector's store instead (sip.persist_dialogs).
	StateFile string
	Dialogs   DialogStore

	// RequestTimeout bounds each Service call (sip.request_timeout, 5 s).
	RequestTimeout time.Duration

	// Presence, when PBX is set, subscribes to the PBX's presence for DNs.
	Presence PresenceConfig
}

// PresenceConfig is sip.presence.*.
type PresenceConfig struct {
	PBX     string        // host:port of the PBX (sip.presence.pbx); "" = off
	DNs     []string      // presentities to watch (sip.presence.dns)
	Expires time.Duration // requested subscription time (default 3600 s)
}

// DefaultConfig is the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Listen:           "127.0.0.1:5060",
		Realm:            "BroadWorks",
		RequireAuth:      true,
		MinExpires:       60 * time.Second,
		MaxExpires:       3600 * time.Second,
		DefaultExpires:   3600 * time.Second,
		MaxSubscriptions: 50000,

		MaxSubscriptionsPerLine: 8,
		SubscribeRate:           20,
		SubscribeBurst:          40,
		MaxBodyBytes:            16 << 10,
		AgentState:              true,
		OptionsInterval:         15 * time.Second,
		LivenessTimeout:         30 * time.Second,
		RequestTimeout:          5 * time.Second,
		Presence:                PresenceConfig{Expires: 3600 * time.Second},

		TCPMaxConnections:          10000,
		TCPMaxConnectionsPerSource: 256,
		TCPIdleTimeout:             65 * time.Minute,
	}
}
