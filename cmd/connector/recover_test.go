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

// TestRunRecoversHalfDoneSequences: BroadWorks (a simulator outside the
// connector, as after a crash) shows two half-done hot-desk sequences; `run`
// finds them once the link is up and undoes both (hoteling.recover_mode
// undo), logging each repair.
func TestRunRecoversHalfDoneSequences(t *testing.T) {
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
	// desk1 forwards to agent1's number without an association: a login
	// that stopped after the host's CFA.
	if err := sim.PortalSetCFA("desk1@example.com", true, "4001"); err != nil {
		t.Fatal(err)
	}
	// agent2 is desk2's guest but signed out: a login that stopped before
	// Unavailable.
	if err := sim.PortalAssociateGuest("agent2@example.com", "desk2@example.com"); err != nil {
		t.Fatal(err)
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
	if !strings.Contains(logged, `msg="reconciler: start-up recovery done" users=6 repairs=2 failed=0`) {
		t.Errorf("recovery summary wrong:\n%s", logged)
	}
	for _, want := range []string{
		`msg="reconciler: repaired" component=gateway user=agent1@example.com kind=owed`,
		`msg="reconciler: repaired" component=gateway user=agent2@example.com kind=owed`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s:\n%s", want, logged)
		}
	}
	for _, id := range []string{"desk1@example.com", "desk2@example.com", "agent1@example.com", "agent2@example.com"} {
		s, err := sim.Snapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		wantCFA := id == "desk1@example.com"
		if s.CFAActive != wantCFA || (wantCFA && s.CFANumber != deskOwnCFA) || s.GuestHostID != "" || s.HostGuestID != "" {
			t.Errorf("%s after recovery: %+v, want no association and CFA %v (desk1: its own %s, from the state file)",
				id, s, wantCFA, deskOwnCFA)
		}
	}
	if rs, err := store.Load(); err != nil || len(rs) != 0 {
		t.Errorf("state file after recovery: %+v %v, want empty", rs, err)
	}

	if code := terminate(t, cmd, stderr, exited); code != exitOK {
		t.Errorf("exit code = %d, want 0:\n%s", code, stderr.String())
	}
}
