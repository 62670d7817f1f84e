package phonesync

import "errors"

// limits are the sip.limits a reload changes while the server runs.
type limits struct {
	maxSubscriptions int
	maxPerLine       int
	maxBodyBytes     int
}

func limitsOf(cfg Config) *limits {
	return &limits{maxSubscriptions: cfg.MaxSubscriptions, maxPerLine: cfg.MaxSubscriptionsPerLine, maxBodyBytes: cfg.MaxBodyBytes}
}

func (s *Server) limits() limits { return *s.live.Load() }

// Reload applies the limits of cfg (MaxSubscriptions, MaxSubscriptionsPerLine, SubscribeRate,
// SubscribeBurst, MaxBodyBytes, TCPMaxConnections,
// TCPMaxConnectionsPerSource, TCPIdleTimeout) to the running server
// (SIGHUP). Phones already subscribed stay, even above a lowered
// MaxSubscriptions or MaxSubscriptionsPerLine; the cap applies to new dialogs; every source's
// SUBSCRIBE bucket starts full at the new rate. TCP connections already
// open stay, even above lowered caps; a new idle timeout applies from each
// connection's next read. Every other field of cfg is ignored: listeners,
// TLS, credentials, lifetimes and the state file are fixed at NewServer.
func (s *Server) Reload(cfg Config) error {
	def := DefaultConfig()
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = def.MaxSubscriptions
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxSubscriptionsPerLine <= 0 {
		cfg.MaxSubscriptionsPerLine = def.MaxSubscriptionsPerLine
	}
	if (cfg.SubscribeRate > 0) != (s.limiter != nil) {
		return errors.New("phonesync: turning the SUBSCRIBE rate limit on or off needs a restart")
	}
	if s.limiter != nil {
		s.limiter.setRate(cfg.SubscribeRate, cfg.SubscribeBurst)
	}
	s.live.Store(limitsOf(cfg))
	cfg = withTCPDefaults(cfg)
	s.tcpGate.SetLimits(tcpLimits(cfg))
	s.log.Info("SIP limits reloaded", "max_subscriptions", cfg.MaxSubscriptions, "max_subscriptions_per_line", cfg.MaxSubscriptionsPerLine, "subscribe_rate", cfg.SubscribeRate,
		"subscribe_burst", cfg.SubscribeBurst, "max_body_bytes", cfg.MaxBodyBytes,
		"tcp_max_connections", cfg.TCPMaxConnections, "tcp_max_connections_per_source", cfg.TCPMaxConnectionsPerSource,
		"tcp_idle_timeout", cfg.TCPIdleTimeout)
	return nil
}
