package connector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/memcluster"
	"github.com/broadworks-connector/connector/internal/testtool"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// An active/standby pair assembled twice on one simulator, the lease in
// internal/memcluster (each connector keeps its own bbolt file: what the
// pair shares in production, the PostgreSQL store, is tested with the
// store; here the lease, the listeners and the take-over are).

const pairToken = "pair-admin-token-0123456789"

// sharedSimulator is one XSP simulator both instances talk to.
func sharedSimulator(t *testing.T) *xspsim.Server {
	t.Helper()
	sim, err := StartSimulator(testConfig(t.TempDir()), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		sim.Shutdown(ctx)
	})
	return sim
}

// freePort is a loopback address nobody listens on (a standby's CSTA
// listener must stay closed on its configured port).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func pairConfig(t *testing.T, sim *xspsim.Server, id string) *config.Config {
	cfg := testConfig(t.TempDir())
	cfg.XSILink.Simulate = false
	cfg.XSILink.Servers = []string{sim.URL()}
	cfg.CSTAFrontEnd.Listen = freePort(t)
	cfg.Admin.Token = pairToken
	cfg.HA = config.HA{Mode: config.HAActiveStandby, InstanceID: id, LeaseTTL: time.Second, HeartbeatInterval: 100 * time.Millisecond}
	return cfg
}

// startPair starts an instance; Shutdown at the end unless the test did.
func startInstance(t *testing.T, sim *xspsim.Server, db *memcluster.DB, id string) (*Connector, *memcluster.Cluster) {
	t.Helper()
	conn := db.Connect()
	return start(t, pairConfig(t, sim, id), WithCluster(conn)), conn
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 30*time.Second, what, cond)
}

// adminGet asks c's admin server for path with the pair's token.
func adminGet(t *testing.T, c *Connector, path string) (int, string) {
	t.Helper()
	return adminGetAs(t, c, path, pairToken)
}

// adminGetAs asks c's admin server for path with bearer ("": none).
func adminGetAs(t *testing.T, c *Connector, path, bearer string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+c.AdminAddr()+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func cstaClosed(t *testing.T, c *Connector) bool {
	conn, err := net.DialTimeout("tcp", c.Config().CSTAFrontEnd.Listen, time.Second)
	if err == nil {
		conn.Close()
		return false
	}
	return true
}

func TestPairStandbyServesNothingButAdmin(t *testing.T) {
	sim := sharedSimulator(t)
	db := memcluster.New()
	a, _ := startInstance(t, sim, db, "a")
	waitUntil(t, "a active", func() bool { return a.Role() == ha.RoleActive })
	awaitReady(t, a)
	b, _ := startInstance(t, sim, db, "b")
	waitUntil(t, "b's heartbeat", func() bool { _, ok := db.Instance("b"); return ok })
	// a reports its new role at once (ha.Report), not a heartbeat later.
	waitUntil(t, "a's heartbeat as active", func() bool { in, ok := db.Instance("a"); return ok && in.Role == string(ha.RoleActive) })

	if b.Role() != ha.RoleStandby {
		t.Fatalf("b: role %s", b.Role())
	}
	if code, body := adminGet(t, b, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "standby" {
		t.Errorf("b's /readyz: %d %q, want 503 standby", code, body)
	}
	if !cstaClosed(t, b) || b.CSTAAddr() != "" {
		t.Error("b's CSTA listener is open")
	}
	if b.SIPAddr() != "" {
		t.Error("b's SIP listener is open")
	}
	if code, _ := adminGet(t, b, "/csta"); code != http.StatusServiceUnavailable {
		t.Errorf("b's CSTA WebSocket: %d, want 503", code)
	}
	if code, _ := adminGet(t, a, "/readyz"); code != http.StatusOK {
		t.Errorf("a's /readyz: %d", code)
	}
	code, body := adminGet(t, b, "/api/v1/cluster")
	var insts []admin.ClusterInstance
	if err := json.Unmarshal([]byte(body), &insts); code != http.StatusOK || err != nil {
		t.Fatalf("cluster: %d %s (%v)", code, body, err)
	}
	roles := map[string]string{}
	for _, in := range insts {
		roles[in.ID] = in.Role
		if in.Lease == nil || in.Lease.Holder != "a" || in.Lease.Token != 1 {
			t.Errorf("%s: lease %+v, want a's, token 1", in.ID, in.Lease)
		}
		if in.Self != (in.ID == "b") {
			t.Errorf("%s: self %v", in.ID, in.Self)
		}
	}
	if roles["a"] != "active" || roles["b"] != "standby" {
		t.Errorf("cluster roles %v", roles)
	}
	code, body = adminGet(t, b, "/metrics")
	for _, want := range []string{`connector_ha_role{role="standby"} 1`, "connector_ha_takeovers_total 0", "connector_ha_lease_token 0"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("b's metrics lack %q", want)
		}
	}
}

// TestPairTakeOver: the active dies (a crash: the lease is left to expire),
// is shut down cleanly (the lease released), or loses the store (deposed);
// the standby then serves CSTA on its port, and the old active's fence
// writes nothing more.
func TestPairTakeOver(t *testing.T) {
	for _, how := range []string{"crash", "shutdown", "deposed"} {
		t.Run(how, func(t *testing.T) {
			sim := sharedSimulator(t)
			db := memcluster.New()
			a, aConn := startInstance(t, sim, db, "a")
			waitUntil(t, "a active", func() bool { return a.Role() == ha.RoleActive })
			awaitReady(t, a)
			b, _ := startInstance(t, sim, db, "b")
			cl := dial(t, a)
			if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
				t.Fatalf("login through a: %v", err)
			}

			switch how {
			case "crash":
				if err := a.Crash(); err != nil {
					t.Fatal(err)
				}
			case "shutdown":
				ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
				defer cancel()
				if err := a.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				if l, _ := db.Lease("connector-1"); l.Expires.After(time.Now()) {
					t.Errorf("a clean shutdown left the lease until %v", l.Expires)
				}
			case "deposed":
				aConn.Stall()
				select {
				case <-a.Done():
				case <-time.After(30 * time.Second):
					t.Fatal("a not deposed")
				}
				if !errors.Is(a.Err(), ErrDeposed) {
					t.Errorf("a.Err() = %v", a.Err())
				}
				if code, body := adminGet(t, a, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "deposed" {
					t.Errorf("a's /readyz: %d %q", code, body)
				}
				if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqNotReady, "agent1", ""); err == nil {
					t.Error("a deposed active answered a CTI request")
				}
				ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
				defer cancel()
				a.Shutdown(ctx)
			}

			waitUntil(t, "b active", func() bool { return b.Role() == ha.RoleActive })
			awaitReady(t, b)
			if l, _ := db.Lease("connector-1"); l.Holder != "b" || l.Token != 2 {
				t.Errorf("lease %+v, want b's, token 2", l)
			}
			aConn.Heal()
			if err := aConn.Write(t.Context(), "stale"); !errors.Is(err, store.ErrFenced) {
				t.Errorf("a's write under its old fence: %v, want ErrFenced", err)
			}
			cl2 := dial(t, b)
			if _, err := cl2.SetAgentState(t.Context(), "desk2", csta.ReqLoggedOn, "agent2", ""); err != nil {
				t.Fatalf("login through b: %v", err)
			}
			snap, err := sim.Snapshot("agent2@example.com")
			if err != nil || snap.GuestHostID != "desk2@example.com" {
				t.Errorf("agent2 at %q (%v), want desk2", snap.GuestHostID, err)
			}
			// b serves what a did: agent1, named, is read from BroadWorks at
			// desk1 and made Ready there. (The instances here share the
			// lease only; with one store, as in production, b also reads at
			// once the agents the journal has at desks: TestJournalReconcileReads.)
			if _, err := cl2.SetAgentState(t.Context(), "desk1", csta.ReqReady, "agent1", ""); err != nil {
				t.Errorf("agent1 Ready at desk1 through b: %v", err)
			}
			if v := b.Gateway().User("agent1@example.com"); v.HostUserID != "desk1@example.com" || v.ACDState != xsi.ACDAvailable {
				t.Errorf("b's view of agent1: %s at %q, want Available at desk1", v.ACDState, v.HostUserID)
			}
		})
	}
}

// TestClusterViewStandalone: on the embedded store /api/v1/cluster is this
// instance alone; standalone instances on a shared store (scale-out by
// scope) report themselves there and each lists all.
func TestClusterViewStandalone(t *testing.T) {
	sim := sharedSimulator(t)
	cfg := pairConfig(t, sim, "")
	cfg.HA = config.HA{Mode: config.HAStandalone, LeaseTTL: time.Second, HeartbeatInterval: 100 * time.Millisecond}
	alone := start(t, cfg)
	code, body := adminGet(t, alone, "/api/v1/cluster")
	var insts []admin.ClusterInstance
	if err := json.Unmarshal([]byte(body), &insts); code != http.StatusOK || err != nil || len(insts) != 1 {
		t.Fatalf("cluster: %d %s (%v)", code, body, err)
	}
	if in := insts[0]; in.ID != cfg.InstanceName() || in.Role != "standalone" || !in.Self || in.Lease != nil || in.ChannelSet != "connector-1" {
		t.Errorf("alone: %+v", in)
	}

	db := memcluster.New()
	var shards []*Connector
	for i, scope := range []string{"group:grp1@ent1", "group:grp2@ent1"} {
		cfg := pairConfig(t, sim, []string{"east", "west"}[i])
		cfg.HA.Mode = config.HAStandalone
		cfg.XSILink.Scope = []string{scope}
		cfg.XSILink.ChannelSetID = "connector-" + cfg.HA.InstanceID
		shards = append(shards, start(t, cfg, WithCluster(db.Connect())))
	}
	waitUntil(t, "both shards' heartbeats", func() bool {
		_, east := db.Instance("east")
		_, west := db.Instance("west")
		return east && west
	})
	code, body = adminGet(t, shards[1], "/api/v1/cluster")
	insts = nil
	if err := json.Unmarshal([]byte(body), &insts); code != http.StatusOK || err != nil || len(insts) != 2 {
		t.Fatalf("cluster: %d %s (%v)", code, body, err)
	}
	if insts[0].ID != "east" || insts[0].Scope[0] != "group:grp1@ent1" || insts[0].Self || insts[0].Role != "standalone" ||
		insts[1].ID != "west" || !insts[1].Self || insts[1].Lease != nil {
		t.Errorf("cluster %+v", insts)
	}
}

// TestStartFailsWhenSIPPortIsTaken: a start that fails after the link is
// up (phone sync cannot bind) stops what it started and returns the error,
// standalone and in a pair taking over (then Done tells why).
func TestStartFailsWhenSIPPortIsTaken(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t.TempDir())
	cfg.SIP.Listen = taken.LocalAddr().String()
	c, err := New(cfg, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start: %v, want address already in use", err)
	}

	sim := sharedSimulator(t)
	db := memcluster.New()
	pcfg := pairConfig(t, sim, "a")
	pcfg.SIP.Listen = taken.LocalAddr().String()
	p := start(t, pcfg, WithCluster(db.Connect()))
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a take-over that cannot bind sip.listen did not end")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "taking over") {
		t.Errorf("Err() = %v", err)
	}
}
