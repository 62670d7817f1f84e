package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
)

// TestReloadDirectory: SIGHUP applies a new directory, reason table and
// SIP rate limit to a running connector: agent1's phone renumbered 4001 → 5001 and a new
// not-ready reason "break" (BroadWorks code TRAINING) are used by the next
// request, and the next event goes to the new device.
func TestReloadDirectory(t *testing.T) {
	dir := t.TempDir()
	addrs := startRunIn(t, dir, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cti, err := cticlient.Dial(ctx, addrs.csta)
	if err != nil {
		t.Fatal(err)
	}
	defer cti.Close()

	// Before: 5001 is nobody's (the domain rule makes it 5001@example.com,
	// a user BroadWorks does not have), "break" no code BroadWorks knows.
	if _, err := cti.SetAgentState(ctx, "5001", csta.ReqLoggedOn, "agent1", ""); err == nil {
		t.Fatal("a login at 5001 succeeded before the reload")
	}

	path := filepath.Join(dir, "connector.yaml")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content = []byte(strings.Replace(string(content), "sip:\n", "sip:\n  limits:\n    subscribe_rate: 5\n", 1))
	content = append(content, []byte(`directory:
  devices: ["5001=agent1@example.com", "4002=agent2@example.com", "desk1=desk1@example.com,hotdesk", "desk2=desk2@example.com,hotdesk"]
  reason_codes: ["break=TRAINING", "2=MEETING"]
`)...)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	addrs.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(addrs.stderr.String(), "reload: applied") })
	if log := addrs.stderr.String(); !strings.Contains(log, `changed="[directory.devices directory.reason_codes sip.limits.subscribe_rate]"`) ||
		strings.Contains(log, "change needs a restart") || !regexp.MustCompile(`msg="SIP limits reloaded".* subscribe_rate=5 `).MatchString(log) {
		t.Errorf("the reload should apply directory.devices, directory.reason_codes and sip.limits.subscribe_rate, refusing nothing:\n%s", grepLines(log, "time"))
	}

	if _, err := cti.MonitorStart(ctx, "5001"); err != nil {
		t.Fatal(err)
	}
	on5001 := func(ev cticlient.Event) bool { return ev.Device == "5001" }
	if _, err := cti.SetAgentState(ctx, "5001", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatalf("login at 5001 after the reload: %v", err)
	}
	awaitCTI(t, cti, "AgentLoggedOnEvent", on5001)
	if _, err := cti.SetAgentState(ctx, "5001", csta.ReqNotReady, "agent1", "break"); err != nil {
		t.Fatalf("not ready with the reloaded reason: %v", err)
	}
	awaitCTI(t, cti, "AgentNotReadyEvent", func(ev cticlient.Event) bool { return on5001(ev) && ev.ReasonCode == "break" })

	var agents []admin.Agent
	_, body := adminGet(t, addrs.admin, "/api/v1/agents", testAdminToken)
	if err := json.Unmarshal(body, &agents); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.AgentID == "agent1" && (a.State != "notReady" || a.Reason != "break") {
			t.Errorf("agent1 in the admin API: %+v, want notReady, break", a)
		}
	}
	if _, err := cti.SetAgentState(ctx, "5001", csta.ReqLoggedOff, "agent1", ""); err != nil {
		t.Fatal(err)
	}
}
