package connector

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
)

// testConfig is config.example.yaml's defaults (the embedded simulator with
// agent1..4 and desk1..2) with every listener on 127.0.0.1:0 and every file
// in dir.
func testConfig(dir string) *config.Config {
	cfg := config.Default()
	cfg.CSTAFrontEnd.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.XSPSimulator.Listen = "127.0.0.1:0"
	cfg.XSILink.ReconnectMin, cfg.XSILink.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.SIP.TLS.Listen = ""
	cfg.SIP.StateFile = ""
	cfg.HotDesks.StateFile = ""
	cfg.Journal.Path = ""
	cfg.Store.Path = filepath.Join(dir, "connector.db")
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	return slog.New(slog.DiscardHandler)
}

// start builds and starts a connector, stopped at the end of the test
// unless the test did.
func start(t *testing.T, cfg *config.Config, opts ...Option) *Connector {
	t.Helper()
	c, err := New(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return c
}

// awaitReady waits for the start-up repair pass and for readiness
// (/readyz's check: the link up and the scope subscribed, so that the XSI
// events confirming a hot-desk step arrive).
func awaitReady(t *testing.T, c *Connector) {
	t.Helper()
	giveUp := time.After(30 * time.Second)
	select {
	case <-c.StartupRepaired():
	case <-giveUp:
		t.Fatal("no start-up repair pass")
	}
	for {
		ok, reason := adminView{c}.ready()
		if ok {
			return
		}
		select {
		case <-giveUp:
			t.Fatalf("not ready: %s", reason)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func dial(t *testing.T, c *Connector) *cticlient.Client {
	t.Helper()
	cl, err := cticlient.Dial(t.Context(), c.CSTAAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// The whole connector from config.example.yaml's defaults: the start-up
// repair pass, a hot-desk login from a CTI client reaching the embedded
// simulator through the tapped event stream, the admin server, and a
// clean shutdown after which the same files open again.
func TestConnectorFromConfig(t *testing.T) {
	dir := t.TempDir()
	var events atomic.Int64
	c := start(t, testConfig(dir), WithEventTap(func(xsi.Event) { events.Add(1) }))
	awaitReady(t, c)
	<-c.StartupRepaired()
	if found := c.Gateway().Repairs(); len(found) != 0 {
		t.Fatalf("start-up recovery repaired %+v, want nothing", found)
	}
	if c.SIPAddr() == "" || c.Phones() == nil {
		t.Fatal("phone sync not started although sip.listen is set")
	}

	before := events.Load()
	cl := dial(t, c)
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login: %v", err)
	}
	snap, err := c.Simulator().Snapshot("agent1@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if snap.GuestHostID != "desk1@example.com" {
		t.Fatalf("agent1 associated with %q, want desk1@example.com", snap.GuestHostID)
	}
	// The login's changes come back as XSI events, each through the tap.
	for events.Load() == before {
		select {
		case <-t.Context().Done():
			t.Fatal("no XSI event through the tap")
		case <-time.After(10 * time.Millisecond):
		}
	}

	resp, err := http.Get("http://" + c.AdminAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The store (bbolt holds a file lock) was closed.
	again := start(t, testConfig(dir))
	awaitReady(t, again)
}

// A crash cuts BroadWorks off at once: the step it dies before never
// reaches the XSP, and the next connector's start-up pass undoes the
// half-done login it left.
func TestCrashThenStartupRepair(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	// The simulator outlives the crash, as BroadWorks outlives a
	// connector: both lives talk to it.
	sim, err := StartSimulator(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		sim.Shutdown(ctx)
	})
	cfg.XSILink.Simulate = false
	cfg.XSILink.Servers = []string{sim.URL()}

	c := start(t, cfg, WithCrashSimulation())
	awaitReady(t, c)
	if err := c.CrashBefore("AssociateGuest", "agent1@example.com"); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, c)
	// The login fails at the dead gate: its undo cannot reach BroadWorks
	// either, so the desk keeps forwarding to the agent.
	if _, err := cl.SetAgentState(t.Context(), "desk1", csta.ReqLoggedOn, "agent1", ""); err == nil {
		t.Fatal("login answered success although the connector died before associating")
	}
	if err := c.Crash(); err != nil {
		t.Fatalf("crash: %v", err)
	}
	if s, _ := sim.Snapshot("desk1@example.com"); !s.CFAActive {
		t.Fatal("the desk does not forward: the crash was not between the login's host CFA and association")
	}
	if s, _ := sim.Snapshot("agent1@example.com"); s.GuestHostID != "" {
		t.Fatalf("AssociateGuest reached BroadWorks after the crash: agent1 at %q", s.GuestHostID)
	}
	// The crashed connector closed the store (its lock is free) and wrote
	// nothing after the crash: desk1's own forwarding, remembered before
	// its CFA step, is still there for the next life to restore.
	st, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		t.Fatalf("the store after the crash: %v", err)
	}
	rs, err := st.Remembered().Load()
	st.Close()
	if err != nil || len(rs) != 1 || rs[0].HostUserID != "desk1@example.com" {
		t.Fatalf("remembered forwarding after the crash: %+v, %v; want desk1's", rs, err)
	}

	again := start(t, cfg)
	awaitReady(t, again)
	<-again.StartupRepaired()
	found := again.Gateway().Repairs()
	if len(found) != 1 || found[0].Err != nil || found[0].Kind != gateway.RepairOwed || found[0].User != "agent1@example.com" {
		t.Fatalf("start-up repairs %+v, want agent1's half-done login at desk1 undone", found)
	}
	if s, _ := sim.Snapshot("desk1@example.com"); s.CFAActive {
		t.Fatalf("desk1 still forwards to %q after the repair", s.CFANumber)
	}
}

// Crash and CrashBefore are refused without WithCrashSimulation: run never
// cuts itself off.
func TestCrashNeedsTheOption(t *testing.T) {
	c := start(t, testConfig(t.TempDir()))
	if err := c.Crash(); err == nil {
		t.Error("Crash without WithCrashSimulation succeeded")
	}
	if err := c.CrashBefore("SetAgentState", "agent1@example.com"); err == nil {
		t.Error("CrashBefore without WithCrashSimulation succeeded")
	}
}

// New releases what it built when a later part fails: the embedded
// simulator's port and the store's lock are free again.
func TestNewReleasesOnError(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Admin.TLS.CertFile = filepath.Join(dir, "missing.crt")
	cfg.Admin.TLS.KeyFile = filepath.Join(dir, "missing.key")
	if _, err := New(cfg, WithLogger(testLogger(t))); err == nil || !strings.Contains(err.Error(), "admin.tls") {
		t.Fatalf("New with a missing admin certificate: %v, want an admin.tls error", err)
	}
	c := start(t, testConfig(dir)) // the same journal file
	awaitReady(t, c)
}

// The first run: no admin token in the configuration and the admin server
// on 127.0.0.1 — a token is made for the run and the dashboard's URL logged
// with it once; the URL opens the dashboard and the token the API, nothing
// opens without it, and the next start makes another.
func TestFirstRunToken(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	c := start(t, testConfig(t.TempDir()), WithLogger(logger))
	url := c.DashboardURL()
	if !strings.HasPrefix(url, "http://"+c.AdminAddr()+"/?token=") || len(url) < len("http://"+c.AdminAddr()+"/?token=")+20 {
		t.Fatalf("dashboard URL %q", url)
	}
	mu.Lock()
	logged := strings.Count(logs.String(), url)
	mu.Unlock()
	if logged != 1 {
		t.Errorf("the dashboard URL logged %d times, want once", logged)
	}
	token := strings.TrimPrefix(url, "http://"+c.AdminAddr()+"/?token=")
	get := func(path, bearer string) (int, string) { t.Helper(); return adminGetAs(t, c, path, bearer) }
	if code, body := get(strings.TrimPrefix(url, "http://"+c.AdminAddr()), ""); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Errorf("the logged URL answered %d %.80q, want the dashboard", code, body)
	}
	if code, _ := get("/api/v1/agents", token); code != http.StatusOK {
		t.Errorf("/api/v1/agents with the token: %d", code)
	}
	if code, _ := get("/api/v1/agents", ""); code != http.StatusUnauthorized {
		t.Errorf("/api/v1/agents without a token: %d, want 401", code)
	}
	if code, _ := get("/metrics", "not-the-token-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", code)
	}

	again := start(t, testConfig(t.TempDir()), WithLogger(logger))
	if again.DashboardURL() == url {
		t.Error("the next start made the same token")
	}

	set := testConfig(t.TempDir())
	set.Admin.Token = "configured-token-0123456789"
	if u := start(t, set, WithLogger(logger)).DashboardURL(); u != "" {
		t.Errorf("a token made although admin.token is set: %q", u)
	}
}

// Only a loopback admin address gets a token made at start.
func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.2:0": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.5:8080": false,
		"admin.example.com:8080": false, "127.0.0.1": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
