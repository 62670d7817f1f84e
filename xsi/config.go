package xsi

import "time"

// Target is what a subscription watches: one user, or every user of a group
// or enterprise (research/xsi.md §3.2).
type Target struct {
	Kind     string // "user", "group" or "enterprise"
	ID       string // user ID (user@domain), group ID or enterprise ID
	ParentID string // a group's service provider / enterprise, required for "group"
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
	Targets             []Target
	EventPackages       []string // e.g. "Call Center Agent", "Call Forwarding Always", "Do Not Disturb", "Hoteling Guest"
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
		EventPackages:       []string{"Call Center Agent", "Call Forwarding Always", "Call Forwarding Busy", "Call Forwarding No Answer", "Do Not Disturb", "Hoteling Guest"},
	}
}
