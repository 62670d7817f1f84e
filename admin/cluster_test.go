package admin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
)

type fakeCluster struct {
	instances []admin.ClusterInstance
	err       error
}

func (f fakeCluster) Instances(context.Context) ([]admin.ClusterInstance, error) {
	return f.instances, f.err
}

func TestClusterRoute(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	lease := &admin.ClusterLease{Holder: "a", Token: 7, Expires: at.Add(3 * time.Second)}
	pair := fakeCluster{instances: []admin.ClusterInstance{
		{ID: "a", ChannelSet: "connector-1", Role: "active", Scope: []string{"group:grp1@ent1"}, Admin: "http://10.0.0.1:8080/",
			Health: "ok", Started: at, Seen: at, Lease: lease},
		{ID: "b", ChannelSet: "connector-1", Role: "standby", Scope: []string{"group:grp1@ent1"}, Health: "standby",
			Started: at, Seen: at, Self: true, Lease: lease},
	}}
	_, c := startAPI(t, admin.WithSource(demoSource()), admin.WithCluster(pair))
	_, none := startAPI(t, admin.WithSource(demoSource()))
	_, empty := startAPI(t, admin.WithSource(demoSource()), admin.WithCluster(fakeCluster{}))
	_, failing := startAPI(t, admin.WithSource(demoSource()), admin.WithCluster(fakeCluster{err: errors.New("store: connection refused")}))
	tests := []struct {
		name   string
		client *client
		status int
		want   string
	}{
		{"a pair", c, 200, `[
			{"id":"a","channelSet":"connector-1","role":"active","scope":["group:grp1@ent1"],"admin":"http://10.0.0.1:8080/","health":"ok",
			 "started":"2026-12-07T10:00:00Z","seen":"2026-12-07T10:00:00Z","self":false,
			 "lease":{"holder":"a","token":7,"expires":"2026-12-07T10:00:03Z"}},
			{"id":"b","channelSet":"connector-1","role":"standby","scope":["group:grp1@ent1"],"health":"standby",
			 "started":"2026-12-07T10:00:00Z","seen":"2026-12-07T10:00:00Z","self":true,
			 "lease":{"holder":"a","token":7,"expires":"2026-12-07T10:00:03Z"}}]`},
		{"no cluster view", none, 501, `{"error":"no cluster view configured"}`},
		{"nobody reported", empty, 200, `[]`},
		{"store down", failing, 503, `{"error":"cluster query failed: the store did not answer"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.client.do("GET", "/api/v1/cluster", testToken, "")
			if resp.StatusCode != tt.status || !jsonEqual(t, body, tt.want) {
				t.Errorf("= %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
			if resp, _ := tt.client.do("GET", "/api/v1/cluster", "", ""); resp.StatusCode != 401 {
				t.Errorf("without the token: %d, want 401", resp.StatusCode)
			}
		})
	}
}
