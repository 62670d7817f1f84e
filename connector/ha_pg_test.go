package connector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/store/postgres"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// pgPairConfig is pairConfig on the shared PostgreSQL store dsn.
func pgPairConfig(t *testing.T, sim *xspsim.Server, id, dsn string) *config.Config {
	cfg := pairConfig(t, sim, id)
	cfg.Store.Driver = config.StorePostgres
	cfg.Store.Postgres.DSN = dsn
	cfg.SIP.PersistDialogs = true
	return cfg
}

// TestPairOnPostgres: two connectors assembled from configurations with
// store.driver postgres and ha.mode active-standby on one throwaway
// PostgreSQL: the first is active, the second stands by with its CSTA
// port closed and answers journal queries from the shared store; the
// first crashes, the second takes over, serves CSTA and answers for what
// the first did; a write under the first's fence is refused.
func TestPairOnPostgres(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	sim := sharedSimulator(t)
	a := start(t, pgPairConfig(t, sim, "a", dsn))
	waitUntil(t, "a active", func() bool { return a.Role() == ha.RoleActive })
	awaitReady(t, a)
	aLease, _ := a.ha.elector.Lease()
	b := start(t, pgPairConfig(t, sim, "b", dsn))
	waitUntil(t, "b's heartbeat", func() bool {
		_, body := adminGet(t, b, "/api/v1/cluster")
		return strings.Count(body, `"id"`) == 2
	})
	if code, body := adminGet(t, b, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "standby" {
		t.Errorf("b's /readyz: %d %q, want 503 standby", code, body)
	}
	if !cstaClosed(t, b) {
		t.Error("b's CSTA port is open")
	}
	cl := dial(t, a)
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login through a: %v", err)
	}
	journalOf := func(c *Connector) string {
		from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		_, body := adminGet(t, c, "/api/v1/journal/agent/agent1?from="+from+"&to="+to)
		return body
	}
	// The standby answers from the shared journal what the active recorded.
	waitUntil(t, "agent1 in the journal, asked of b", func() bool { return strings.Contains(journalOf(b), `"deviceId":"desk1"`) })

	if err := a.Crash(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b active", func() bool { return b.Role() == ha.RoleActive })
	awaitReady(t, b)
	bLease, _ := b.ha.elector.Lease()
	if bLease.Holder != "b" || bLease.Token != aLease.Token+1 {
		t.Fatalf("b's lease %+v after a's %+v", bLease, aLease)
	}
	stale, err := postgres.Open(t.Context(), dsn, postgres.Options{ChannelSet: "connector-1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	stale.SetFence(store.Fence{Name: aLease.Name, Holder: aLease.Holder, Token: aLease.Token})
	if err := stale.Intents().Put("agent1@example.com", "probe", []byte("stale")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a write under a's fence: %v, want ErrFenced", err)
	}
	cl2 := dial(t, b)
	if _, err := cl2.SetAgentState(t.Context(), "desk2", csta.ReqLoggedOn, "agent2", ""); err != nil {
		t.Fatalf("login through b: %v", err)
	}
	if snap, err := sim.Snapshot("agent2@example.com"); err != nil || snap.GuestHostID != "desk2@example.com" {
		t.Errorf("agent2 at %q (%v), want desk2", snap.GuestHostID, err)
	}
	if body := journalOf(b); !strings.Contains(body, `"deviceId":"desk1"`) {
		t.Errorf("b's journal for agent1: %s", body)
	}
	code, body := adminGet(t, b, "/api/v1/cluster")
	var insts []admin.ClusterInstance
	if err := json.Unmarshal([]byte(body), &insts); code != http.StatusOK || err != nil || len(insts) != 2 {
		t.Fatalf("cluster: %d %s (%v)", code, body, err)
	}
	for _, in := range insts {
		if in.Lease == nil || in.Lease.Holder != "b" || in.Lease.Token != bLease.Token {
			t.Errorf("%s: lease %+v", in.ID, in.Lease)
		}
	}
	if insts[1].ID != "b" || insts[1].Role != "active" || !insts[1].Self {
		t.Errorf("b in the cluster view: %+v", insts[1])
	}
}
