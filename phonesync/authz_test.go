package phonesync

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
)

// A phone naming an agent it may not act on (issue 13, attack 4): the
// gateway's AuthorizeAgent says ErrForbidden, the SUBSCRIBE is answered
// 403 before anything changes, SetAgentState is never asked, and in an
// existing dialog the phone is told the unchanged state; the subscription
// stays (RFC 6665 §4.1.2.2: only 481 ends it).
func TestSubscribeAgentForbidden(t *testing.T) {
	otherAgent := readSIPFixture(t, "feature_set_agent_state_other_agent.xml")       // notReady for agent4
	logonOther := readSIPFixture(t, "feature_set_agent_state_logon_other_agent.xml") // loggedOn for agent2
	tests := []struct {
		name      string
		transport string
		body      string
		inDialog  bool   // a re-SUBSCRIBE, else a new dialog carrying the body
		wantAsked string // what AuthorizeAgent was asked
	}{
		{"other agent's state, in dialog, udp", "UDP", otherAgent, true, "1001 agent4 notReady"},
		{"other agent's state, in dialog, tcp", "TCP", otherAgent, true, "1001 agent4 notReady"},
		{"other agent logged on, in dialog", "UDP", logonOther, true, "1001 agent2 loggedOn"},
		{"other agent's state, new dialog", "UDP", otherAgent, false, "1001 agent4 notReady"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			svc.strangers = map[string]bool{"agent4": true, "agent2": true}
			cfg := testConfig()
			cfg.RequireAuth = true
			s := startServer(t, cfg, svc)
			p := newPhone(t, "1001", tc.transport, s.Addr())
			if tc.inDialog {
				if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
					t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
				}
				p.nextNotify() // the full state
			}
			if res := p.subscribe(subOpts{body: tc.body}); res.StatusCode != 403 {
				t.Fatalf("SUBSCRIBE naming another agent: %d, want 403", res.StatusCode)
			}
			waitSample(t, s, `connector_sip_subscribes_refused_total{reason="agent_forbidden"}`, 1)
			svc.mu.Lock()
			asked := slices.Clone(svc.authorized)
			svc.mu.Unlock()
			if !slices.Equal(asked, []string{tc.wantAsked}) {
				t.Errorf("AuthorizeAgent asked %q, want [%q]", asked, tc.wantAsked)
			}
			if tc.inDialog {
				// The unchanged state of the agent at the phone, not agent4's.
				n := p.nextNotify()
				checkDialogNotify(t, p, n, eventFeature)
				if body := string(n.Body()); !strings.Contains(body, "<AgentLoggedOffEvent") || !strings.Contains(body, "agent-1001") {
					t.Errorf("NOTIFY after the 403 is not the unchanged state of agent-1001:\n%s", body)
				}
				// Still subscribed: a plain refresh is answered 200.
				if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
					t.Fatalf("refresh after the 403: %d, want 200", res.StatusCode)
				}
				p.nextNotify()
				waitSample(t, s, featureSubs, 1)
			} else {
				p.noNotify(100 * time.Millisecond)
				if v := promtest.Scrape(t, s.Collectors()...)[featureSubs]; v != 0 {
					t.Errorf("a refused new dialog left %v subscriptions", v)
				}
			}
			if calls := svc.takeCalls(); len(calls) != 0 {
				t.Errorf("refused request reached the service: %q", calls)
			}
		})
	}
}

// The agent the phone may act on goes through as before: AuthorizeAgent is
// asked, the SUBSCRIBE answered 200, the change applied.
func TestSubscribeAgentAllowed(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	svc.strangers = map[string]bool{"agent4": true}
	s := startServer(t, testConfig(), svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	body := strings.Replace(readSIPFixture(t, "feature_set_agent_state_other_agent.xml"), "agent4", "agent-1001", 1)
	if res := p.subscribe(subOpts{body: body}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE naming the phone's own agent: %d, want 200", res.StatusCode)
	}
	if calls := svc.awaitCalls(t, 1); !slices.Equal(calls, []string{"agent 1001 notReady  1"}) {
		t.Errorf("service calls %q", calls)
	}
}

func readSIPFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sipFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
