package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// TestReload: a reloaded directory and reason table apply to the next
// request and the next event; what is fixed at New stays.
func TestReload(t *testing.T) {
	cfg := testConfig
	cfg.EventPackages = []string{"Call Center Agent"}
	cfg.AgentPasswords = []AgentPassword{{AgentID: "A1", Password: "pw"}}
	h := newHarnessConfig(t, cfg)
	ctx := context.Background()

	h.g.HandleXSIEvent(xev("alice@example.com", agentState("Unavailable", "200")))
	if got := h.g.Directory().NumberOf("alice@example.com"); got != "+15550001" {
		t.Errorf("NumberOf before = %q", got)
	}

	next := Config{
		Domain: "example.com",
		Devices: []DeviceEntry{
			{DeviceID: "desk1", UserID: "host1@example.com", HotDesk: true},
			{DeviceID: "4001", UserID: "alice@example.com"}, // alice's phone renumbered
		},
		Agents: []AgentEntry{
			{AgentID: "A1", UserID: "alice@example.com", Number: "4001"},
			{AgentID: "C3", UserID: "carol@example.com"}, // new; bob gone
		},
		ReasonCodes:            []ReasonEntry{{Reason: "lunch", Code: "100"}, {Reason: "training", Code: "300"}},
		DefaultUnavailableCode: "888",
		RequestTimeout:         time.Second,
		ConflictWindow:         time.Second,
	}
	h.g.Reload(next)

	// The next event goes to the new device, with the new table's reason
	// (code 200 is no longer in it).
	before := len(h.pub.Events())
	h.g.HandleXSIEvent(xev("alice@example.com", agentState("Unavailable", "300")))
	h.g.HandleXSIEvent(xev("alice@example.com", agentState("Unavailable", "200")))
	h.settle(t)
	var got []string
	for _, ev := range h.pub.Events()[before:] {
		if ev.Device == "4001" || ev.Device == "+15550001" { // not the IDs the domain rule gives
			got = append(got, string(ev.Device)+" "+ev.ReasonCode)
		}
	}
	if want := []string{"4001 training", "4001 200"}; !slices.Equal(got, want) {
		t.Errorf("events after the reload %q, want %q", got, want)
	}

	// Requests: the new device resolves, the old one by the domain rule
	// only; the new default code goes with an unknown long reason.
	req := csta.SetAgentState{Device: "4001", RequestedState: csta.ReqNotReady, AgentID: "A1", ReasonCode: "training"}
	if _, err := h.g.SetAgentState(ctx, csta.Requester{}, &req); err != nil {
		t.Fatalf("SetAgentState on the new device: %v", err)
	}
	req.ReasonCode = "a reason longer than ten"
	if _, err := h.g.SetAgentState(ctx, csta.Requester{}, &req); err != nil {
		t.Fatalf("SetAgentState: %v", err)
	}
	calls := h.act.Calls()
	wantCalls := []string{`SetAgentState alice@example.com Unavailable "300"`, `SetAgentState alice@example.com Unavailable "888"`}
	if n := len(calls); n < 2 || !slices.Equal(calls[n-2:], wantCalls) {
		t.Errorf("actions %q, want them to end with %q", calls, wantCalls)
	}

	if got := h.g.Directory().NumberOf("alice@example.com"); got != "4001" {
		t.Errorf("NumberOf after = %q, want 4001", got)
	}
	var ids []string
	for _, a := range h.g.Agents() {
		ids = append(ids, a.AgentID)
	}
	if want := []string{"A1", "C3"}; !slices.Equal(ids, want) {
		t.Errorf("agents after the reload %q, want %q", ids, want)
	}
	if err := h.g.ForceLogout(ctx, "B2"); err != ErrUnknownAgent {
		t.Errorf("ForceLogout of an agent the reload removed: %v, want ErrUnknownAgent", err)
	}

	c := h.g.cfg()
	if !slices.Equal(c.EventPackages, cfg.EventPackages) || !slices.Equal(c.AgentPasswords, cfg.AgentPasswords) {
		t.Errorf("fixed settings changed by the reload: %+v", c)
	}
	if c.RequestTimeout != time.Second || c.ConflictWindow != time.Second {
		t.Errorf("live settings not applied: %+v", c)
	}
}

func TestDirectoryNumberOf(t *testing.T) {
	d := NewDirectory(Config{Domain: "example.com", Agents: []AgentEntry{
		{AgentID: "A1", UserID: "alice@example.com", Number: "+15550001"},
		{AgentID: "B2", UserID: "bob@example.com"},
		{AgentID: "A1bis", UserID: "alice@example.com", Number: "+15559999"},
	}})
	for user, want := range map[string]string{
		"alice@example.com": "+15550001", // the first entry of the user
		"bob@example.com":   "B2",        // no number: the agent ID
		"dave@example.com":  "dave",      // no entry: the user part
		"erin@other.net":    "",          // not ours: unknown
		"@example.com":      "",
	} {
		if got := d.NumberOf(user); got != want {
			t.Errorf("NumberOf(%s) = %q, want %q", user, got, want)
		}
	}
}
