package xsi

import "time"

// Target is what a subscription watches: one user, or every user of a
// group, enterprise or service provider (research/xsi.md §3.2.2).
type Target struct {
	Kind     string // KindUser, KindGroup, KindEnterprise or KindServiceProvider
	ID       string // user ID (user@domain), group ID, enterprise or service provider ID
	ParentID string // a group's service provider / enterprise, required for KindGroup
}

// Config is what the XSI link needs; cmd/connector builds it from the typed
// application config. Durations and counts must be positive.
type Config struct {
	Servers         []string // XSP base URLs, e.g. http://127.0.0.1:8090; one channel per server
	Username        string   // the BroadWorks admin credential the connector acts with
	Password        string
	ChannelSetID    string // stable per connector instance
	ApplicationID   string // stable per connector instance
	ProtocolVersion string // optional X-BroadWorks-Protocol-Version header, e.g. "22.0"

	// Actions limits, per XSP.
	RequestTimeout time.Duration // deadline of one Actions call, retries included
	MaxInFlight    int           // concurrent requests
	RateLimit      float64       // requests per second (token bucket)
	RateBurst      int
	MaxRetries     int // for GET and PUT only

	// Events channel.
	HeartbeatInterval   time.Duration // 15 s; the read watchdog is 3 of these
	ChannelExpires      time.Duration // requested channel expiry (the XSP may grant another)
	SubscriptionExpires time.Duration // requested subscription expiry
	ReconnectMin        time.Duration // first reconnect backoff
	ReconnectMax        time.Duration // backoff cap
	// Targets are subscribed one subscription per event package (user
	// targets: user-scoped credentials, users outside every scope).
	Targets []Target
	// Scopes (group, enterprise or service provider) get one subscription
	// each with an eventPackageList of EventPackages, or one per package
	// when the XSP refuses the list with 400 (see ScopeStatus).
	Scopes        []Target
	EventPackages []string // e.g. "Call Center Agent", "Call Forwarding Always", "Do Not Disturb", "Hoteling Guest"
	// MaxWatchedUsers bounds Events.WatchUser; 0 means DefaultMaxWatchedUsers.
	MaxWatchedUsers int
}

// DefaultConfig is what config.example.yaml documents (servers and
// credentials aside).
func DefaultConfig() Config {
	return Config{
		ChannelSetID:        "connector-1",
		ApplicationID:       "connector",
		RequestTimeout:      10 * time.Second,
		MaxInFlight:         32,
		RateLimit:           200,
		RateBurst:           50,
		MaxRetries:          3,
		HeartbeatInterval:   15 * time.Second,
		ChannelExpires:      3600 * time.Second,
		SubscriptionExpires: 3600 * time.Second,
		ReconnectMin:        time.Second,
		ReconnectMax:        60 * time.Second,
		MaxWatchedUsers:     DefaultMaxWatchedUsers,
		EventPackages:       []string{"Call Center Agent", "Call Forwarding Always", "Call Forwarding Busy", "Call Forwarding No Answer", "Do Not Disturb", "Hoteling Guest"},
	}
}
