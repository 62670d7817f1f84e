package connector

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/internal/udpphones"
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
	// The default TTL: a renewal through a real database on a loaded
	// machine (the whole suite under -race) may take longer than a
	// second's TTL allows, and the active would be deposed mid-test.
	cfg.HA.LeaseTTL = 3 * time.Second
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

// TestPairKeepsUDPPhones: a UDP phone subscribed to the active is
// NOTIFYed by the instance that takes over, on its dialog as the store
// kept it (the snapshot belongs to the channel set), without subscribing
// again.
func TestPairKeepsUDPPhones(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	sim := sharedSimulator(t)
	phoneConfig := func(id string) *config.Config {
		cfg := pgPairConfig(t, sim, id, dsn)
		cfg.SIP.Auth.Required = false // the light phones do not answer digest challenges
		return cfg
	}
	a := start(t, phoneConfig("a"))
	waitUntil(t, "a active", func() bool { return a.Role() == ha.RoleActive })
	awaitReady(t, a)

	var notifies atomic.Int64
	phones, err := udpphones.Start(udpphones.Config{N: 1, Server: a.SIPAddr(), DN: func(int) string { return "desk1" },
		Tag: "pair", Notify: func(udpphones.Notify) { notifies.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer phones.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := phones.SubscribeAll(ctx); err != nil {
		t.Fatalf("the phone's subscription to a: %v (rejected %d)", err, phones.Rejected())
	}
	// The dialog is in the channel set's snapshot before a dies.
	kept, err := postgres.Open(t.Context(), dsn, postgres.Options{ChannelSet: "connector-1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	waitUntil(t, "the phone's dialog in the store", func() bool {
		snap, err := kept.SIPDialogs().LoadDialogs()
		return err == nil && strings.Contains(string(snap), "pair-0")
	})
	b := start(t, phoneConfig("b"))
	waitUntil(t, "b standing by", func() bool { return b.Role() == ha.RoleStandby })
	if err := a.Crash(); err != nil {
		t.Fatal(err)
	}
	before := notifies.Load()
	waitUntil(t, "b active", func() bool { return b.Role() == ha.RoleActive })
	// b resynchronises the restored dialog with the full state, and a
	// change made through b reaches the phone too.
	waitUntil(t, "a NOTIFY from b on the kept dialog", func() bool { return notifies.Load() > before })
	after := notifies.Load()
	cl := dial(t, b)
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login through b: %v", err)
	}
	waitUntil(t, "the login's NOTIFY from b", func() bool { return notifies.Load() > after })
	if n := phones.Rejected(); n != 0 {
		t.Errorf("%d SUBSCRIBEs rejected", n)
	}
}
