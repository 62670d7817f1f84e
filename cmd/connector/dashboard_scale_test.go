package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
)

// floorSource is a floor of n agents and n hot desks, a quarter of them
// seated, for the dashboard alone (admin.Source; no connector behind it).
type floorSource struct{ n int }

func (f floorSource) Agents() []admin.Agent {
	states := []string{"ready", "notReady", "workingAfterCall", "loggedOff"}
	out := make([]admin.Agent, f.n)
	for i := range out {
		a := admin.Agent{AgentID: fmt.Sprintf("agent%05d", i), UserID: fmt.Sprintf("agent%05d@example.com", i),
			State: states[i%4], Since: time.Now().Add(-time.Duration(i) * time.Second)}
		if a.State != "loggedOff" {
			a.Desk = fmt.Sprintf("desk%05d", i)
		}
		if a.State == "notReady" {
			a.Reason = "2"
		}
		out[i] = a
	}
	return out
}

func (f floorSource) Devices() []admin.Device {
	out := make([]admin.Device, f.n)
	for i := range out {
		d := admin.Device{DeviceID: fmt.Sprintf("desk%05d", i), UserID: fmt.Sprintf("desk%05d@example.com", i), HotDesk: true}
		if i%4 != 3 {
			d.GuestAgentID = fmt.Sprintf("agent%05d", i)
			d.Forwarding = []admin.Forward{{Type: "always", Active: true, Number: fmt.Sprintf("+1555%05d", i)}}
		}
		out[i] = d
	}
	return out
}

func (floorSource) Phones() []admin.Phone     { return nil }
func (floorSource) Sessions() []admin.Session { return nil }
func (floorSource) Links() []admin.Link {
	return []admin.Link{{Server: "http://xsp1.example.com", State: "up", Since: time.Now()}}
}
func (floorSource) ForceLogout(context.Context, string) error { return admin.ErrUnknownAgent }

// floorJournal: every desk of the floor had two guests in the hours before
// now: its own agent's neighbour for an hour from three hours ago (logged
// out), then its own agent from an hour and three quarters ago (still there).
type floorJournal struct{ now time.Time }

func (j floorJournal) DeskBetween(_ context.Context, desk string, from, to time.Time) ([]admin.Association, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(desk, "desk"))
	if err != nil {
		return nil, nil
	}
	ago := func(d time.Duration) time.Time { return j.now.Add(-d) }
	all := []admin.Association{
		{AgentID: fmt.Sprintf("agent%05d", (i+1)%10_000), DeviceID: desk, Start: ago(3 * time.Hour), End: ago(2 * time.Hour), EndedBy: "logout"},
		{AgentID: fmt.Sprintf("agent%05d", i), DeviceID: desk, Start: ago(105 * time.Minute)},
	}
	var out []admin.Association
	for _, a := range all {
		if !a.Start.After(to) && (a.End.IsZero() || !a.End.Before(from)) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (j floorJournal) AgentBetween(context.Context, string, time.Time, time.Time) ([]admin.Association, error) {
	return nil, nil
}

func (j floorJournal) AtDesk(context.Context, string, time.Time) (admin.Association, bool, error) {
	return admin.Association{}, false, nil
}

// TestDashboardAtScale: the dashboard with 10,000 agents and 10,000 hot
// desks in headless Chromium: the counts add up, only the rows in view are
// in the page, a search finds one agent, a desk's history shows its two
// guests of the last hours, scrolling draws the rows scrolled to, and a change
// pushed on the stream shows. How long each took is logged
// (BENCHMARKS.md, "Dashboard"), never asserted.
func TestDashboardAtScale(t *testing.T) {
	chromium := chromiumPath(t)
	const n = 10_000
	srv := admin.New("127.0.0.1:0", admin.WithToken(testAdminToken), admin.WithSource(floorSource{n}),
		admin.WithJournal(floorJournal{now: time.Now()}), admin.WithLogger(slog.New(slog.DiscardHandler)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	page := startChromium(t, ctx, chromium)
	page.call("Runtime.enable", nil, nil)
	page.call("Page.enable", nil, nil)

	// fast is waitView polling every 5 ms, timed: the times below are its.
	page.poll = 5 * time.Millisecond
	fast := func(what string, ok func(dashboardView) bool) (dashboardView, time.Duration) {
		t.Helper()
		start := time.Now()
		v := page.waitView(t, what, ok)
		return v, time.Since(start)
	}
	counted := func(v dashboardView) int {
		total := 0
		for _, seg := range v.Counts {
			if i := strings.LastIndexByte(seg, ' '); i >= 0 {
				c, _ := strconv.Atoi(seg[i+1:])
				total += c
			}
		}
		return total
	}

	start := time.Now()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	page.call("Page.navigate", map[string]any{"url": "http://" + srv.Addr().String() + "/?token=" + testAdminToken}, &nav)
	if nav.ErrorText != "" {
		t.Fatal(nav.ErrorText)
	}
	view, _ := fast("10,000 agents counted and drawn", func(v dashboardView) bool {
		return v.Conn == "live" && counted(v) == n && len(v.Agents) > 0 && len(v.Desks) > 0
	})
	firstPaint := time.Since(start)
	if len(view.Agents) > 200 || len(view.Desks) > 200 {
		t.Errorf("%d agent and %d desk rows in the page, want only those in view", len(view.Agents), len(view.Desks))
	}
	if !slicesEqualPrefix(view.AgentOrder, "agent00000", "agent00001") {
		t.Errorf("first agent rows %q", view.AgentOrder[:min(3, len(view.AgentOrder))])
	}

	page.eval(`(() => { const s = document.getElementById('search'); s.value = 'agent07777'; s.dispatchEvent(new Event('input')); })()`, nil)
	_, found := fast("agent07777 found", func(v dashboardView) bool {
		return len(v.Agents) == 1 && v.Agents["agent07777"] != nil
	})
	// A desk's history: search for the desk, click it, its timeline.
	page.eval(`(() => { const s = document.getElementById('search'); s.value = 'desk04242'; s.dispatchEvent(new Event('input')); })()`, nil)
	fast("desk04242 found", func(v dashboardView) bool { return len(v.Desks) == 1 && v.Desks["desk04242"] != nil })
	clicked := time.Now()
	page.eval(`document.querySelector('#desks tbody tr[data-key="desk04242"]').click()`, nil)
	fast("desk04242's two guests", func(v dashboardView) bool {
		return v.HistoryOf == "Who sat at desk04242" && len(v.History) == 2 &&
			slices.Equal(v.Timeline, []string{"agent04243", "agent04242"}) && v.History[0][3] == "logged out" && v.History[1][2] == "still there"
	})
	history := time.Since(clicked)
	page.eval(`(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); })()`, nil)
	fast("every agent again", func(v dashboardView) bool { return len(v.Agents) > 1 && counted(v) == n })

	page.eval(`(() => { const s = document.getElementById('agents-scroll'); s.scrollTop = s.scrollHeight / 2; })()`, nil)
	_, scrolled := fast("the rows half way down", func(v dashboardView) bool {
		return len(v.Agents) > 0 && len(v.Agents) < 200 && v.Agents["agent05000"] != nil
	})

	pushed := time.Now()
	srv.Publish(admin.Event{Kind: "agent", Agent: &admin.Agent{AgentID: "agent05000", UserID: "agent05000@example.com",
		State: "notReady", Reason: "7", Desk: "desk05000", Since: pushed}})
	_, _ = fast("the change on agent05000", func(v dashboardView) bool {
		row := v.Agents["agent05000"]
		return len(row) == 5 && row[1] == "not ready" && row[2] == "7"
	})
	live := time.Since(pushed)
	for _, p := range page.problems {
		t.Errorf("browser: %s", p)
	}
	t.Logf("10,000 agents and 10,000 desks: first paint (navigation to counted and drawn) %v; search %v; a desk's history %v; scroll %v; a change pushed to shown %v (polled every 5 ms)",
		firstPaint.Round(time.Millisecond), found.Round(time.Millisecond), history.Round(time.Millisecond), scrolled.Round(time.Millisecond), live.Round(time.Millisecond))
}

func slicesEqualPrefix(got []string, want ...string) bool {
	if len(got) < len(want) {
		return false
	}
	for i, w := range want {
		if got[i] != w {
			return false
		}
	}
	return true
}
