package config

import (
	"net"
	"os"
	"regexp"
	"time"
)

// HA configures how instances share the work (issue 18). standalone: this
// instance serves alone. active-standby: instances with the same
// xsi.channel_set_id on one PostgreSQL store share a lease; the holder
// serves CSTA, SIP and the XSI channel set, the others stand by with their
// listeners closed and take over when the lease passes to them.
type HA struct {
	Mode string `mapstructure:"mode"` // standalone | active-standby
	// InstanceID names this instance in the lease and in /api/v1/cluster;
	// unique among the instances sharing the store and stable across
	// restarts. Required in active-standby (a name derived from the host
	// could collide, e.g. in containers that share a hostname); standalone:
	// empty means hostname-<admin port> (InstanceName).
	InstanceID string `mapstructure:"instance_id"`
	// LeaseTTL is how long a lease holds without a renewal: a dead active
	// is replaced about LeaseTTL after its last renewal, and a deposed one
	// stops serving before that.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
	// HeartbeatInterval is how often the instance reports its role and
	// health to the store (/api/v1/cluster).
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
}

// HA modes.
const (
	HAStandalone    = "standalone"
	HAActiveStandby = "active-standby"
)

func defaultHA() HA {
	return HA{Mode: HAStandalone, LeaseTTL: 3 * time.Second, HeartbeatInterval: time.Second}
}

// Bounds of ha.lease_ttl: below a second a database hiccup deposes the
// active; above a minute a dead active leaves everyone waiting too long.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = time.Minute
)

var instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func validateHA(ps *problems, c *Config) {
	h := c.HA
	switch h.Mode {
	case HAStandalone:
	case HAActiveStandby:
		if c.Store.Driver != StorePostgres {
			ps.add("ha.mode", "active-standby needs store.driver: postgres (the lease and the shared state live there), got store.driver %q", c.Store.Driver)
		}
		if h.InstanceID == "" {
			ps.add("ha.instance_id", "required when ha.mode is active-standby: a name unique among the instances sharing the store")
		}
	default:
		ps.add("ha.mode", "must be one of standalone, active-standby, got %q", h.Mode)
	}
	if h.InstanceID != "" && !instanceIDPattern.MatchString(h.InstanceID) {
		ps.add("ha.instance_id", "must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit, got %q", h.InstanceID)
	}
	if h.LeaseTTL < MinLeaseTTL || h.LeaseTTL > MaxLeaseTTL {
		ps.add("ha.lease_ttl", "must be from %s to %s, got %s", MinLeaseTTL, MaxLeaseTTL, h.LeaseTTL)
	}
	if h.HeartbeatInterval < 100*time.Millisecond || h.HeartbeatInterval > time.Minute {
		ps.add("ha.heartbeat_interval", "must be from 100ms to 1m0s, got %s", h.HeartbeatInterval)
	}
}

// ActiveStandby reports whether this instance shares a lease with others.
func (c *Config) ActiveStandby() bool { return c.HA.Mode == HAActiveStandby }

// InstanceName is ha.instance_id, or for a standalone instance without one
// the host name and the admin port (hostname-8080).
func (c *Config) InstanceName() string {
	if c.HA.InstanceID != "" {
		return c.HA.InstanceID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "connector"
	}
	if _, port, err := net.SplitHostPort(c.Admin.Listen); err == nil {
		return host + "-" + port
	}
	return host
}
