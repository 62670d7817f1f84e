package phonesync

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/internal/testtool"
)

// ---- fake gateway ----

type fakeSvc struct {
	mu         sync.Mutex
	devices    map[string]*FeatureState
	hoteling   map[string]Hoteling
	passwords  map[string]string
	refuse     error // returned by every Set* when set
	calls      []string
	strangers  map[string]bool // agent IDs AuthorizeAgent refuses (ErrForbidden)
	authorized []string        // AuthorizeAgent's questions, "dn agent state"
	service    chan string     // "dn:true" / "dn:false"
	version    Version         // raised by change, as the gateway's view version
	// unavailable: FeatureState fails this many more times as a gateway
	// whose link to BroadWorks is not up yet does.
	unavailable int
}

func newFakeSvc(dns ...string) *fakeSvc {
	f := &fakeSvc{
		devices:   make(map[string]*FeatureState),
		hoteling:  make(map[string]Hoteling),
		passwords: map[string]string{"agent7": "secret7"},
		service:   make(chan string, 100),
	}
	for _, dn := range dns {
		f.devices[dn] = &FeatureState{
			Forwarding: []Forwarding{{Type: ForwardImmediate}, {Type: ForwardBusy}, {Type: ForwardNoAns}},
			Agent:      &AgentState{AgentID: "agent-" + dn, State: AgentLoggedOff},
		}
	}
	return f
}

func (f *fakeSvc) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeSvc) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// awaitCalls waits until n service calls have been made (a phone's change
// is applied after its SUBSCRIBE is answered) and takes them.
func (f *fakeSvc) awaitCalls(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.calls)
		f.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return f.takeCalls()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fakeSvc) setRefuse(err error) {
	f.mu.Lock()
	f.refuse = err
	f.mu.Unlock()
}

// change moves dn's state as the gateway does, under a new version, and
// returns c with that version, for Publish (the view moves first, then the
// change is published).
func (f *fakeSvc) change(dn string, c Change) Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	c.Version = f.version
	st := f.devices[dn]
	switch c.Kind {
	case ChangeDoNotDisturb:
		st.DoNotDisturb = c.DoNotDisturb
	case ChangeForwarding:
		for i := range st.Forwarding {
			if st.Forwarding[i].Type == c.Forwarding.Type {
				st.Forwarding[i] = c.Forwarding
			}
		}
	case ChangeAgent:
		a := c.Agent
		st.Agent = &a
	}
	return c
}

func (f *fakeSvc) FeatureState(ctx context.Context, dn string) (FeatureState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable > 0 {
		f.unavailable--
		return FeatureState{}, errors.New("csta: systemResourceAvailibility/resourceOutOfService")
	}
	st, ok := f.devices[dn]
	if !ok {
		return FeatureState{}, ErrUnknownDevice
	}
	out := *st
	out.Version = f.version // read with the values, under one lock
	out.Forwarding = append([]Forwarding(nil), st.Forwarding...)
	if st.Agent != nil {
		a := *st.Agent
		out.Agent = &a
	}
	return out, nil
}

func (f *fakeSvc) SetDoNotDisturb(ctx context.Context, dn string, on bool, origin Origin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("dnd %s %t %d", dn, on, origin)
	if f.refuse != nil {
		return f.refuse
	}
	f.devices[dn].DoNotDisturb = on
	return nil
}

func (f *fakeSvc) SetForwarding(ctx context.Context, dn string, fw Forwarding, origin Origin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("fwd %s %s %t %s %d", dn, fw.Type, fw.Active, fw.Number, origin)
	if f.refuse != nil {
		return f.refuse
	}
	for i, x := range f.devices[dn].Forwarding {
		if x.Type == fw.Type {
			f.devices[dn].Forwarding[i] = fw
		}
	}
	return nil
}

func (f *fakeSvc) SetAgentState(ctx context.Context, dn, agentID string, state AgentStateName, reason string, origin Origin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("agent %s %s %s %d", dn, state, reason, origin)
	if f.refuse != nil {
		return f.refuse
	}
	a := f.devices[dn].Agent
	a.State, a.Reason = state, reason
	if state == AgentLoggedOn {
		a.State = AgentNotReady
	}
	return nil
}

func (f *fakeSvc) AuthorizeAgent(ctx context.Context, dn, agentID string, state AgentStateName) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authorized = append(f.authorized, fmt.Sprintf("%s %s %s", dn, agentID, state))
	if f.strangers[agentID] {
		return ErrForbidden
	}
	return nil
}

func (f *fakeSvc) Hoteling(ctx context.Context, hostDN string) (Hoteling, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.devices[hostDN]; !ok {
		return Hoteling{}, ErrUnknownDevice
	}
	return f.hoteling[hostDN], nil
}

func (f *fakeSvc) SetHoteling(ctx context.Context, hostDN, guest string, origin Origin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("hoteling %s %q %d", hostDN, guest, origin)
	if f.refuse != nil {
		return f.refuse
	}
	f.hoteling[hostDN] = Hoteling{GuestAddress: guest}
	return nil
}

func (f *fakeSvc) GuestPassword(guest string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.passwords[guest]
	return p, ok
}

func (f *fakeSvc) PhoneService(dn string, in bool) {
	f.service <- fmt.Sprintf("%s:%t", dn, in)
}

// ---- server under test ----

func testLogger() *slog.Logger {
	if os.Getenv("PHONESYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.RequireAuth = false
	cfg.OptionsInterval = 0
	cfg.RequestTimeout = 2 * time.Second
	cfg.MinExpires = 2 * time.Second
	cfg.SubscribeRate = 0
	cfg.Credentials = map[string]string{}
	for _, dn := range []string{"1001", "1002", "1003", "9999"} {
		cfg.Credentials[dn] = "pw" + dn // newPhone's default credentials
	}
	return cfg
}

func startServer(t testing.TB, cfg Config, svc Service, tweak ...func(*Server)) *Server {
	t.Helper()
	s, err := NewServer(cfg, svc, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s.saveDelay = 20 * time.Millisecond
	s.sweepEvery = 50 * time.Millisecond
	for _, f := range tweak {
		f(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		testServers.CompareAndDelete(t, s)
	})
	testServers.Store(t, s)
	return s
}

// testServers lets a phone's cleanup close its test's server first: a
// server still pinging a phone that closes can have sipgo (phone side)
// open a socket for an answer after the phone's UA closed.
var testServers sync.Map // testing.TB -> *Server

// leakCheck registers goleak first, so it runs after every other cleanup.
// Goroutines already running (another test's) are not this test's to find.
func leakCheck(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// ---- a phone: a sipgo UA as subscriber ----

type testPhone struct {
	t         testing.TB
	dn        string
	transport string
	server    string // host:port of the server under test
	ua        *sipgo.UserAgent
	cli       *sipgo.Client
	local     string // UDP listen address
	closeConn func() error

	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup
	notifies chan *sip.Request

	notifyStatus  atomic.Int32
	answerOptions atomic.Bool
	deaf          atomic.Bool                   // NOTIFYs go unanswered (CSeqs noted in unanswered)
	answerGate    atomic.Pointer[chan struct{}] // non-nil: NOTIFY answers wait for it to close
	unanswered    sync.Map
	optionsSeen   atomic.Int32

	user, password string // digest credentials, "" = none
	challenge      *digest.Challenge
	nc             int

	callID, fromTag, toTag string
	cseq                   uint32
	target                 sip.Uri
}

func newPhone(t testing.TB, dn, transport, server string) *testPhone {
	t.Helper()
	p := &testPhone{t: t, dn: dn, transport: transport, server: server, notifies: make(chan *sip.Request, 512)}
	p.notifyStatus.Store(200)
	p.answerOptions.Store(true)
	p.user, p.password = dn, "pw"+dn
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone-"+dn), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnNotify(p.track(func(req *sip.Request, tx sip.ServerTransaction) {
		if p.deaf.Load() {
			p.unanswered.Store(req.CSeq().SeqNo, true)
			return
		}
		p.notifies <- req // before answering: the next NOTIFY waits for the answer, so order holds
		if g := p.answerGate.Load(); g != nil {
			<-*g
		}
		code := int(p.notifyStatus.Load())
		tx.Respond(sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil))
	}))
	srv.OnOptions(p.track(func(req *sip.Request, tx sip.ServerTransaction) {
		p.optionsSeen.Add(1)
		if p.answerOptions.Load() {
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	}))
	var done sync.WaitGroup
	opts := []sipgo.ClientOption{sipgo.WithClientLogger(testLogger())}
	if transport == "UDP" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.local = pc.LocalAddr().String()
		done.Go(func() { srv.ServeUDP(pc) })
		for range 200 { // until the listener is in the pool, so requests leave from it
			if c, err := ua.TransportLayer().GetConnection("udp", p.local); err == nil {
				c.Ref(-1)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		opts = append(opts, sipgo.WithClientConnectionAddr(p.local), sipgo.WithClientAddr(p.local))
		p.closeConn = pc.Close
	}
	cli, err := sipgo.NewClient(ua, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p.ua, p.cli = ua, cli
	p.callID = "call-" + randomToken(8)
	p.fromTag = "tag-" + randomToken(4)
	t.Cleanup(func() {
		if s, ok := testServers.Load(t); ok {
			s.(*Server).Close()
		}
		// No answers once closing (a late one would make sipgo open a
		// socket after the UA closed), then close.
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		p.handlers.Wait()
		if p.closeConn != nil {
			p.closeConn()
		}
		ua.Close()
		done.Wait()
	})
	return p
}

// holdAnswers makes the phone take NOTIFYs but answer none until
// releaseAnswers: the server's sender for it stays busy meanwhile.
func (p *testPhone) holdAnswers() {
	g := make(chan struct{})
	p.answerGate.Store(&g)
	p.t.Cleanup(p.releaseAnswers) // before the phone's own cleanup waits for its handlers
}

func (p *testPhone) releaseAnswers() {
	if g := p.answerGate.Swap(nil); g != nil {
		close(*g)
	}
}

func (p *testPhone) track(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			return
		}
		p.handlers.Add(1)
		p.mu.Unlock()
		defer p.handlers.Done()
		h(req, tx)
	}
}

type subOpts struct {
	event   string // default as-feature-event
	expires string // "" = 3600; "-" = no header
	body    string
	ctype   string
	newCall bool // forget the dialog first
}

// subscribe sends a SUBSCRIBE (in the dialog once one exists) and answers a
// 401 with digest credentials when the phone has some.
func (p *testPhone) subscribe(o subOpts) *sip.Response {
	p.t.Helper()
	if o.newCall {
		p.callID, p.fromTag, p.toTag = "call-"+randomToken(8), "tag-"+randomToken(4), ""
	}
	res := p.send(o, "")
	if res.StatusCode == 401 && p.user != "" {
		h := res.GetHeader("WWW-Authenticate")
		if h == nil {
			p.t.Fatal("401 without WWW-Authenticate")
		}
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			p.t.Fatal(err)
		}
		p.challenge, p.nc = chal, 0
		res = p.send(o, p.authorization())
	}
	if res.StatusCode == 200 && p.toTag == "" {
		p.toTag, _ = res.To().Params.Get("tag")
		if c := res.Contact(); c != nil {
			p.target = c.Address
		}
	}
	return res
}

func (p *testPhone) authorization() string {
	p.nc++
	uri := p.requestURI()
	cred, err := digest.Digest(p.challenge, digest.Options{Method: "SUBSCRIBE", URI: uri.String(), Username: p.user, Password: p.password, Count: p.nc})
	if err != nil {
		p.t.Fatal(err)
	}
	return cred.String()
}

func (p *testPhone) requestURI() sip.Uri {
	if p.toTag != "" && p.target.Host != "" {
		return p.target
	}
	host, port, _ := sip.ParseAddr(p.server)
	return sip.Uri{Scheme: "sip", User: p.dn, Host: host, Port: port}
}

func (p *testPhone) send(o subOpts, authorization string) *sip.Response {
	p.t.Helper()
	p.cseq++
	req := sip.NewRequest(sip.SUBSCRIBE, p.requestURI())
	req.SetTransport(p.transport)
	req.SetDestination(p.server)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", p.fromTag)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: "127.0.0.1"}, Params: sip.NewParams()}
	if p.toTag != "" {
		to.Params.Add("tag", p.toTag)
	}
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.SUBSCRIBE})
	contactHost, contactPort := "127.0.0.1", 5060
	if p.local != "" {
		contactHost, contactPort, _ = sip.ParseAddr(p.local)
	}
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: contactHost, Port: contactPort}}
	if p.transport != "UDP" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", strings.ToLower(p.transport))
	}
	req.AppendHeader(contact)
	event := o.event
	if event == "" {
		event = eventFeature
	}
	req.AppendHeader(sip.NewHeader("Event", event))
	switch o.expires {
	case "":
		req.AppendHeader(sip.NewHeader("Expires", "3600"))
	case "-":
	default:
		req.AppendHeader(sip.NewHeader("Expires", o.expires))
	}
	if authorization != "" {
		req.AppendHeader(sip.NewHeader("Authorization", authorization))
	}
	if o.body != "" {
		ct := o.ctype
		if ct == "" {
			ct = FeatureEventContentType
			if event == eventHoteling {
				ct = HotelingContentType
			}
		}
		h := sip.ContentTypeHeader(ct)
		req.AppendHeader(&h)
		req.SetBody([]byte(o.body))
	} else {
		req.SetBody(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("SUBSCRIBE: %v", err)
	}
	return res
}

// nextNotify waits for the next NOTIFY (failing the test after a generous
// time, which is a hang guard, not a latency assertion).
func (p *testPhone) nextNotify() *sip.Request {
	p.t.Helper()
	select {
	case n := <-p.notifies:
		return n
	case <-time.After(15 * time.Second):
		p.t.Fatalf("phone %s: no NOTIFY", p.dn)
		return nil
	}
}

// noNotify checks nothing arrives for a short while.
func (p *testPhone) noNotify(d time.Duration) {
	p.t.Helper()
	select {
	case n := <-p.notifies:
		p.t.Fatalf("unexpected NOTIFY: %s\n%s", hdr(n, "Subscription-State"), n.Body())
	case <-time.After(d):
	}
}

func hdr(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func cseqOf(req *sip.Request) uint32 { return req.CSeq().SeqNo }

func tagOf(params sip.HeaderParams) string {
	v, _ := params.Get("tag")
	return v
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

var nonceRE = regexp.MustCompile(`<nonce>([^<]+)</nonce>`)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 15*time.Second, what, cond)
}

func dndBody(dn string, on bool) string {
	return `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetDoNotDisturb xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>` + dn + `</device>
<doNotDisturbOn>` + strconv.FormatBool(on) + `</doNotDisturbOn>
</SetDoNotDisturb>
`
}

var errRefused = errors.New("refused by test")

// ---- tests ----

func TestServerStartAddrClose(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", s.Addr())
	}
	// TCP listens on the same port as UDP.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("TCP on %s: %v", s.Addr(), err)
	}
	c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewServerRejectsBadConfig(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"no listen":  func(c *Config) { c.Listen = "" },
		"bad listen": func(c *Config) { c.Listen = "nonsense" },
		"min>max":    func(c *Config) { c.MinExpires, c.MaxExpires = time.Hour, time.Minute },
		"missing tls": func(c *Config) {
			c.TLSListen, c.TLSCertFile, c.TLSKeyFile = "127.0.0.1:0", "/nonexistent.crt", "/nonexistent.key"
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			mut(&cfg)
			if s, err := NewServer(cfg, newFakeSvc(), testLogger()); err == nil {
				s.Close()
				t.Fatal("NewServer accepted it")
			}
		})
	}
}

func TestOptionsAndOtherMethods(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host, port, _ := sip.ParseAddr(s.Addr())
	for _, tc := range []struct {
		method sip.RequestMethod
		want   int
	}{{sip.OPTIONS, 200}, {sip.NOTIFY, 481}, {sip.MESSAGE, 405}} {
		req := sip.NewRequest(tc.method, sip.Uri{Scheme: "sip", Host: host, Port: port})
		req.SetTransport("UDP")
		req.AppendHeader(sip.NewHeader("Event", "dialog"))
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.method, res.StatusCode, tc.want)
		}
		if tc.method == sip.OPTIONS && !strings.Contains(hdr(res, "Allow-Events"), eventFeature) {
			t.Errorf("OPTIONS Allow-Events = %q", hdr(res, "Allow-Events"))
		}
	}
}
