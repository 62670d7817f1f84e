package connector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/store/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPostgres opens the store on dsn for one instance of the pair,
// closed at the end of the test (after the connectors using it).
func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn, postgres.Options{ChannelSet: "connector-1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPairOnPostgres: the pair's lease, fence and heartbeats in a real
// PostgreSQL (a throwaway cluster): the first instance is active, the
// second stands by with its CSTA port closed; the first crashes, the
// second takes over and serves CSTA, and the first's stale fence cannot
// write.
func TestPairOnPostgres(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	stA, stB := openPostgres(t, dsn), openPostgres(t, dsn)
	sim := sharedSimulator(t)
	a := start(t, pairConfig(t, sim, "a"), WithCluster(stA))
	waitUntil(t, "a active", func() bool { return a.Role() == ha.RoleActive })
	awaitReady(t, a)
	b := start(t, pairConfig(t, sim, "b"), WithCluster(stB))
	waitUntil(t, "b's heartbeat", func() bool {
		insts, err := stB.Instances(t.Context())
		return err == nil && len(insts) == 2
	})
	if code, body := adminGet(t, b, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "standby" {
		t.Errorf("b's /readyz: %d %q, want 503 standby", code, body)
	}
	if !cstaClosed(t, b) {
		t.Error("b's CSTA port is open")
	}
	if err := stA.Intents().Put("agent1@example.com", "probe", []byte("a")); err != nil {
		t.Fatalf("a's write under its fence: %v", err)
	}
	cl := dial(t, a)
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login through a: %v", err)
	}

	if err := a.Crash(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b active", func() bool { return b.Role() == ha.RoleActive })
	awaitReady(t, b)
	l, ok, err := stB.LeaseOf(t.Context(), "connector-1")
	if err != nil || !ok || l.Holder != "b" || l.Token != 2 {
		t.Fatalf("lease %+v (%v, %v), want b's, token 2", l, ok, err)
	}
	if err := stA.Intents().Put("agent1@example.com", "probe", []byte("stale")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a's write under its old fence: %v, want ErrFenced", err)
	}
	if err := stB.Intents().Put("agent1@example.com", "probe", []byte("b")); err != nil {
		t.Errorf("b's write: %v", err)
	}
	cl2 := dial(t, b)
	if _, err := cl2.SetAgentState(t.Context(), "desk2", csta.ReqLoggedOn, "agent2", ""); err != nil {
		t.Fatalf("login through b: %v", err)
	}
	if snap, err := sim.Snapshot("agent2@example.com"); err != nil || snap.GuestHostID != "desk2@example.com" {
		t.Errorf("agent2 at %q (%v), want desk2", snap.GuestHostID, err)
	}
	code, body := adminGet(t, b, "/api/v1/cluster")
	var insts []admin.ClusterInstance
	if err := json.Unmarshal([]byte(body), &insts); code != http.StatusOK || err != nil || len(insts) != 2 {
		t.Fatalf("cluster: %d %s (%v)", code, body, err)
	}
	for _, in := range insts {
		if in.Lease == nil || in.Lease.Holder != "b" || in.Lease.Token != 2 {
			t.Errorf("%s: lease %+v", in.ID, in.Lease)
		}
	}
	if insts[1].ID != "b" || insts[1].Role != "active" || !insts[1].Self {
		t.Errorf("b in the cluster view: %+v", insts[1])
	}
}
