package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/sipptest"
	"github.com/broadworks-connector/connector/internal/testlog"
	"github.com/broadworks-connector/connector/internal/testtool"
)

// TestDashboardInChromium: the dashboard of `connector run` on the demo
// directory with no admin token configured (a first run), opened in
// headless Chromium at the URL the connector logged, shows
// every agent and desk, and when agent1 logs in at desk1 from a CTI client
// and agent2 from its sipp phone the page shows it without being reloaded. Chromium is driven over the
// DevTools protocol (its WebSocket, with gorilla/websocket).
func TestDashboardInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	addrs := startRunConfig(t, dir, strings.Replace(runConfig(dir, "", "", ""), "  token: "+testAdminToken+"\n", "", 1))
	logged := regexp.MustCompile(`dashboard="(http://` + regexp.QuoteMeta(addrs.admin) + `/\?token=[A-Z2-7]{26})"`).FindStringSubmatch(addrs.stderr.String())
	if logged == nil {
		t.Fatalf("no dashboard URL with a token made for the run in the log:\n%s", addrs.stderr.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	page := startChromium(t, ctx, chromium)
	page.call("Runtime.enable", nil, nil)
	page.call("Log.enable", nil, nil)
	page.call("Page.enable", nil, nil)
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	page.call("Page.navigate", map[string]any{"url": logged[1]}, &nav)
	if nav.ErrorText != "" {
		t.Fatalf("navigating to the dashboard: %s", nav.ErrorText)
	}

	view := page.waitView(t, "the demo directory, live", func(v dashboardView) bool {
		return v.Conn == "live" && len(v.Agents) == 4 && v.Desks["desk1"] != nil && v.Desks["desk2"] != nil
	})
	for _, id := range []string{"agent1", "agent2", "agent3", "agent4"} {
		if row := view.Agents[id]; len(row) != 5 || row[0] != id || row[1] != "logged off" || row[3] != "—" {
			t.Errorf("agent row %s at the start: %q", id, row)
		}
	}
	for _, id := range []string{"desk1", "desk2"} {
		if row := view.Desks[id]; len(row) != 5 || row[1] != "free" {
			t.Errorf("desk row %s at the start: %q", id, row)
		}
	}
	if len(view.Links) == 0 {
		t.Error("no XSI link row")
	}
	for server, row := range view.Links {
		if len(row) < 2 || row[1] != "up" {
			t.Errorf("link %s: %q", server, row)
		}
	}
	if strings.Contains(view.Href, "token") {
		t.Errorf("the token stayed in the address bar: %s", view.Href)
	}

	// Mark this page load: the marker is gone if the page reloads.
	page.eval(`window.dashboardTestMarker = "same-page"`, nil)
	cti, err := cticlient.Dial(ctx, addrs.csta)
	if err != nil {
		t.Fatal(err)
	}
	defer cti.Close()
	if _, err := cti.SetAgentState(ctx, "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	// The hot-desk association and the ACD login are two BroadWorks events:
	// wait for both.
	view = page.waitView(t, "agent1 logged on at desk1", func(v dashboardView) bool {
		agent, desk := v.Agents["agent1"], v.Desks["desk1"]
		return len(agent) == 5 && agent[1] != "logged off" && agent[3] == "desk1" && len(desk) == 5 && desk[1] == "agent1"
	})
	if view.Marker != "same-page" {
		t.Error("the page was reloaded to show the login")
	}
	t.Logf("agent1 on the dashboard: %q; desk1: %q", view.Agents["agent1"], view.Desks["desk1"])

	// The charts of the last hour count the login, the state changes and
	// the delay of the agent-state events (the simulator stamps them).
	view = page.waitView(t, "the login on the charts", func(v dashboardView) bool {
		logins, changes, delay := v.Charts["logins"], v.Charts["changes"], v.Charts["delay"]
		return logins.latest() >= 1 && changes.latest() > 0 && delay.Latest != "" &&
			strings.Contains(logins.Label, ": "+logins.Latest+" in the last minute") && strings.Contains(delay.Label, " event") &&
			logins.Path != "" && changes.Path != "" && delay.Path != ""
	})
	for name, c := range view.Charts {
		t.Logf("chart %s: %q (%s)", name, c.Caption, c.Label)
	}
	if row := view.Desks["desk2"]; row[1] != "free" {
		t.Errorf("desk2 after agent1's login: %q", row)
	}

	// A supervisor's tools: counts by state, a search, a state's segment
	// as a filter, sorting by a column.
	page.waitView(t, "the counts by state", func(v dashboardView) bool {
		return slices.Equal(v.Counts, []string{"not ready 1", "logged off 3"})
	})
	page.eval(`(() => { const s = document.getElementById('search'); s.value = 'agent3'; s.dispatchEvent(new Event('input')); })()`, nil)
	page.waitView(t, "only agent3 once searched for", func(v dashboardView) bool {
		return len(v.Agents) == 1 && v.Agents["agent3"] != nil && len(v.Desks) == 0 && strings.HasPrefix(v.Filter, "showing 1 of 4 agents, 0 of ")
	})
	page.eval(`(() => { const s = document.getElementById('search'); s.value = 'desk1'; s.dispatchEvent(new Event('input')); })()`, nil)
	page.waitView(t, "agent1 and desk1 found by the desk", func(v dashboardView) bool {
		return len(v.Agents) == 1 && v.Agents["agent1"] != nil && len(v.Desks) == 1 && v.Desks["desk1"] != nil
	})
	page.eval(`(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); document.querySelector('#counts .seg.st-notReady').click(); })()`, nil)
	page.waitView(t, "only the agents not ready", func(v dashboardView) bool {
		return len(v.Agents) == 1 && v.Agents["agent1"] != nil && v.Filter != ""
	})
	page.eval(`document.querySelector('#counts .seg.st-notReady').click()`, nil)
	page.waitView(t, "every agent again", func(v dashboardView) bool {
		return len(v.Agents) == 4 && v.Filter == "" && slices.Equal(v.AgentOrder, []string{"agent1", "agent2", "agent3", "agent4"})
	})
	page.eval(`document.querySelector('#agents th[data-col="0"]').click()`, nil)
	page.waitView(t, "agents sorted the other way", func(v dashboardView) bool {
		return slices.Equal(v.AgentOrder, []string{"agent4", "agent3", "agent2", "agent1"})
	})
	page.eval(`document.querySelector('#agents th[data-col="1"]').click()`, nil)
	page.waitView(t, "agents sorted by state", func(v dashboardView) bool {
		return len(v.AgentOrder) == 4 && v.AgentOrder[3] == "agent1" // "logged off" < "not ready"
	})

	// A desk's history: agent1 leaves desk1, agent3 sits down; desk1's
	// timeline shows both, in turn, from the journal.
	if _, err := cti.SetAgentState(ctx, "desk1", csta.ReqLoggedOff, "agent1", ""); err != nil {
		t.Fatalf("agent1 logout: %v", err)
	}
	if _, err := cti.SetAgentState(ctx, "desk1", csta.ReqLoggedOn, "agent3", ""); err != nil {
		t.Fatalf("agent3 login at desk1: %v", err)
	}
	page.waitView(t, "agent3 at desk1", func(v dashboardView) bool { d := v.Desks["desk1"]; return len(d) == 5 && d[1] == "agent3" })
	var desk dashboardView
	for deadline := time.Now().Add(15 * time.Second); ; {
		// The journal writes after the events: open the history until it
		// has both (an open history also reloads on the desk's changes).
		page.eval(`document.querySelector('#desks tbody tr[data-key="desk1"]').click()`, nil)
		time.Sleep(300 * time.Millisecond)
		page.eval(readView, &desk)
		if len(desk.History) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if desk.HistoryOf != "Who sat at desk1" || len(desk.History) != 2 || !slices.Equal(desk.Timeline, []string{"agent1", "agent3"}) ||
		desk.History[0][0] != "agent1" || desk.History[0][3] != "logged out" || desk.History[1][0] != "agent3" || desk.History[1][2] != "still there" {
		t.Errorf("desk1's history: %q %q, timeline %q", desk.HistoryOf, desk.History, desk.Timeline)
	}
	page.eval(`document.querySelector('#agents tbody tr[data-key="agent1"]').click()`, nil)
	page.waitView(t, "agent1's history", func(v dashboardView) bool {
		return v.HistoryOf == "Where agent1 sat" && len(v.History) == 1 && v.History[0][0] == "desk1" && v.History[0][3] == "logged out"
	})

	// The CTI sessions tab reads the sessions from the API: this test's
	// client is one.
	page.eval(`document.querySelector('.tabs button[data-tab="sessions"]').click()`, nil)
	page.waitView(t, "the CTI sessions", func(v dashboardView) bool {
		for _, row := range v.Sessions {
			if len(row) == 6 && row[3] == "tcp" && strings.HasPrefix(row[1], "127.0.0.1:") {
				return v.Tab == "sessions"
			}
		}
		return false
	})
	page.eval(`document.querySelector('.tabs button[data-tab="floor"]').click()`, nil)

	// agent2 logs in from its desk phone (a sipp phone, DN 4002, through
	// as-feature-event): the dashboard shows that too.
	phone := sipptest.NewPhone("4002", "4002", "phone4002").
		Subscribe().
		AwaitNotify("AgentLoggedOffEvent").
		Request(`<SetAgentState ` + ed3 + `><device>4002</device><requestedAgentState>loggedOn</requestedAgentState><agentID>agent2</agentID></SetAgentState>`).
		AwaitNotify("AgentNotReadyEvent").
		Unsubscribe().
		Pause(200)
	phoneDir := t.TempDir()
	phoneDone := make(chan error, 1)
	go func() { phoneDone <- phone.Run(ctx, t, phoneDir, addrs.sip, sipptest.FreeUDPPort(t)) }()
	page.waitView(t, "agent2 logged on from its phone", func(v dashboardView) bool {
		agent := v.Agents["agent2"]
		return len(agent) == 5 && agent[1] != "logged off" && agent[1] != "unknown"
	})
	if err := <-phoneDone; err != nil {
		msgs, _ := os.ReadFile(filepath.Join(phoneDir, "phone-4002-messages.log"))
		t.Errorf("the phone: %v\n%s", err, msgs)
	}
	for _, p := range page.problems {
		t.Errorf("browser: %s", p)
	}

	// The connector gone, the page says so and keeps trying.
	page.problems = nil
	addrs.cmd.Process.Kill()
	<-addrs.exited
	page.waitView(t, "the connection lost", func(v dashboardView) bool { return strings.HasPrefix(v.Conn, "reconnecting") })
	for _, p := range page.problems {
		if !strings.Contains(p, "WebSocket") { // refused reconnections are logged
			t.Errorf("browser after the connector left: %s", p)
		}
	}
}

// chromiumPath is Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	return testtool.Path(t, "chromium", "chromium")
}

// devtoolsPage is one Chromium page target spoken to over the DevTools
// protocol: one call at a time, events in between read and noted.
type devtoolsPage struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
	next int
	poll time.Duration // waitView's interval; 0: 100 ms

	problems []string // uncaught exceptions, console errors, CSP violations
}

// startChromium starts headless Chromium with a fresh profile, killed (with
// its children) at the end of the test, and attaches to its page.
func startChromium(t *testing.T, ctx context.Context, chromium string) *devtoolsPage {
	t.Helper()
	profile := t.TempDir()
	var stderr testlog.Buffer
	cmd := exec.Command(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--mute-audio",
		"--remote-debugging-port=0", "--user-data-dir="+profile, "about:blank")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { // before the profile's removal, registered earlier
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("chromium did not exit within 10 s of SIGKILL")
		}
		if t.Failed() {
			var out []string
			for line := range strings.Lines(stderr.String()) {
				if !strings.Contains(line, "dbus/") { // no D-Bus in a container: noise
					out = append(out, line)
				}
			}
			t.Logf("chromium output:\n%s", strings.Join(out, ""))
		}
	})

	// Chromium writes its DevTools port, then the browser target's path.
	var port string
	for port == "" {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if p, _, ok := strings.Cut(string(b), "\n"); ok {
				port = p
			}
		}
		if port != "" {
			break
		}
		select {
		case <-exited:
			t.Fatalf("chromium exited at start-up:\n%s", stderr.String())
		case <-ctx.Done():
			t.Fatalf("chromium gave no DevTools port:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}

	var wsURL string
	for wsURL == "" {
		wsURL = pageTarget(ctx, port)
		if wsURL != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("chromium has no page target:\n%s", stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := dialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("DevTools: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	page := &devtoolsPage{t: t, ctx: ctx, conn: conn}
	t.Cleanup(func() { // before chromium is killed (cleanups run last first)
		if t.Failed() {
			page.keepScreenshot()
		}
	})
	return page
}

// pageTarget is the DevTools WebSocket URL of Chromium's first page, "" when
// there is none yet.
func pageTarget(ctx context.Context, port string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/json/list", nil)
	req.Close = true // no idle connection left to Chromium
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var targets []struct {
		Type                 string `json:"type"`
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if json.NewDecoder(res.Body).Decode(&targets) != nil {
		return ""
	}
	for _, target := range targets {
		if target.Type == "page" && target.WebSocketDebuggerURL != "" {
			return target.WebSocketDebuggerURL
		}
	}
	return ""
}

// call sends method and decodes its result into result (unless nil); a
// failure fails the test.
// keepScreenshot saves what the page showed as a PNG in
// $TEST_ARTIFACTS_DIR (default: connector-test-artifacts in the system's
// temporary folder), named after the test, and logs where: a failed test's
// artifact. A page that no longer answers is logged, not fatal.
func (p *devtoolsPage) keepScreenshot() {
	p.next++
	id := p.next
	deadline := time.Now().Add(5 * time.Second)
	p.conn.SetWriteDeadline(deadline)
	p.conn.SetReadDeadline(deadline)
	err := p.conn.WriteJSON(map[string]any{"id": id, "method": "Page.captureScreenshot", "params": map[string]any{"format": "png"}})
	var png []byte
	for err == nil && png == nil {
		var msg struct {
			ID     int `json:"id"`
			Result struct {
				Data []byte `json:"data"` // base64 in JSON
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err = p.conn.ReadJSON(&msg); err == nil && msg.ID == id {
			if msg.Error != nil {
				err = errors.New(msg.Error.Message)
			} else {
				png = msg.Result.Data
			}
		}
	}
	if err != nil {
		p.t.Logf("no screenshot of the page: %v", err)
		return
	}
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "connector-test-artifacts")
	}
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, p.t.Name()) + ".png"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Logf("no screenshot of the page: %v", err)
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("no screenshot of the page: %v", err)
		return
	}
	p.t.Logf("the page when the test failed: %s", path)
}

func (p *devtoolsPage) call(method string, params, result any) {
	p.t.Helper()
	p.next++
	id := p.next
	if params == nil {
		params = struct{}{}
	}
	deadline := time.Now().Add(20 * time.Second)
	if d, ok := p.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	p.conn.SetWriteDeadline(deadline)
	if err := p.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		p.t.Fatalf("DevTools %s: %v", method, err)
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		p.conn.SetReadDeadline(deadline)
		if err := p.conn.ReadJSON(&msg); err != nil {
			p.t.Fatalf("DevTools %s: %v", method, err)
		}
		switch {
		case msg.ID == 0:
			p.noteEvent(msg.Method, msg.Params)
		case msg.ID != id:
		case msg.Error != nil:
			p.t.Fatalf("DevTools %s: %s", method, msg.Error.Message)
		default:
			if result != nil {
				if err := json.Unmarshal(msg.Result, result); err != nil {
					p.t.Fatalf("DevTools %s result: %v", method, err)
				}
			}
			return
		}
	}
}

// noteEvent keeps what says the page is broken: an uncaught exception, a
// console error, anything the Content-Security-Policy blocked.
func (p *devtoolsPage) noteEvent(method string, params json.RawMessage) {
	var ev struct {
		ExceptionDetails struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
		Type  string                `json:"type"`
		Args  []struct{ Value any } `json:"args"`
		Entry struct {
			Level  string `json:"level"`
			Source string `json:"source"`
			Text   string `json:"text"`
		} `json:"entry"`
	}
	json.Unmarshal(params, &ev)
	var problem string
	switch {
	case method == "Runtime.exceptionThrown":
		problem = "exception: " + ev.ExceptionDetails.Text + " " + ev.ExceptionDetails.Exception.Description
	case method == "Runtime.consoleAPICalled" && ev.Type == "error":
		problem = fmt.Sprintf("console.error %v", ev.Args)
	case method == "Log.entryAdded" && (ev.Entry.Level == "error" || strings.Contains(ev.Entry.Text, "Content Security Policy")):
		problem = ev.Entry.Source + ": " + ev.Entry.Text
	default:
		return
	}
	p.problems = append(p.problems, problem)
}

// eval evaluates expression in the page and decodes its value into into
// (unless nil).
func (p *devtoolsPage) eval(expression string, into any) {
	p.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	p.call("Runtime.evaluate", map[string]any{"expression": expression, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		p.t.Fatalf("evaluating %q: %s", expression, res.ExceptionDetails.Text)
	}
	if into != nil && len(res.Result.Value) > 0 {
		if err := json.Unmarshal(res.Result.Value, into); err != nil {
			p.t.Fatalf("evaluating %q: %v (%s)", expression, err, res.Result.Value)
		}
	}
}

// dashboardView is what the page shows: each table's rows by their key,
// each row as its cells' text.
type dashboardView struct {
	Agents     map[string][]string  `json:"agents"`
	AgentOrder []string             `json:"agentOrder"`
	Desks      map[string][]string  `json:"desks"`
	Links      map[string][]string  `json:"links"`
	Counts     []string             `json:"counts"`   // the state bar's segments
	History    [][]string           `json:"history"`  // the open history's rows
	Timeline   []string             `json:"timeline"` // its bars' labels
	HistoryOf  string               `json:"historyOf"`
	Sessions   map[string][]string  `json:"sessions"`
	Tab        string               `json:"tab"` // the tab shown
	Filter     string               `json:"filter"`
	Conn       string               `json:"conn"`
	Href       string               `json:"href"`
	Marker     string               `json:"marker"`
	Charts     map[string]chartView `json:"charts"` // by name: logins, changes, delay
}

// chartView is one chart of the last hour: its latest value (data-latest),
// accessible label, caption and the path of its (mean) series.
type chartView struct {
	Latest  string `json:"latest"`
	Label   string `json:"label"`
	Caption string `json:"caption"`
	Path    string `json:"path"`
}

// latest is the chart's latest value, -1 when it has none.
func (c chartView) latest() float64 {
	f, err := strconv.ParseFloat(c.Latest, 64)
	if err != nil {
		return -1
	}
	return f
}

const readView = `(() => {
  const rows = (id) => Object.fromEntries(Array.from(document.querySelectorAll('#' + id + ' tbody tr[data-key]'))
    .map((tr) => [tr.dataset.key, Array.from(tr.cells).map((td) => td.innerText.trim())]));
  return { agents: rows('agents'), desks: rows('desks'), links: rows('links'), sessions: rows('sessions'),
    tab: ((document.querySelector('.tabs button[aria-selected="true"]') || {}).dataset || {}).tab || '',
    agentOrder: Array.from(document.querySelectorAll('#agents tbody tr[data-key]')).map((tr) => tr.dataset.key),
    counts: Array.from(document.querySelectorAll('#counts .seg')).map((b) => b.innerText.trim()),
    history: Array.from(document.querySelectorAll('#history-list tbody tr')).map((tr) => Array.from(tr.cells).map((td) => td.innerText.trim())),
    timeline: Array.from(document.querySelectorAll('#timeline .tl')).map((b) => b.innerText.trim()),
    historyOf: (document.getElementById('history') || { hidden: true }).hidden ? '' : document.getElementById('history-title')?.innerText || '',
    filter: (document.getElementById('filter') || {}).innerText || '',
    conn: (document.getElementById('conn') || {}).innerText || '', href: location.href,
    marker: String(window.dashboardTestMarker || ''),
    charts: Object.fromEntries(['logins', 'changes', 'delay'].map((name) => {
      const fig = document.getElementById('chart-' + name);
      // A page still being parsed may have the figure and not yet its parts.
      return [name, fig ? { latest: fig.dataset.latest || '', label: fig.querySelector('svg')?.getAttribute('aria-label') || '',
        caption: fig.querySelector('.now')?.textContent || '', path: fig.querySelector('path.line')?.getAttribute('d') || '' } : {}];
    })) };
})()`

// waitView polls the page until ok holds, failing the test at the context's
// deadline with the last view.
func (p *devtoolsPage) waitView(t *testing.T, what string, ok func(dashboardView) bool) dashboardView {
	t.Helper()
	for {
		var v dashboardView
		p.eval(readView, &v)
		if ok(v) {
			return v
		}
		poll := p.poll
		if poll == 0 {
			poll = 100 * time.Millisecond
		}
		select {
		case <-p.ctx.Done():
			last, _ := json.MarshalIndent(v, "", "  ")
			t.Fatalf("the dashboard never showed %s; last view:\n%s\nproblems: %q", what, bytes.TrimSpace(last), p.problems)
		case <-time.After(poll):
		}
	}
}

// TestReadmeFirstRunDashboard: the README's first command as a newcomer
// types it — `connector run --config config.example.yaml`, nothing set but
// what a test must move (free loopback ports, files in a temporary
// directory) — logs the dashboard's URL with a token made for the run, and
// that URL serves the dashboard, whose API answers with the demo directory.
func TestReadmeFirstRunDashboard(t *testing.T) {
	dir := t.TempDir()
	a := startRunCommand(t, exampleCommand(dir, "CONNECTOR_SIMULATOR_LISTEN=127.0.0.1:0"))
	logged := regexp.MustCompile(`dashboard="(http://` + regexp.QuoteMeta(a.admin) + `/\?token=([A-Z2-7]{26}))"`).FindStringSubmatch(a.stderr.String())
	if logged == nil {
		t.Fatalf("no dashboard URL with a token made for the run in the log:\n%s", a.stderr.String())
	}
	if code, body := adminGet(t, a.admin, strings.TrimPrefix(logged[1], "http://"+a.admin), ""); code != http.StatusOK || !bytes.Contains(body, []byte("<title>")) {
		t.Fatalf("the logged URL answered %d:\n%.300s", code, body)
	}
	if code, _ := adminGet(t, a.admin, "/", ""); code != http.StatusUnauthorized {
		t.Errorf("the dashboard without the token answered %d, want 401", code)
	}
	waitFor(t, "the demo's four agents on the API", func() bool {
		code, body := adminGet(t, a.admin, "/api/v1/agents", logged[2])
		return code == http.StatusOK && bytes.Count(body, []byte(`"agentId"`)) == 4
	})
}
