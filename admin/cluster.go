package admin

import (
	"context"
	"net/http"
	"time"
)

// ClusterInstance is one connector instance as /api/v1/cluster lists it:
// what it reported last (its heartbeat) and, for the instances of a pair,
// the lease of its channel set.
type ClusterInstance struct {
	ID         string    `json:"id"`
	ChannelSet string    `json:"channelSet"`
	Role       string    `json:"role"` // standalone, active, standby, stopping, deposed
	Scope      []string  `json:"scope"`
	Admin      string    `json:"admin,omitempty"` // its admin URL
	Health     string    `json:"health"`          // ok, or why not (as its /readyz says)
	Started    time.Time `json:"started"`
	Seen       time.Time `json:"seen"` // its last heartbeat, on the store's clock
	Self       bool      `json:"self"` // the instance answering
	// Lease is the lease of its channel set, when one was ever held.
	Lease *ClusterLease `json:"lease,omitempty"`
}

// ClusterLease is who holds a channel set's lease, under which fencing
// token, until when (on the store's clock).
type ClusterLease struct {
	Holder  string    `json:"holder"`
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
}

// Cluster lists the instances sharing this instance's store.
type Cluster interface {
	Instances(ctx context.Context) ([]ClusterInstance, error)
}

// WithCluster answers /api/v1/cluster; without one it answers 501.
func WithCluster(c Cluster) Option {
	return func(s *Server) { s.cluster = c }
}

const clusterTimeout = 5 * time.Second

func (s *Server) listCluster(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		writeError(w, http.StatusNotImplemented, "no cluster view configured", "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	instances, err := s.cluster.Instances(ctx)
	if err != nil {
		s.logger.Error("admin: cluster query failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "cluster query failed: the store did not answer", "")
		return
	}
	if instances == nil {
		instances = []ClusterInstance{}
	}
	writeJSON(w, http.StatusOK, instances)
}
