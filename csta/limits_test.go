package csta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/beevik/etree"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/internal/logguard"
	"github.com/broadworks-connector/connector/internal/testlog"
)

// Limits a flood cannot exceed (issue 13). Test clients bind to distinct
// loopback addresses (Linux routes all of 127/8 to lo) so that each is a
// source of its own.

// dialFrom connects to s from the local address ip.
func dialFrom(t testing.TB, s *Server, ip string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, fr: NewFrameReader(nc, MaxFrameSize)}
}

// wsDialFrom opens a WebSocket from the local address ip; the HTTP answer
// when the upgrade is refused.
func wsDialFrom(t *testing.T, url, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	d := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, nil)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// counterValue reads one series of a counter vector of s's collectors.
func counterValue(t *testing.T, s *Server, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestSourceOf(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.7:4242", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:4242", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:4242", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"pipe", "pipe"},
	} {
		if got := sourceOf(tt.remote); got != tt.want {
			t.Errorf("sourceOf(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestConnectionsPerSource: a source at its limit is refused at once, on
// either listener, while another source is still served; a slot freed is
// usable again.
func TestConnectionsPerSource(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnectionsPerSource = 2
	s := startServer(t, cfg, newFakeService())
	url := wsServer(t, s)
	a1, a2 := dialFrom(t, s, "127.0.0.2"), dialFrom(t, s, "127.0.0.2")
	a1.request(1, `<RequestSystemStatus/>`)
	a2.request(1, `<RequestSystemStatus/>`)

	dialFrom(t, s, "127.0.0.2").expectClosed()
	if _, resp, err := wsDialFrom(t, url, "127.0.0.2"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket from a source at its limit: err %v, response %v", err, resp)
	}
	if name, _ := dialFrom(t, s, "127.0.0.3").request(1, `<RequestSystemStatus/>`); name != "RequestSystemStatusResponse" {
		t.Fatalf("another source got %s", name)
	}
	if ws, _, err := wsDialFrom(t, url, "127.0.0.3"); err != nil {
		t.Fatalf("another source's WebSocket refused: %v", err)
	} else if f := wsRequest(t, ws, 1, `<RequestSystemStatus/>`); parseRoot(t, f.XML).Tag != "RequestSystemStatusResponse" {
		t.Fatalf("another source's WebSocket got %s", f.XML)
	}
	for transport, want := range map[string]float64{"tcp": 1, "websocket": 1} {
		if got := counterValue(t, s, "connector_cti_connections_dropped_total", map[string]string{"transport": transport, "reason": dropMaxPerSource}); got != want {
			t.Errorf("dropped{%s,%s} = %v, want %v", transport, dropMaxPerSource, got, want)
		}
	}

	a1.nc.Close()
	waitFor(t, func() bool { return s.Stats().Connections == 3 })
	if name, _ := dialFrom(t, s, "127.0.0.2").request(1, `<RequestSystemStatus/>`); name != "RequestSystemStatusResponse" {
		t.Fatalf("after a slot of its own freed, the source got %s", name)
	}
	// The table holds open connections only.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perSource["127.0.0.2"] != 2 || s.perSource["127.0.0.3"] != 2 || len(s.perSource) != 2 {
		t.Fatalf("per-source counts %v", s.perSource)
	}
}

// TestPerSourceLimitLiveOnReload: a raised limit admits the next
// connection at once.
func TestPerSourceLimitLiveOnReload(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnectionsPerSource = 1
	s := startServer(t, cfg, newFakeService())
	dialFrom(t, s, "127.0.0.4").request(1, `<RequestSystemStatus/>`)
	dialFrom(t, s, "127.0.0.4").expectClosed()
	cfg.MaxConnectionsPerSource = 2
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if name, _ := dialFrom(t, s, "127.0.0.4").request(1, `<RequestSystemStatus/>`); name != "RequestSystemStatusResponse" {
		t.Fatalf("after the reload the second connection got %s", name)
	}
}

// slowloris writes one byte of a never-ending frame at a time until the
// connection fails; the returned func stops it and waits.
func slowloris(nc net.Conn) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hdr, _ := AppendFrame(nil, 1, bytes.Repeat([]byte{' '}, 60000))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(hdr); i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := nc.Write(hdr[i : i+1]); err != nil {
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// TestSessionStartTimeout: when sessions are required, a connection that
// has not started one within session_start_timeout of its accept is closed,
// whether it is silent, trickles one byte at a time, or keeps sending whole
// frames that need no session; the idle timeout alone would have let all
// three stay for 600 s.
func TestSessionStartTimeout(t *testing.T) {
	for _, mode := range []string{"require_session", "password"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig()
			cfg.SessionStartTimeout = 100 * time.Millisecond
			if mode == "password" {
				cfg.TCPAuth = Auth{Mode: "password", UserName: "cti", Password: "s3cret"}
			} else {
				cfg.RequireSession = true
			}
			s := startServer(t, cfg, newFakeService())

			dialFrom(t, s, "127.0.0.2").expectClosed() // silent

			trickle := dialFrom(t, s, "127.0.0.3")
			stop := slowloris(trickle.nc)
			trickle.expectClosed()
			stop()

			// Whole frames, each answered, do not push the deadline back.
			chatty := dialFrom(t, s, "127.0.0.4")
			keepAlive, _ := AppendFrame(nil, 1, []byte(`<SystemStatus `+ns6+`><systemStatus>normal</systemStatus></SystemStatus>`))
			giveUp := time.Now().Add(5 * time.Second)
			for i := 1; ; i++ {
				if time.Now().After(giveUp) {
					t.Fatalf("still open after %d keep-alives: whole frames extended the deadline", i)
				}
				if _, err := chatty.nc.Write(keepAlive); err != nil {
					break // closed under the write
				}
				chatty.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := chatty.fr.ReadFrame(); err != nil {
					if errors.Is(err, io.EOF) || isConnReset(err) {
						break
					}
					t.Fatalf("keep-alive %d: %v", i, err)
				}
			}
			if got := counterValue(t, s, "connector_cti_connections_dropped_total", map[string]string{"transport": "tcp", "reason": dropSessionStartTimeout}); got != 3 {
				t.Fatalf("dropped{session_start_timeout} = %v, want 3", got)
			}
		})
	}
}

// TestSessionStartTimeoutBounds runs on fake time: a client that starts its
// session in time keeps its connection long past the timeout; one that
// does not is closed exactly at it, not before; without a required session
// only the idle timeout applies.
func TestSessionStartTimeoutBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.RequireSession = true
		s := NewServer(cfg, newFakeService("4711"), testLogger(t))

		late := pipeClient(t, s)
		inTime := pipeClient(t, s)
		time.Sleep(cfg.SessionStartTimeout - time.Second)
		inTime.openSession(1, startEd6)
		synctest.Wait()
		if n := s.Stats().Connections; n != 2 {
			t.Fatalf("%d connections before the timeout, want 2", n)
		}
		time.Sleep(time.Second)
		late.expectClosed()
		time.Sleep(30 * time.Second)
		if name, _ := inTime.request(2, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); name != "GetDoNotDisturbResponse" {
			t.Fatalf("session started in time: request answered %s", name)
		}

		// Stopping the session starts the deadline again.
		stop := `<StopApplicationSession ` + nsSess + `><sessionID>%s</sessionID><sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason></StopApplicationSession>`
		again := pipeClient(t, s)
		id := again.openSession(1, startEd6) // a 60 s session
		time.Sleep(50 * time.Second)
		if name, _ := again.request(2, fmt.Sprintf(stop, id)); name != "StopApplicationSessionPosResponse" {
			t.Fatalf("stop answered %s", name)
		}
		time.Sleep(cfg.SessionStartTimeout - time.Second)
		again.openSession(3, startEd6)

		// No session required: the idle timeout only.
		cfg.RequireSession = false
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		free := pipeClient(t, s)
		time.Sleep(cfg.SessionStartTimeout * 2)
		if name, _ := free.request(1, `<RequestSystemStatus/>`); name != "RequestSystemStatusResponse" {
			t.Fatalf("without a required session got %s", name)
		}
	})
}

// gatedMonitors holds every MonitorStart that reaches the Service until
// open is closed, so the slots reserved before it are all taken at once.
type gatedMonitors struct {
	*fakeService
	open    chan struct{}
	arrived atomic.Int32
	openAt  int32
	once    sync.Once
}

func (g *gatedMonitors) MonitorStart(ctx context.Context, who Requester, r *MonitorStart) error {
	if g.arrived.Add(1) == g.openAt {
		g.once.Do(func() { close(g.open) })
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.fakeService.MonitorStart(ctx, who, r)
}

// TestGlobalMonitorCap: MonitorStarts from many connections at once never
// hold more than max_monitors; past it they are answered
// objectMonitorLimitExceeded; a stopped monitor frees its slot.
func TestGlobalMonitorCap(t *testing.T) {
	const limit, conns, each = 10, 5, 8
	cfg := testConfig()
	cfg.MaxMonitors = limit
	svc := &gatedMonitors{fakeService: newFakeService("4711"), open: make(chan struct{}), openAt: limit}
	s := startServer(t, cfg, svc)
	start := `<MonitorStart ` + ns6 + `><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`

	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dial(t, s)
	}
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	var firstOK sync.Map // client index → a crossRefID
	errs := make(chan error, conns)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 1; j <= each; j++ {
				b, _ := AppendFrame(nil, j, []byte(start))
				if _, err := c.nc.Write(b); err != nil {
					errs <- err
					return
				}
			}
			for range each {
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				f, err := c.fr.ReadFrame()
				if err != nil {
					errs <- err
					return
				}
				doc := etree.NewDocument()
				if err := doc.ReadFromBytes(f.XML); err != nil {
					errs <- err
					return
				}
				switch root := doc.Root(); {
				case root.Tag == "MonitorStartResponse":
					ok.Add(1)
					firstOK.LoadOrStore(i, root.FindElement("monitorCrossRefID").Text())
				case errorOf(root) == "subscribedResourceAvailability/objectMonitorLimitExceeded":
					refused.Add(1)
				default:
					errs <- fmt.Errorf("MonitorStart answered %s", f.XML)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load() != limit || refused.Load() != conns*each-limit {
		t.Fatalf("%d monitors started and %d refused, want %d and %d", ok.Load(), refused.Load(), limit, conns*each-limit)
	}
	if st := s.Stats(); st.Monitors != limit || s.monitorCount.Load() != limit {
		t.Fatalf("server holds %d monitors, counts %d, want %d", st.Monitors, s.monitorCount.Load(), limit)
	}

	// A stopped monitor frees one slot, for any connection.
	var stopper, starter int = -1, -1
	firstOK.Range(func(k, v any) bool {
		stopper = k.(int)
		return false
	})
	starter = (stopper + 1) % conns
	id, _ := firstOK.Load(stopper)
	if name, _ := clients[stopper].request(100, `<MonitorStop `+ns6+`><monitorCrossRefID>`+id.(string)+`</monitorCrossRefID></MonitorStop>`); name != "MonitorStopResponse" {
		t.Fatalf("MonitorStop answered %s", name)
	}
	if name, _ := clients[starter].request(101, start); name != "MonitorStartResponse" {
		t.Fatalf("after a stop, MonitorStart answered %s", name)
	}
	if _, root := clients[starter].request(102, start); errorOf(root) != "subscribedResourceAvailability/objectMonitorLimitExceeded" {
		t.Fatalf("at the cap again, MonitorStart answered %q", errorOf(root))
	}
	// A closed connection gives all its slots back.
	for _, c := range clients {
		c.nc.Close()
	}
	waitFor(t, func() bool { return s.monitorCount.Load() == 0 && s.Stats().Monitors == 0 })
}

// TestMonitorCapPerConnectionUnderBurst: a pipelined burst on one
// connection never holds more than max_monitors_per_connection.
func TestMonitorCapPerConnectionUnderBurst(t *testing.T) {
	const limit, burst = 3, 20
	cfg := testConfig()
	cfg.MaxMonitorsPerConn = limit
	svc := &gatedMonitors{fakeService: newFakeService("4711"), open: make(chan struct{}), openAt: limit}
	s := startServer(t, cfg, svc)
	c := dial(t, s)
	for i := 1; i <= burst; i++ {
		c.send(i, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
	}
	started := 0
	for range burst {
		f := c.read()
		root := parseRoot(t, f.XML)
		switch {
		case root.Tag == "MonitorStartResponse":
			started++
		case errorOf(root) != "subscribedResourceAvailability/objectMonitorLimitExceeded":
			t.Fatalf("MonitorStart %d answered %s", f.InvokeID, f.XML)
		}
	}
	if started != limit || s.Stats().Monitors != limit {
		t.Fatalf("%d started, server holds %d, want %d", started, s.Stats().Monitors, limit)
	}
	// The requests past the cap never cost the Service anything.
	if n := svc.arrived.Load(); n != limit {
		t.Fatalf("the Service was asked %d times, want %d", n, limit)
	}
}

// ---- failed-login throttling ----

// fakeClock is the throttle's injected clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startServerClock is startServer with the injected clock.
func startServerClock(t *testing.T, cfg Config, svc Service, clock *fakeClock) *Server {
	t.Helper()
	s := NewServer(cfg, svc, testLogger(t))
	s.now = clock.Now
	return startServerWith(t, s)
}

func throttleConfig() Config {
	cfg := testConfig()
	cfg.RequireSession = true
	cfg.TCPAuth = Auth{Mode: "password", UserName: "cti", Password: "s3cret", Users: map[string]string{"bob": "bob-pw"}}
	cfg.WebSocketAuth = Auth{Mode: "password", UserName: "web", Password: "web-pw"}
	cfg.LoginFailuresBeforeBackoff = 3
	cfg.LoginLockoutAfter = 6
	cfg.LoginLockout = time.Minute
	return cfg
}

// tryLogin opens a connection from ip, sends one StartApplicationSession,
// and returns the answer frame; a refused login must close the connection.
func tryLogin(t *testing.T, s *Server, ip, user, password string) (accepted bool, answer []byte) {
	t.Helper()
	c := dialFrom(t, s, ip)
	c.send(7, login(user, password))
	f := c.read()
	switch tag := parseRoot(t, f.XML).Tag; tag {
	case "StartApplicationSessionPosResponse":
		c.nc.Close()
		return true, f.XML
	case "StartApplicationSessionNegResponse":
		c.expectClosed()
		return false, f.XML
	default:
		t.Fatalf("login answered %s", f.XML)
	}
	return false, nil
}

func mustLogin(t *testing.T, s *Server, ip, user, password string, want bool) []byte {
	t.Helper()
	got, answer := tryLogin(t, s, ip, user, password)
	if got != want {
		t.Fatalf("login %s/%s from %s accepted=%v, want %v", user, password, ip, got, want)
	}
	return answer
}

// TestLoginThrottlePerUser: failures of one user name from one source slow
// down that name from every source, a correct password included; once the
// back-off has passed the user gets in, and that success clears its record.
func TestLoginThrottlePerUser(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := startServerClock(t, throttleConfig(), newFakeService(), clock)
	for range 3 {
		mustLogin(t, s, "127.0.0.2", "cti", "guess", false)
	}
	// Past the free failures: refused from another source without a check.
	mustLogin(t, s, "127.0.0.3", "cti", "s3cret", false)
	clock.Advance(time.Second) // the first back-off
	mustLogin(t, s, "127.0.0.3", "cti", "s3cret", true)
	// The success cleared the user: three free failures again.
	for range 3 {
		mustLogin(t, s, "127.0.0.4", "cti", "guess", false)
	}
	mustLogin(t, s, "127.0.0.5", "cti", "s3cret", false)
	if got := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "tcp", "reason": loginThrottled}); got != 2 {
		t.Fatalf("login_failures{throttled} = %v, want 2", got)
	}
	if got := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "tcp", "reason": loginBadCredentials}); got != 6 {
		t.Fatalf("login_failures{bad_credentials} = %v, want 6", got)
	}
}

// TestLoginThrottlePerSource: one source guessing at many names is slowed
// down for every name, and its own valid login does not wipe its record.
func TestLoginThrottlePerSource(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := startServerClock(t, throttleConfig(), newFakeService(), clock)
	mustLogin(t, s, "127.0.0.2", "u1", "x", false)
	mustLogin(t, s, "127.0.0.2", "u2", "x", false)
	mustLogin(t, s, "127.0.0.2", "bob", "bob-pw", true) // the attacker's own account
	mustLogin(t, s, "127.0.0.2", "u3", "x", false)
	// Three failures on the source, whatever the success in between.
	mustLogin(t, s, "127.0.0.2", "cti", "s3cret", false)
	mustLogin(t, s, "127.0.0.3", "cti", "s3cret", true) // another source is not slowed
	clock.Advance(time.Second)
	mustLogin(t, s, "127.0.0.2", "cti", "s3cret", true)
}

// TestLoginBackoffThenLockout: each failure past the free ones doubles the
// wait, and at login_lockout_after the source is locked for login_lockout
// even when the back-off has passed; after it, a correct login works.
func TestLoginBackoffThenLockout(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := startServerClock(t, throttleConfig(), newFakeService(), clock)
	for range 3 {
		mustLogin(t, s, "127.0.0.2", "bob", "guess", false)
	}
	// Failures 4, 5, 6 each after their back-off (1 s, 2 s, 4 s): each one
	// is checked, and refused because it is wrong; one attempt within the
	// back-off is refused unchecked and not counted.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clock.Advance(wait - time.Millisecond)
		mustLogin(t, s, "127.0.0.2", "bob", "bob-pw", false)
		clock.Advance(time.Millisecond)
		mustLogin(t, s, "127.0.0.2", "bob", "guess", false)
		if got := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "tcp", "reason": loginBadCredentials}); got != float64(4+i) {
			t.Fatalf("after failure %d: bad_credentials = %v", 4+i, got)
		}
	}
	// Six failures: locked out for a minute, correct password or not.
	for _, wait := range []time.Duration{8 * time.Second, 30 * time.Second, 21 * time.Second} {
		clock.Advance(wait)
		mustLogin(t, s, "127.0.0.3", "bob", "bob-pw", false) // the user, from elsewhere
		mustLogin(t, s, "127.0.0.2", "cti", "s3cret", false) // the source, as another user
	}
	if got := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "tcp", "reason": loginLockedOut}); got != 6 {
		t.Fatalf("login_failures{locked_out} = %v, want 6", got)
	}
	clock.Advance(time.Second) // a minute after the last failure
	mustLogin(t, s, "127.0.0.2", "bob", "bob-pw", true)
	mustLogin(t, s, "127.0.0.2", "cti", "s3cret", true)
}

// TestLoginThrottleAnswersAlike: a wrong password, an unknown user, and
// either of them throttled get the same bytes and the same closed
// connection, so neither the answer nor the throttle tells which names
// exist.
func TestLoginThrottleAnswersAlike(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := startServerClock(t, throttleConfig(), newFakeService(), clock)
	answers := map[string][]byte{
		"known, wrong password": mustLogin(t, s, "127.0.0.2", "cti", "guess", false),
		"unknown user":          mustLogin(t, s, "127.0.0.3", "nobody", "guess", false),
	}
	for range 2 {
		mustLogin(t, s, "127.0.0.2", "cti", "guess", false)
		mustLogin(t, s, "127.0.0.3", "nobody", "guess", false)
	}
	answers["known, throttled"] = mustLogin(t, s, "127.0.0.4", "cti", "s3cret", false)
	answers["unknown, throttled"] = mustLogin(t, s, "127.0.0.5", "nobody", "s3cret", false)
	for name, a := range answers {
		if !bytes.Equal(a, answers["known, wrong password"]) {
			t.Errorf("%s answered\n%s\nwrong password answered\n%s", name, a, answers["known, wrong password"])
		}
	}
	// Both names are throttled the same way.
	sources, users := s.logins.size()
	if sources != 2 || users != 2 {
		t.Fatalf("throttle holds %d sources and %d users, want 2 and 2", sources, users)
	}
}

// TestLoginThrottleOverWebSocket: the WebSocket listener's logins go
// through the same throttle; the source is shared with TCP, the user names
// are the listener's own.
func TestLoginThrottleOverWebSocket(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := throttleConfig()
	cfg.TCPAuth.Users["web"] = "tcp-web-pw" // same name, another listener's user
	s := startServerClock(t, cfg, newFakeService(), clock)
	url := wsServer(t, s)
	wsLogin := func(ip, user, password string) string {
		ws, _, err := wsDialFrom(t, url, ip)
		if err != nil {
			t.Fatal(err)
		}
		return parseRoot(t, wsRequest(t, ws, 1, login(user, password)).XML).Tag
	}
	for range 3 {
		if tag := wsLogin("127.0.0.2", "web", "guess"); tag != "StartApplicationSessionNegResponse" {
			t.Fatalf("wrong WebSocket password answered %s", tag)
		}
	}
	if tag := wsLogin("127.0.0.3", "web", "web-pw"); tag != "StartApplicationSessionNegResponse" {
		t.Fatalf("throttled WebSocket user answered %s", tag)
	}
	mustLogin(t, s, "127.0.0.2", "cti", "s3cret", false)    // the source, over TCP
	mustLogin(t, s, "127.0.0.4", "web", "tcp-web-pw", true) // TCP's web is not WebSocket's
	mustLogin(t, s, "127.0.0.5", "cti", "s3cret", true)
	if got := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "websocket", "reason": loginThrottled}); got != 1 {
		t.Fatalf("websocket throttled = %v, want 1", got)
	}
}

// TestLoginThrottleConcurrentBurst: a burst of concurrent attempts from one
// source cannot all be checked before the first failure is recorded: past
// the free failures they are taken one at a time.
func TestLoginThrottleConcurrentBurst(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := throttleConfig()
	s := startServerClock(t, cfg, newFakeService(), clock)
	const burst = 40
	clients := make([]*client, burst)
	for i := range clients {
		clients[i] = dialFrom(t, s, "127.0.0.2")
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := AppendFrame(nil, 7, []byte(login(fmt.Sprint("u", i), "x")))
			c.nc.Write(b)
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if tag := parseRoot(t, c.read().XML).Tag; tag != "StartApplicationSessionNegResponse" {
			t.Fatalf("burst login answered %s", tag)
		}
	}
	// The clock stands still, so no back-off ends: exactly the free ones.
	checked := counterValue(t, s, "connector_cti_login_failures_total", map[string]string{"transport": "tcp", "reason": loginBadCredentials})
	if checked != float64(cfg.LoginFailuresBeforeBackoff) {
		t.Fatalf("%v of %d concurrent attempts were checked, want %d", checked, burst, cfg.LoginFailuresBeforeBackoff)
	}
}

// TestLoginThrottleTablesBounded: invented names and sources cannot grow
// the throttle past its cap; the oldest records go first.
func TestLoginThrottleTablesBounded(t *testing.T) {
	var lt loginThrottle
	p := loginPolicy{free: 3, lockAfter: 6, lockout: time.Minute}
	now := time.Unix(1_700_000_000, 0)
	first := userKey("tcp", "victim")
	for range 3 {
		a, refused := lt.begin(p, "198.51.100.1", first, now)
		if a == nil {
			t.Fatalf("refused %s", refused)
		}
		a.done(false, now)
	}
	if _, refused := lt.begin(p, "198.51.100.2", first, now); refused != loginThrottled {
		t.Fatalf("victim after 3 failures: %q", refused)
	}
	for i := range loginThrottleEntries + 500 {
		now = now.Add(time.Millisecond)
		a, refused := lt.begin(p, fmt.Sprint("203.0.113.", i), userKey("tcp", fmt.Sprint("name", i)), now)
		if a == nil {
			t.Fatalf("attempt %d refused %s", i, refused)
		}
		a.done(false, now)
	}
	sources, users := lt.size()
	if sources > loginThrottleEntries || users > loginThrottleEntries {
		t.Fatalf("tables hold %d sources and %d users, cap %d", sources, users, loginThrottleEntries)
	}
	if lt.user.get(first) != nil {
		t.Fatal("the oldest record was not the one dropped")
	}
}

// ---- log bounds and health ----

func guardedLogger(buf *testlog.Buffer) *slog.Logger {
	now := time.Unix(1_700_000_000, 0) // one rate-limit window for the whole test
	return slog.New(logguard.NewHandler(slog.NewTextHandler(buf, nil), logguard.Options{Now: func() time.Time { return now }}))
}

// TestRefusalFloodsLogBounded: a connection flooding past the outstanding
// limit, and a source flooding past its connection limit, each write a
// bounded number of lines, because each line names its source.
func TestRefusalFloodsLogBounded(t *testing.T) {
	const flood = 300
	var buf testlog.Buffer
	cfg := testConfig()
	cfg.MaxOutstandingRequests = 1
	cfg.MaxConnectionsPerSource = 1
	svc := newFakeService()
	svc.stall = make(chan struct{})
	defer close(svc.stall)
	s := NewServer(cfg, svc, guardedLogger(&buf))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())

	flooders := []*client{dialFrom(t, s, "127.0.0.2"), dialFrom(t, s, "127.0.0.3")}
	for _, c := range flooders {
		c.send(1, `<GetDoNotDisturb `+ns6+`><device>stall</device></GetDoNotDisturb>`)
		for i := 2; i <= flood; i++ {
			c.send(i, `<GetDoNotDisturb `+ns6+`><device>stall</device></GetDoNotDisturb>`)
		}
		for range flood - 1 {
			if got := errorOf(parseRoot(t, c.read().XML)); got != "subscribedResourceAvailability/outstandingReqLimitExceeded" {
				t.Fatalf("flood answered %q", got)
			}
		}
	}
	if n := buf.Count("CSTA outstanding request limit reached"); n != 2*logguard.DefaultBurst {
		t.Fatalf("%d lines for %d refused requests from 2 sources, want %d", n, 2*(flood-1), 2*logguard.DefaultBurst)
	}

	for range flood {
		dialFrom(t, s, "127.0.0.2").expectClosed()
	}
	waitFor(t, func() bool {
		return counterValue(t, s, "connector_cti_connections_dropped_total", map[string]string{"transport": "tcp", "reason": dropMaxPerSource}) == flood
	})
	if n := buf.Count("CSTA connection refused"); n != logguard.DefaultBurst {
		t.Fatalf("%d lines for %d refused connections, want %d", n, flood, logguard.DefaultBurst)
	}
}

// fakeListener accepts what the test feeds it.
type fakeListener struct {
	next   chan any // net.Conn or error
	closed chan struct{}
	once   sync.Once
}

func newFakeListener() *fakeListener {
	return &fakeListener{next: make(chan any), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case v := <-l.next:
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v.(net.Conn), nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8800} }

// TestAcceptFailuresHealthAndLog: a run of Accept errors (descriptors
// exhausted) is retried by the guarded listener, turns Health red after a
// second, and one accepted connection ends it; each failure is one
// rate-limited line, the recovery one more.
func TestAcceptFailuresHealthAndLog(t *testing.T) {
	var buf testlog.Buffer
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := NewServer(testConfig(), nil, guardedLogger(&buf))
	s.now = clock.Now
	if s.Health() == nil {
		t.Fatal("healthy before it serves")
	}
	ln := newFakeListener()
	if err := s.serve(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Health(); err != nil {
		t.Fatalf("serving, Health = %v", err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	for range 4 {
		ln.next <- emfile // taken by the next Accept: the one before is recorded by then
	}
	if err := s.Health(); err != nil {
		t.Fatalf("failing for less than a second, Health = %v", err)
	}
	clock.Advance(2 * time.Second)
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "too many open files") {
		t.Fatalf("failing for 2 s, Health = %v", err)
	}
	srv, cli := net.Pipe()
	defer cli.Close()
	ln.next <- srv
	waitFor(t, func() bool { return s.Health() == nil })
	if n := buf.Count("accept failed; retrying"); n != 4 {
		t.Fatalf("%d lines for 4 failures, want one each", n)
	}
	waitFor(t, func() bool { return buf.Count("accepting again") == 1 })
}

// TestHealthReportsStoppedListener: a listener closed under the server
// (not by Close or Shutdown) turns Health red with the reason.
func TestHealthReportsStoppedListener(t *testing.T) {
	s := NewServer(testConfig(), nil, testLogger(t))
	ln := newFakeListener()
	if err := s.serve(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ln.Close()
	waitFor(t, func() bool { return s.Health() != nil })
	if err := s.Health(); !strings.Contains(err.Error(), "TCP listener stopped") {
		t.Fatalf("Health = %v", err)
	}

	clean := startServer(t, testConfig(), nil)
	if err := clean.Health(); err != nil {
		t.Fatalf("serving, Health = %v", err)
	}
	clean.Close()
	if err := clean.Health(); err == nil || strings.Contains(err.Error(), "stopped") {
		t.Fatalf("after Close, Health = %v, want shut down", err)
	}
}
