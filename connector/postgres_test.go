package connector

import (
	"context"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/internal/promtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConnectorOnPostgres: with store.driver postgres the connector keeps
// its journal in PostgreSQL (store.path unused): a login's association is
// there, for this connector and for the next one on the same database,
// and the store's metrics are the ones the bbolt store has.
func TestConnectorOnPostgres(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	cfg := testConfig(t.TempDir())
	cfg.Store.Driver, cfg.Store.Path = config.StorePostgres, ""
	cfg.Store.Postgres.DSN = dsn
	cfg.SIP.PersistDialogs = true
	c := start(t, cfg)
	awaitReady(t, c)
	if c.cluster == nil {
		t.Fatal("no cluster (lease, instances) on the postgres store")
	}
	cl := dial(t, c)
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login: %v", err)
	}
	waitAtDesk := func(c *Connector) {
		t.Helper()
		for {
			a, found, err := c.store.Journal().AtDesk(t.Context(), "desk1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if found && a.AgentID == "agent1" {
				return
			}
			select {
			case <-t.Context().Done():
				t.Fatal("the login never reached the journal")
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitAtDesk(c)
	got := promtest.Scrape(t, c.store.Collectors()...)
	if got["connector_store_write_seconds_count"] < 1 || got["connector_store_commits_total"] < 1 {
		t.Errorf("store metrics after a login: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The next connector (its embedded simulator starts empty, so it ends
	// the association as unseen) answers from the same journal.
	again := start(t, cfg)
	awaitReady(t, again)
	as, err := again.store.Journal().DeskBetween(t.Context(), "desk1", time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(as) != 1 || as[0].AgentID != "agent1" {
		t.Fatalf("the next connector's journal at desk1: %+v, %v; want agent1's association", as, err)
	}
}
