package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestRunStartUpRecovery: at start-up BroadWorks (a simulator outside the
// connector) shows three shapes that look like half-done hot-desk logins.
// Only one is the connector's: desk1 forwards to agent1's number with no
// association, and the store (here an older connector's state file) has
// desk1 remembered for agent1; `run` puts desk1's own forwarding back and
// logs the repair. The others are someone's and are left as they are: agent2
// placed at desk2 by a portal, signed out; agent3 forwarding to agent4's
// number while agent4 works (Available), not signed out.
func TestRunStartUpRecovery(t *testing.T) {
	simCfg := config.Default().Simulator()
	simCfg.Listen = "127.0.0.1:0"
	simCfg.Password = "secret"
	sim := xspsim.New(simCfg, nil)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	}()
	for _, set := range []func() error{
		func() error { return sim.PortalSetCFA("desk1@example.com", true, "4001") },
		func() error { return sim.PortalAssociateGuest("agent2@example.com", "desk2@example.com") },
		func() error { return sim.PortalSetCFA("agent3@example.com", true, "4004") },
		func() error { return sim.PortalSetAgentState("agent4@example.com", "Available", "") },
	} {
		if err := set(); err != nil {
			t.Fatal(err)
		}
	}

	// The crashed connector remembered desk1's own forwarding in its state
	// file; the undo restores it from there.
	dir := t.TempDir()
	store := &hoteling.FileStore{Path: filepath.Join(dir, "hoteling.json")}
	const deskOwnCFA = "+12025550199"
	if err := store.Save(hoteling.Remembered{HostUserID: "desk1@example.com", GuestUserID: "agent1@example.com",
		ForwardTo: "4001", PreviousCFA: xsi.Forwarding{Active: true, ForwardToPhoneNumber: deskOwnCFA}}); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "connector.yaml")
	content := fmt.Sprintf(`csta:
  listen: %s
admin:
  listen: %s
sip:
  listen: 127.0.0.1:0
xsi:
  simulate: false
  servers: [%s]
  password: secret
  reconnect_min: 50ms
hoteling:
  state_file: %s
journal:
  path: %s
store:
  path: %s
`, freePort(t), freePort(t), sim.URL(), filepath.Join(dir, "hoteling.json"), filepath.Join(dir, "journal.db"), filepath.Join(dir, "connector.db"))
	if err := os.WriteFile(configPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, stderr, exited := startProcess(t, "run", "--config", configPath)
	defer func() {
		if t.Failed() {
			t.Logf("connector log:\n%s", stderr.String())
		}
	}()

	waitFor(t, "the start-up recovery", func() bool {
		return strings.Contains(stderr.String(), `msg="reconciler: start-up recovery done"`)
	})
	logged := stderr.String()
	for _, want := range []string{
		`msg="reconciler: start-up recovery" component=gateway promises=0 remembered_desks=1`,
		`msg="reconciler: repaired" component=gateway user=agent1@example.com kind=owed`,
		`msg="reconciler: start-up recovery done" repairs=1 failed=0`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s:\n%s", want, logged)
		}
	}
	want := map[string]xspsim.UserSnapshot{
		"desk1@example.com":  {CFAActive: true, CFANumber: deskOwnCFA},
		"agent1@example.com": {},
		"agent2@example.com": {GuestHostID: "desk2@example.com"},
		"desk2@example.com":  {HostGuestID: "agent2@example.com"},
		"agent3@example.com": {CFAActive: true, CFANumber: "4004"},
		"agent4@example.com": {AgentState: "Available"},
	}
	for id, w := range want {
		s, err := sim.Snapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		if (w.AgentState != "" && s.AgentState != w.AgentState) || s.CFAActive != w.CFAActive || s.CFANumber != w.CFANumber ||
			s.GuestHostID != w.GuestHostID || s.HostGuestID != w.HostGuestID {
			t.Errorf("%s after start-up: %+v, want %+v", id, s, w)
		}
	}
	if rs, err := store.Load(); err != nil || len(rs) != 0 {
		t.Errorf("state file after recovery: %+v %v, want empty", rs, err)
	}

	if code := terminate(t, cmd, stderr, exited); code != exitOK {
		t.Errorf("exit code = %d, want 0:\n%s", code, stderr.String())
	}
}
