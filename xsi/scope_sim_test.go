package xsi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/internal/testtool"
	"github.com/broadworks-connector/connector/internal/xmlcheck"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// scopeFront is an HTTP front in front of the simulator's handler (real
// sockets on 127.0.0.1): it records every request and lets a test answer
// some itself (a 400 to eventPackageList, a 403, ...) or hold them.
type scopeFront struct {
	t   *testing.T
	sim *xspsim.Server
	srv *httptest.Server

	mu   sync.Mutex
	reqs []frontReq
	// hook answers a request itself when it returns true.
	hook func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

type frontReq struct {
	method, path string
	body         []byte
	status       int // 0 for the streaming channel
}

// statusWriter records the status of a short request.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newScopeFront(t *testing.T, mod func(*xspsim.Config)) *scopeFront {
	t.Helper()
	sc := xspsim.Config{
		Users: []xspsim.User{
			{ID: "agent1@example.com", FirstName: "A", LastName: "One", CallCenter: true},
			{ID: "agent2@example.com", FirstName: "A", LastName: "Two", CallCenter: true},
			{ID: "agent3@example.com", FirstName: "A", LastName: "Three"},
		},
		Username:         "admin@example.com",
		Password:         "secret",
		Chunking:         xspsim.Chunking{Mode: xspsim.ChunkRandom, Seed: 11},
		HeartbeatTimeout: 5 * time.Second,
		EventAckTimeout:  5 * time.Second,
	}
	if mod != nil {
		mod(&sc)
	}
	f := &scopeFront{t: t, sim: xspsim.New(sc, nil)}
	h := f.sim.Handler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		hook := f.hook
		f.mu.Unlock()
		rec := frontReq{method: r.Method, path: r.URL.Path, body: body}
		if hook != nil && hook(w, r, body) {
			rec.status = -1 // answered by the test
			f.record(rec)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/channel") && r.Method == http.MethodPost {
			f.record(rec) // streaming: no status to wait for
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		rec.status = sw.status
		f.record(rec)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.sim.Shutdown(ctx) // ends the streams first, so Close does not wait on them
		f.srv.Close()
	})
	return f
}

func (f *scopeFront) record(r frontReq) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
}

func (f *scopeFront) setHook(h func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// refuseNewChannels is a hook that answers every channel POST 503: the
// XSP is down for new channels until the hook is removed.
func refuseNewChannels(w http.ResponseWriter, r *http.Request, _ []byte) bool {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/channel") {
		http.Error(w, "down for a moment", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// requests returns the recorded requests with method whose path ends in
// pathSuffix (or, for a suffix ending in "/", contains it).
func (f *scopeFront) requests(method, pathSuffix string) []frontReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []frontReq
	for _, r := range f.reqs {
		match := strings.HasSuffix(r.path, pathSuffix)
		if strings.HasSuffix(pathSuffix, "/") {
			match = strings.Contains(r.path, pathSuffix)
		}
		if r.method == method && match {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond (state held by another process: the simulator or the
// channel manager's goroutines) until it holds, or fails after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 10*time.Second, what, cond)
}

func scopeConfig(server string, scopes ...Target) Config {
	cfg := testEventsConfig(server)
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 100*time.Millisecond
	cfg.Targets = nil
	cfg.Scopes = scopes
	cfg.EventPackages = []string{"Call Center Agent", "Call Forwarding Always", "Do Not Disturb", "Hoteling Guest"}
	return cfg
}

// logLines counts log records by message (and scope attribute).
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) count(substrs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
outer:
	for _, line := range l.lines {
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue outer
			}
		}
		n++
	}
	return n
}

// startEvents builds and starts a channel set; it is stopped at cleanup.
func startEvents(t *testing.T, cfg Config, logger *slog.Logger) *Events {
	t.Helper()
	e, err := NewEvents(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopEvents(t, e) })
	return e
}

func stopEvents(t *testing.T, e *Events) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// nextEvent reads Events() (SubscriptionEvents and markers alike) until
// match accepts one.
func nextEvent(t *testing.T, e *Events, what string, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-e.Events():
			if !ok {
				t.Fatalf("events closed waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func scopeState(e *Events, i int) ScopeStatus { return e.Scopes()[i] }

func dndOf(user string, active bool) func(Event) bool {
	return func(ev Event) bool {
		se, ok := ev.(*SubscriptionEvent)
		if !ok {
			return false
		}
		d, ok := se.Data.(*DoNotDisturbEvent)
		return ok && d.Active == active && se.TargetID == user
	}
}

var grp1 = Target{Kind: KindGroup, ID: "grp1", ParentID: "ent1"}

// One subscription per scope with an eventPackageList, XSD-valid; a group
// subscription delivers every user's events and no initial ones; restarted,
// the connector adopts it (same ID, refreshed, nothing posted).
func TestScopeListSubscription(t *testing.T) {
	f := newScopeFront(t, nil)
	cfg := scopeConfig(f.srv.URL, grp1)
	e := startEvents(t, cfg, nil)
	waitFor(t, "scope active", func() bool { return scopeState(e, 0).State == ScopeActive })
	st := scopeState(e, 0)
	if st.Mode != ScopeList || st.Reason != "" || st.Scope != grp1 {
		t.Errorf("status %+v", st)
	}
	subs := f.sim.Subscriptions()
	if len(subs) != 1 || subs[0].TargetType != "Group" || subs[0].TargetID != "grp1" || !slices.Equal(subs[0].Packages, cfg.EventPackages) {
		t.Fatalf("subscriptions on the XSP: %+v", subs)
	}
	posts := f.requests(http.MethodPost, "/enterprise/ent1/group/grp1")
	if len(posts) != 1 || posts[0].status != http.StatusOK {
		t.Fatalf("posts %+v", posts)
	}
	xmlcheck.ValidXSI(t, map[string][]byte{"scope-list-subscription.xml": posts[0].body})
	if !bytes.Contains(posts[0].body, []byte("<eventPackageList><event>Call Center Agent</event>")) {
		t.Errorf("body %s", posts[0].body)
	}
	for _, u := range []string{"agent1@example.com", "agent3@example.com"} {
		if err := f.sim.PortalSetDND(u, true); err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, e, "DND of "+u, dndOf(u, true)).(*SubscriptionEvent)
		if ev.SubscriptionID != subs[0].ID {
			t.Errorf("event on %s, want the scope's %s", ev.SubscriptionID, subs[0].ID)
		}
	}
	stopEvents(t, e)

	// Restart: the list subscription is adopted, not posted again.
	e2 := startEvents(t, cfg, nil)
	waitFor(t, "adopted and refreshed", func() bool {
		return len(f.requests(http.MethodPut, "/subscription/"+subs[0].ID)) > 0 && scopeState(e2, 0).State == ScopeActive
	})
	if n := len(f.requests(http.MethodPost, "/enterprise/ent1/group/grp1")); n != 1 {
		t.Errorf("%d list posts after restart, want the first only", n)
	}
	if got := f.sim.Subscriptions(); len(got) != 1 || got[0].ID != subs[0].ID {
		t.Errorf("subscriptions after restart %+v", got)
	}
	if err := f.sim.PortalSetDND("agent2@example.com", true); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, e2, "DND of agent2 after restart", dndOf("agent2@example.com", true))
}

// An XSP that answers 400 to eventPackageList: one subscription per package
// for that scope, from then on (the list is not tried again), logged once;
// a restart adopts the per-package subscriptions and stays per package.
func TestScopeFallbackPerPackage(t *testing.T) {
	f := newScopeFront(t, nil)
	f.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method == http.MethodPost && bytes.Contains(body, []byte("eventPackageList")) {
			http.Error(w, "no lists here", http.StatusBadRequest)
			return true
		}
		return false
	})
	logs := &logLines{}
	cfg := scopeConfig(f.srv.URL, grp1)
	e := startEvents(t, cfg, slog.New(logs))
	waitFor(t, "scope active per package", func() bool {
		st := scopeState(e, 0)
		return st.State == ScopeActive && st.Mode == ScopePerPackage
	})
	subs := f.sim.Subscriptions()
	if len(subs) != len(cfg.EventPackages) {
		t.Fatalf("%d subscriptions, want %d: %+v", len(subs), len(cfg.EventPackages), subs)
	}
	var pkgs []string
	for _, s := range subs {
		if s.TargetType != "Group" || len(s.Packages) != 1 {
			t.Errorf("subscription %+v", s)
		}
		pkgs = append(pkgs, s.Packages[0])
	}
	slices.Sort(pkgs)
	if want := slices.Sorted(slices.Values(cfg.EventPackages)); !slices.Equal(pkgs, want) {
		t.Errorf("packages %v, want %v", pkgs, want)
	}
	if err := f.sim.PortalSetDND("agent2@example.com", true); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, e, "DND of agent2", dndOf("agent2@example.com", true))
	lists := 0
	for _, r := range f.requests(http.MethodPost, "/enterprise/ent1/group/grp1") {
		if bytes.Contains(r.body, []byte("eventPackageList")) {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d list posts, want 1 (the fallback is remembered)", lists)
	}
	if n := logs.count("INFO", "refused an event package list", "scope=group:grp1@ent1"); n != 1 {
		t.Errorf("fallback logged %d times, want 1", n)
	}
	stopEvents(t, e)

	// Restart on an XSP that would take lists: the per-package
	// subscriptions are adopted (no list beside them).
	f.setHook(nil)
	before := len(f.requests(http.MethodPost, "/enterprise/ent1/group/grp1"))
	e2 := startEvents(t, cfg, nil)
	waitFor(t, "adopted per package", func() bool {
		st := scopeState(e2, 0)
		if st.State != ScopeActive || st.Mode != ScopePerPackage {
			return false
		}
		for _, s := range subs {
			if len(f.requests(http.MethodPut, "/subscription/"+s.ID)) == 0 {
				return false
			}
		}
		return true
	})
	if n := len(f.requests(http.MethodPost, "/enterprise/ent1/group/grp1")); n != before {
		t.Errorf("%d posts after restart, want none", n-before)
	}
	if got := f.sim.Subscriptions(); len(got) != len(subs) {
		t.Errorf("%d subscriptions after restart, want %d", len(got), len(subs))
	}
}

// An unknown group (404) and a scope out of the credential's reach (403):
// Scopes() says so with the reason, ReadyScopes names the scope, and each
// is logged once however often it is retried; the good scope is active.
func TestScopeNotFoundAndForbidden(t *testing.T) {
	f := newScopeFront(t, nil)
	f.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/serviceprovider/sp2") {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ErrorInfo xmlns="`+NS+`"><summary>Forbidden</summary><summaryEnglish>Access denied to sp2</summaryEnglish><errorCode>4003</errorCode></ErrorInfo>`)
			return true
		}
		return false
	})
	logs := &logLines{}
	grp9 := Target{Kind: KindGroup, ID: "grp9", ParentID: "ent1"}
	sp2 := Target{Kind: KindServiceProvider, ID: "sp2"}
	e := startEvents(t, scopeConfig(f.srv.URL, grp1, grp9, sp2), slog.New(logs))
	// Retried a few times each: still one line per scope.
	waitFor(t, "retries", func() bool {
		return len(f.requests(http.MethodPost, "/enterprise/ent1/group/grp9")) >= 3 &&
			len(f.requests(http.MethodPost, "/serviceprovider/sp2")) >= 3 && scopeState(e, 0).State == ScopeActive
	})
	got := e.Scopes()
	if got[1].State != ScopeNotFound || !strings.HasPrefix(got[1].Reason, "not found (404)") {
		t.Errorf("grp9: %+v", got[1])
	}
	if got[2].State != ScopeForbidden || got[2].Reason != "forbidden (403): Access denied to sp2" {
		t.Errorf("sp2: %+v", got[2])
	}
	ok, why := ReadyScopes(got)
	if ok || !strings.HasPrefix(why, "xsi scope group:grp9@ent1: not found (404)") {
		t.Errorf("ready %v %q", ok, why)
	}
	if ok, why := ReadyScopes(got[2:]); ok || why != "xsi scope serviceprovider:sp2: forbidden (403): Access denied to sp2" {
		t.Errorf("ready %v %q", ok, why)
	}
	if n := logs.count("WARN", "scope=group:grp9@ent1", "state=not_found"); n != 1 {
		t.Errorf("404 logged %d times, want 1", n)
	}
	if n := logs.count("WARN", "scope=serviceprovider:sp2", "state=forbidden"); n != 1 {
		t.Errorf("403 logged %d times, want 1", n)
	}
	if n := logs.count("WARN", "scope=group:grp1"); n != 0 {
		t.Errorf("good scope logged %d warnings", n)
	}
	// The metric counts them.
	m := promtest.Scrape(t, e.Collectors()...)
	for state, want := range map[string]float64{"active": 1, "not_found": 1, "forbidden": 1, "pending": 0, "failing": 0} {
		promtest.WantSample(t, m, `connector_xsi_scopes{state="`+state+`"}`, want)
	}
	promtest.WantSample(t, m, `connector_xsi_watched_users`, 0)
	// The 403 lifts: active, logged once more, ready.
	f.setHook(nil)
	// sp2 is unknown to the simulator (404) once the 403 is gone: only the
	// state change is checked here.
	waitFor(t, "sp2 not found", func() bool { return scopeState(e, 2).State == ScopeNotFound })
	if n := logs.count("WARN", "scope=serviceprovider:sp2", "state=not_found"); n != 1 {
		t.Errorf("sp2 404 logged %d times, want 1", n)
	}
}

// ScopeResync is delivered after a channel loss (every scope), and once
// after a sequence gap that stays open: here the channel is cut, the XSP
// keeps only the newest of three events in its backlog meanwhile, and
// delivers it to the next channel. That event is delivered at once (the
// missing numbers might still come on another channel); nothing follows
// it, so run's timer reports the holes after evSeqHoleGrace, in one marker.
func TestScopeResyncChannelLossAndGap(t *testing.T) {
	f := newScopeFront(t, func(c *xspsim.Config) { c.BacklogSize = 1 })
	e := startEvents(t, scopeConfig(f.srv.URL, grp1), nil)
	waitFor(t, "scope active", func() bool { return scopeState(e, 0).State == ScopeActive })
	if err := f.sim.PortalSetDND("agent1@example.com", true); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, e, "first DND", dndOf("agent1@example.com", true))

	f.setHook(refuseNewChannels)
	chans := f.sim.Channels()
	if len(chans) != 1 {
		t.Fatalf("channels %+v", chans)
	}
	if err := f.sim.CutChannel(chans[0].ID); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, e, "channel-lost marker", func(ev Event) bool { _, ok := ev.(*ScopeResync); return ok })
	if r := ev.(*ScopeResync); r.Scope != grp1 || r.Reason != "channel lost" {
		t.Errorf("marker %+v", r)
	}
	// No channel now: three changes, the backlog keeps the last.
	for _, on := range []bool{false, true, false} {
		if err := f.sim.PortalSetDND("agent1@example.com", on); err != nil {
			t.Fatal(err)
		}
	}
	f.setHook(nil)
	expect := func(what string, want func(Event) bool) {
		t.Helper()
		nextEvent(t, e, what, func(ev Event) bool {
			if !want(ev) {
				t.Errorf("%s: got %T %+v", what, ev, ev)
			}
			return true
		})
	}
	expect("the event after the gap", dndOf("agent1@example.com", false))
	expect("one marker for the holes", func(ev Event) bool {
		r, ok := ev.(*ScopeResync)
		return ok && r.Scope == grp1 && r.Reason == "sequence gap"
	})
	// Nothing between the marker and the next change: the holes were
	// reported once.
	if err := f.sim.PortalSetDND("agent1@example.com", true); err != nil {
		t.Fatal(err)
	}
	expect("the next change", dndOf("agent1@example.com", true))
}

// A scope subscription the XSP ends (SubscriptionTerminatedEvent) is
// subscribed again, and ScopeResync follows: what happened in between is
// lost and the new subscription resends nothing.
func TestScopeResyncAfterTermination(t *testing.T) {
	f := newScopeFront(t, nil)
	e := startEvents(t, scopeConfig(f.srv.URL, grp1), nil)
	waitFor(t, "scope active", func() bool { return scopeState(e, 0).State == ScopeActive })
	old := f.sim.Subscriptions()[0].ID
	req, err := http.NewRequest(http.MethodDelete, f.srv.URL+evPath+"/subscription/"+old, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin@example.com", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	nextEvent(t, e, "terminated", func(ev Event) bool {
		se, ok := ev.(*SubscriptionEvent)
		if ok {
			_, ok = se.Data.(*SubscriptionTerminatedEvent)
		}
		return ok
	})
	ev := nextEvent(t, e, "resubscribed marker", func(ev Event) bool { _, ok := ev.(*ScopeResync); return ok })
	if r := ev.(*ScopeResync); r.Scope != grp1 || r.Reason != "resubscribed" {
		t.Errorf("marker %+v", r)
	}
	subs := f.sim.Subscriptions()
	if len(subs) != 1 || subs[0].ID == old {
		t.Errorf("subscriptions %+v", subs)
	}
	if st := scopeState(e, 0); st.State != ScopeActive {
		t.Errorf("status %+v", st)
	}
}

// WatchUser: per-package user subscriptions with their initial events,
// idempotent, bounded; UnwatchUser deletes them at the XSP, also when it
// comes while their creation is still in flight.
func TestWatchUser(t *testing.T) {
	f := newScopeFront(t, nil)
	cfg := scopeConfig(f.srv.URL)
	cfg.EventPackages = []string{"Call Forwarding Always", "Do Not Disturb"}
	cfg.MaxWatchedUsers = 2
	e := startEvents(t, cfg, nil)
	userSubs := func(u string) int {
		n := 0
		for _, s := range f.sim.Subscriptions() {
			if s.TargetType == "User" && s.TargetID == u {
				n++
			}
		}
		return n
	}
	if err := e.WatchUser("agent1@example.com"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, e, "agent1's initial DND", dndOf("agent1@example.com", false))
	waitFor(t, "agent1's two subscriptions", func() bool { return userSubs("agent1@example.com") == 2 })
	if err := e.WatchUser("agent1@example.com"); err != nil {
		t.Errorf("watch again: %v", err)
	}
	if err := e.WatchUser("agent2@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := e.WatchUser("agent3@example.com"); !errors.Is(err, ErrTooManyWatched) {
		t.Errorf("third user: %v, want ErrTooManyWatched", err)
	}
	for _, bad := range []string{"", "a b@example.com", "a/b", strings.Repeat("x", 300)} {
		if err := e.WatchUser(bad); err == nil || errors.Is(err, ErrTooManyWatched) {
			t.Errorf("WatchUser(%.20q): %v", bad, err)
		}
	}
	waitFor(t, "agent2's two subscriptions", func() bool { return userSubs("agent2@example.com") == 2 })
	if n := userSubs("agent1@example.com"); n != 2 {
		t.Errorf("agent1 has %d subscriptions after a second WatchUser, want 2", n)
	}
	if e.WatchedUsers() != 2 {
		t.Errorf("watched %d", e.WatchedUsers())
	}

	e.UnwatchUser("agent1@example.com")
	e.UnwatchUser("agent1@example.com")
	e.UnwatchUser("nobody@example.com")
	waitFor(t, "agent1's subscriptions deleted", func() bool { return userSubs("agent1@example.com") == 0 })
	if n := len(f.requests(http.MethodDelete, "/subscription/")); n != 2 {
		t.Errorf("%d DELETEs, want 2", n)
	}

	// Unwatched while its subscriptions are being created: they are
	// deleted once created.
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	f.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/user/agent3@example.com") {
			arrived <- struct{}{}
			<-release
		}
		return false
	})
	if err := e.WatchUser("agent3@example.com"); err != nil {
		t.Fatalf("after unwatching one: %v", err)
	}
	<-arrived
	<-arrived
	e.UnwatchUser("agent3@example.com")
	close(release)
	waitFor(t, "agent3's late subscriptions deleted", func() bool {
		return len(f.requests(http.MethodDelete, "/subscription/")) == 4 && userSubs("agent3@example.com") == 0
	})
	if n := len(f.requests(http.MethodPost, "/user/agent3@example.com")); n != 2 {
		t.Errorf("%d posts for agent3, want 2", n)
	}
	if e.WatchedUsers() != 1 || userSubs("agent2@example.com") != 2 {
		t.Errorf("watched %d, agent2 subscriptions %d", e.WatchedUsers(), userSubs("agent2@example.com"))
	}
}

// UnwatchUser then WatchUser before the deletion went out (no channel up,
// so no request is sent): the subscription is taken back, not deleted and
// posted again; its refresh brings the user's state.
func TestWatchUserTakesBackPendingDelete(t *testing.T) {
	f := newScopeFront(t, nil)
	cfg := scopeConfig(f.srv.URL)
	cfg.EventPackages = []string{"Do Not Disturb"}
	e := startEvents(t, cfg, nil)
	if err := e.WatchUser("agent1@example.com"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, e, "agent1's initial DND", dndOf("agent1@example.com", false))
	waitFor(t, "the subscription", func() bool { return len(f.sim.Subscriptions()) == 1 })
	id := f.sim.Subscriptions()[0].ID

	f.setHook(refuseNewChannels)
	if err := f.sim.CutChannel(f.sim.Channels()[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link down", func() bool { return e.LinkState()[0].State == LinkDown })
	e.UnwatchUser("agent1@example.com")
	if err := f.sim.PortalSetDND("agent1@example.com", true); err != nil {
		t.Fatal(err)
	}
	if err := e.WatchUser("agent1@example.com"); err != nil {
		t.Fatal(err)
	}
	f.setHook(nil)
	nextEvent(t, e, "agent1's DND on", dndOf("agent1@example.com", true))
	waitFor(t, "refreshed", func() bool { return len(f.requests(http.MethodPut, "/subscription/"+id)) > 0 })
	if n := len(f.requests(http.MethodDelete, "/subscription/")); n != 0 {
		t.Errorf("%d DELETEs, want none", n)
	}
	if n := len(f.requests(http.MethodPost, "/user/agent1@example.com")); n != 1 {
		t.Errorf("%d posts, want the first only", n)
	}
	if subs := f.sim.Subscriptions(); len(subs) != 1 || subs[0].ID != id {
		t.Errorf("subscriptions %+v, want %s kept", subs, id)
	}
}
