// Package stack builds the whole connector in process for end-to-end tests
// and benchmarks: the XSP simulator seeded with agents and hot desks, the
// Xsi-Actions client and Xsi-Events channel set (a user target for every
// user), the gateway with its hot-desk sequencer (a file-backed state
// store) and the CSTA front end on 127.0.0.1:0, wired the way
// cmd/connector's run does (xsilink.go).
//
// The connector side (xsi, gateway, sequencer, csta) can be stopped and
// built again against the same simulator and the same hoteling state file,
// gracefully (StopConnector) or as a crash (CrashConnector: from that
// moment nothing more reaches BroadWorks or the state file).
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Domain is the directory domain of every seeded user.
const Domain = "example.com"

const (
	simUser = "admin@" + Domain
	simPass = "secret"
)

// Config sizes and tunes a Stack. Zero values get the defaults noted.
type Config struct {
	Agents int // call-center agents agent0001..; default 1
	Desks  int // hot desks desk0001..; default 1
	// DeskCFA is the own Call Forwarding Always of desk i (1-based) seeded
	// before the connector starts; "" leaves it off. Default: even desks
	// forward to DeskOwnNumber(i), odd desks have none.
	DeskCFA func(i int) string
	// StateFile is the hoteling state file; default a file in a new
	// temporary directory (removed by Close).
	StateFile string

	MaxInFlight    int           // xsi.Config.MaxInFlight; default 32
	XSITimeout     time.Duration // xsi.Config.RequestTimeout (includes waiting for one of the MaxInFlight slots); default 5s
	StepTimeout    time.Duration // hoteling step timeout; default 2s
	RequestTimeout time.Duration // gateway request timeout; default 10s
	QueueLength    int           // hoteling queue length; 0: the sequencer's default
	RecoverMode    string        // hoteling recover mode; default undo
	// Logger for every component; default discards.
	Logger *slog.Logger
	// LoadProcess is the path of a load-process command (BuildLoadProcess):
	// when set, the simulator runs in that process (Stack.Load) and Sim is
	// nil, so that this process's CPU time is the connector's alone.
	LoadProcess string
	// ReadyTimeout bounds waiting for the link and the snapshots; default
	// 30s.
	ReadyTimeout time.Duration
	// XSPs is how many XSP front ends the simulator serves (xspsim AddXSP;
	// XSP 0 is the primary), all given to the XSI link in that order;
	// default 1. More than one needs the simulator in this process.
	XSPs int
	// SimConfig, when set, adjusts the simulator's configuration before it
	// starts (e.g. expiries, heartbeat timeout, unavailable codes); the
	// simulator in this process only.
	SimConfig func(*xspsim.Config)
	// XSIConfig, when set, adjusts the XSI link's configuration of every
	// connector life (e.g. channel and subscription expiries).
	XSIConfig func(*xsi.Config)
	// GatewayConfig, when set, adjusts the gateway's configuration of every
	// connector life (e.g. reason codes).
	GatewayConfig func(*gateway.Config)
	// Phones starts phone sync (a phonesync.Server served by the gateway's
	// PhoneService, the gateway publishing to it, as run wires it) on
	// 127.0.0.1:0 (UDP and TCP), on the same address again in later
	// connector lives. Digest authentication is off; subscriptions are
	// kept in memory only.
	Phones bool
	// PhonesConfig, when set, adjusts phone sync's configuration of every
	// connector life (e.g. liveness intervals).
	PhonesConfig func(*phonesync.Config)
	// OnEvent, when set, sees every XSI event the channel set hands to the
	// gateway, in that order, just before the gateway does (diagnostics).
	OnEvent func(xsi.Event)
}

// DeskOwnNumber is the default own forwarding number of desk i.
func DeskOwnNumber(i int) string { return fmt.Sprintf("+1555000%04d", i) }

// AgentID is the CSTA agent ID (and own device) of agent i (1-based).
func AgentID(i int) string { return fmt.Sprintf("agent%04d", i) }

// AgentUser is the BroadWorks user of agent i.
func AgentUser(i int) string { return AgentID(i) + "@" + Domain }

// AgentNumber is what a desk forwards to while agent i is its guest.
func AgentNumber(i int) string { return AgentID(i) }

// DeskID is the CSTA device ID of hot desk i (1-based).
func DeskID(i int) string { return fmt.Sprintf("desk%04d", i) }

// DeskUser is the BroadWorks user of hot desk i.
func DeskUser(i int) string { return DeskID(i) + "@" + Domain }

// Stack is a running simulator and, between Start and Stop, a connector.
type Stack struct {
	cfg     Config
	sipAddr string // phone sync's address, kept across connector lives
	tmpDir  string
	users   []string
	Sim     *xspsim.Server // nil with Config.LoadProcess
	peer    simPeer        // the simulator, wherever it runs
	mu      sync.Mutex
	conn    *Connector
	started int // connectors built so far
}

// Connector is one life of the connector side.
type Connector struct {
	Client    *xsi.Client
	Events    *xsi.Events
	Gateway   *gateway.Gateway
	Sequencer *hoteling.Sequencer
	CSTA      *csta.Server
	Phones    *phonesync.Server // nil without Config.Phones
	Repairs   []gateway.Repair  // what start-up recovery did

	acts      *gatedActions
	store     *gatedStore
	cancel    context.CancelFunc
	runEnd    chan struct{}
	repairEnd chan struct{}
}

// LinkRepairs is what the reconciler did after start-up recovery, so far.
func (c *Connector) LinkRepairs() []gateway.Repair {
	all := c.Gateway.Repairs()
	return all[min(len(c.Repairs), len(all)):]
}

// New seeds and starts the simulator; no connector runs until Start.
func New(cfg Config) (*Stack, error) {
	if cfg.Agents <= 0 {
		cfg.Agents = 1
	}
	if cfg.Desks <= 0 {
		cfg.Desks = 1
	}
	if cfg.DeskCFA == nil {
		cfg.DeskCFA = func(i int) string {
			if i%2 == 0 {
				return DeskOwnNumber(i)
			}
			return ""
		}
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 32
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 2 * time.Second
	}
	if cfg.XSITimeout <= 0 {
		cfg.XSITimeout = 5 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.XSPs <= 0 {
		cfg.XSPs = 1
	}
	if cfg.LoadProcess != "" && (cfg.XSPs > 1 || cfg.SimConfig != nil) {
		return nil, errors.New("stack: XSPs > 1 and SimConfig need the simulator in this process")
	}
	s := &Stack{cfg: cfg}
	if cfg.StateFile == "" {
		dir, err := os.MkdirTemp("", "stack-hoteling-")
		if err != nil {
			return nil, err
		}
		s.tmpDir = dir
		s.cfg.StateFile = filepath.Join(dir, "hoteling.json")
	}
	var users []xspsim.User
	for i := 1; i <= cfg.Agents; i++ {
		users = append(users, xspsim.User{ID: AgentUser(i), FirstName: AgentID(i), LastName: "Agent", CallCenter: true})
		s.users = append(s.users, AgentUser(i))
	}
	for i := 1; i <= cfg.Desks; i++ {
		// CallCenter too, so that one event package list fits every target.
		users = append(users, xspsim.User{ID: DeskUser(i), FirstName: DeskID(i), LastName: "Desk", HotelingHost: true, CallCenter: true})
		s.users = append(s.users, DeskUser(i))
	}
	cfa := map[string]string{}
	for i := 1; i <= cfg.Desks; i++ {
		if n := cfg.DeskCFA(i); n != "" {
			cfa[DeskUser(i)] = n
		}
	}
	if err := s.startSimulator(users, cfa); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *Stack) Config() Config { return s.cfg }

// Users are every seeded BroadWorks user, agents first.
func (s *Stack) Users() []string { return s.users }

// StateFile is the hoteling state file.
func (s *Stack) StateFile() string { return s.cfg.StateFile }

// Conn is the running connector (nil when stopped).
func (s *Stack) Conn() *Connector {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// CSTAAddr is the running connector's CSTA listen address.
func (s *Stack) CSTAAddr() string { return s.Conn().CSTA.Addr().String() }

// serverURLs are the base URLs of every XSP, the primary first.
func (s *Stack) serverURLs() []string {
	if s.Sim == nil {
		return []string{s.peer.URL()}
	}
	urls := make([]string, s.cfg.XSPs)
	for i := range urls {
		urls[i] = s.Sim.URLOf(i)
	}
	return urls
}

// Dial connects a CTI client to the running connector.
func (s *Stack) Dial(ctx context.Context, opts ...cticlient.Option) (*cticlient.Client, error) {
	return cticlient.Dial(ctx, s.CSTAAddr(), opts...)
}

// numberOf is the directory's forward-to number of a guest (as
// config.Hoteling builds it: the user part for users of the domain).
func numberOf(userID string) string {
	if u, ok := strings.CutSuffix(userID, "@"+Domain); ok {
		return u
	}
	return ""
}

// Start builds and starts a connector: xsi client and channel set, gateway
// and sequencer (state file store), csta front end; waits until the link
// is up and the gateway's view of every user agrees with the simulator,
// then runs start-up recovery (as run does once the snapshots are in) and
// returns.
func (s *Stack) Start() error {
	s.mu.Lock()
	if s.conn != nil {
		s.mu.Unlock()
		return errors.New("stack: connector already running")
	}
	s.started++
	s.mu.Unlock()
	logger := s.cfg.Logger
	c := &Connector{runEnd: make(chan struct{})}

	xcfg := xsi.DefaultConfig()
	xcfg.Servers = s.serverURLs()
	xcfg.Username, xcfg.Password = simUser, simPass
	xcfg.RequestTimeout = s.cfg.XSITimeout
	xcfg.MaxInFlight = s.cfg.MaxInFlight
	xcfg.RateLimit, xcfg.RateBurst = 1e6, 1e6
	xcfg.HeartbeatInterval = time.Second
	xcfg.ReconnectMin, xcfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	// As run has it: the simulator's group as the scope, users read from
	// BroadWorks on first reference (gateway.Config.LoadUsers).
	xcfg.Scopes = []xsi.Target{{Kind: xsi.KindGroup, ID: "grp1", ParentID: "ent1"}}
	if s.cfg.XSIConfig != nil {
		s.cfg.XSIConfig(&xcfg)
	}
	client, err := xsi.NewClient(xcfg, logger.With("component", "xsi"))
	if err != nil {
		return err
	}
	events, err := xsi.NewEvents(xcfg, logger.With("component", "xsi-events"))
	if err != nil {
		client.Close()
		return err
	}
	c.Client, c.Events = client, events
	c.acts = &gatedActions{Client: client}
	c.acts.ctx, c.acts.kill = context.WithCancel(context.Background())
	c.store = &gatedStore{fs: &hoteling.FileStore{Path: s.cfg.StateFile}}

	gcfg := gateway.Config{Domain: Domain, RequestTimeout: s.cfg.RequestTimeout, LoadUsers: true,
		DoubtWindow: max(2*xcfg.RequestTimeout, 10*time.Second), RecoverMode: s.cfg.RecoverMode} // as run has it
	for i := 1; i <= s.cfg.Desks; i++ {
		gcfg.Devices = append(gcfg.Devices, gateway.DeviceEntry{DeviceID: DeskID(i), UserID: DeskUser(i), HotDesk: true})
	}
	if s.cfg.GatewayConfig != nil {
		s.cfg.GatewayConfig(&gcfg)
	}
	pub := &publisher{}
	gw := gateway.New(gcfg, gateway.Deps{Actions: c.acts, Publisher: pub, Scopes: events}, logger.With("component", "gateway"))
	seq := hoteling.New(hoteling.Config{
		StepTimeout: s.cfg.StepTimeout,
		QueueLength: s.cfg.QueueLength,
		RecoverMode: s.cfg.RecoverMode,
		NumberOf:    numberOf,
		Store:       c.store,
	}, c.acts, gw, logger.With("component", "hoteling"))
	gw.SetHoteling(seq)
	c.Gateway, c.Sequencer = gw, seq

	ccfg := csta.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	ccfg.MaxConnections = 2*(s.cfg.Agents+s.cfg.Desks) + 16
	ccfg.RequestTimeout = s.cfg.RequestTimeout + 5*time.Second
	srv := csta.NewServer(ccfg, gw, logger.With("component", "csta"))
	pub.srv.Store(srv)
	c.CSTA = srv

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	evs := events.Events()
	if s.cfg.OnEvent != nil {
		// Passed on one by one, unbuffered: the gateway still takes each
		// event when the channel set hands it over.
		tapped := make(chan xsi.Event)
		evs = tapped
		go func() {
			defer close(tapped)
			for {
				var ev xsi.Event
				var open bool
				select {
				case ev, open = <-events.Events():
					if !open {
						return
					}
				case <-ctx.Done():
					return
				}
				s.cfg.OnEvent(ev)
				select {
				case tapped <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(c.runEnd)
		gw.Run(ctx, evs, events.LinkChanges(), events.LinkState)
	}()
	if err := events.Start(context.Background()); err != nil {
		s.teardown(c, true)
		return err
	}
	if err := srv.Start(); err != nil {
		s.teardown(c, true)
		return err
	}
	if s.cfg.Phones {
		if err := s.startPhones(c); err != nil {
			s.teardown(c, true)
			return err
		}
	}
	if err := s.awaitReady(c, s.cfg.ReadyTimeout); err != nil {
		s.teardown(c, true)
		return err
	}
	// Start-up recovery as run has it: the reconciler finishes what a
	// crash left half done; Start returns once that has settled.
	c.repairEnd = make(chan struct{})
	recovered := make(chan struct{})
	go func() {
		defer close(c.repairEnd)
		gw.Recover(ctx, s.users, s.cfg.ReadyTimeout, func() { close(recovered) })
	}()
	select {
	case <-recovered:
	case <-time.After(s.cfg.ReadyTimeout):
	}
	c.Repairs = gw.Repairs()
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	return nil
}

// awaitReady waits for the link and for the gateway's view of every user
// to agree with the simulator (ACD state, CFA, association): then every
// snapshot the sequences rely on is in.
func (s *Stack) awaitReady(c *Connector, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pending := append([]string(nil), s.users...)
	// Users are read on first reference: read them all now, as the
	// campaign's clients will refer to them.
	lctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for !c.Gateway.LinkUp() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if unknown := c.Gateway.Load(lctx, pending); len(unknown) > 0 {
		return fmt.Errorf("stack: BroadWorks does not know %d users (first %s)", len(unknown), unknown[0])
	}
	for {
		// The scope's subscription active too: before it, a change made
		// in BroadWorks reaches nobody (reads alone made the views agree).
		if ok, _ := xsi.ReadyScopes(c.Events.Scopes()); ok && c.Gateway.LinkUp() {
			snaps, _ := s.peer.Snapshots(pending)
			rest := pending[:0]
			for _, id := range pending {
				if snap, ok := snaps[id]; !ok || !viewAgrees(c, id, snap) {
					rest = append(rest, id)
				}
			}
			pending = rest
			if len(pending) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_, scopes := xsi.ReadyScopes(c.Events.Scopes())
			return fmt.Errorf("stack: not ready after %v: link up %v, scopes %q, %d users without a matching view (first %s)",
				timeout, c.Gateway.LinkUp(), scopes, len(pending), first(pending))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func viewAgrees(c *Connector, id string, snap xspsim.UserSnapshot) bool {
	v := c.Gateway.User(id)
	return v.Known && string(v.ACDState) == snap.AgentState && v.CFA.Active == snap.CFAActive &&
		(!snap.CFAActive || v.CFA.ForwardToPhoneNumber == snap.CFANumber || strings.TrimPrefix(v.CFA.ForwardToPhoneNumber, "tel:") == snap.CFANumber) &&
		v.HostUserID == snap.GuestHostID
}

// AwaitViewSettled waits until the running connector's view of every user
// agrees with the simulator.
func (s *Stack) AwaitViewSettled(timeout time.Duration) error {
	c := s.Conn()
	if c == nil {
		return errors.New("stack: no connector")
	}
	return s.awaitReady(c, timeout)
}

// takeConn detaches the running connector side, if any.
func (s *Stack) takeConn() *Connector {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conn
	s.conn = nil
	return c
}

// StopConnector stops the connector side gracefully: the gateway's event
// loop, the CSTA front end (sessions told), the channel set, the Actions
// client. The simulator keeps running.
func (s *Stack) StopConnector() error {
	c := s.takeConn()
	if c == nil {
		return nil
	}
	return s.teardown(c, false)
}

// CrashConnector stops the connector side as a crash would: from the first
// instant no Actions request leaves it (in-flight ones are cancelled) and
// the state file is no longer written; then everything is torn down.
// Sequences in progress fail and cannot compensate.
func (s *Stack) CrashConnector() error {
	c := s.takeConn()
	if c == nil {
		return nil
	}
	// Nothing leaves it any more: no CSTA answer (its clients see their
	// connections drop, requests unanswered), no XSI request, no write to
	// its state file.
	c.CSTA.Close()
	c.store.dead.Store(true)
	c.acts.kill()
	return s.teardown(c, true)
}

// RestartConnector stops the connector (a crash when crash is true) and
// starts a new one against the same simulator and state file.
func (s *Stack) RestartConnector(crash bool) error {
	var err error
	if crash {
		err = s.CrashConnector()
	} else {
		err = s.StopConnector()
	}
	return errors.Join(err, s.Start())
}

// startPhones starts phone sync for c, on the address of the previous
// life if there was one (phones know the connector by its address).
func (s *Stack) startPhones(c *Connector) error {
	pcfg := phonesync.DefaultConfig()
	s.mu.Lock()
	pcfg.Listen = s.sipAddr
	s.mu.Unlock()
	if pcfg.Listen == "" {
		pcfg.Listen = "127.0.0.1:0"
	}
	pcfg.RequireAuth = false
	pcfg.Credentials = map[string]string{}
	pcfg.MinExpires = time.Second
	pcfg.SubscribeRate = 0 // no per-address limit: every phone is on 127.0.0.1
	pcfg.RequestTimeout = 5 * time.Second
	if s.cfg.PhonesConfig != nil {
		s.cfg.PhonesConfig(&pcfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var srv *phonesync.Server
	for try := 0; ; try++ {
		var err error
		srv, err = phonesync.NewServer(pcfg, c.Gateway.PhoneService(), s.cfg.Logger.With("component", "phonesync"))
		if err != nil {
			return err
		}
		if err = srv.Start(ctx); err == nil {
			break
		}
		srv.Close()
		if try == 50 { // the port may linger briefly after the last life closed it
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Gateway.SetPhones(srv)
	c.Phones = srv
	s.mu.Lock()
	s.sipAddr = srv.Addr()
	s.mu.Unlock()
	return nil
}

// SIPAddr is phone sync's address (UDP and TCP), "" without Config.Phones
// or before the first Start.
func (s *Stack) SIPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sipAddr
}

func (s *Stack) teardown(c *Connector, hard bool) error {
	var errs []error
	if c.Phones != nil {
		c.Gateway.SetPhones(nil)
		if err := c.Phones.Close(); err != nil && !hard {
			errs = append(errs, err)
		}
	}
	c.cancel()
	<-c.runEnd
	c.Gateway.Close()       // user loads in flight give up, as run's shutdown has it
	if c.repairEnd != nil { // nil: failed before the loop started
		<-c.repairEnd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sctx := ctx
	if hard {
		var scancel context.CancelFunc
		sctx, scancel = context.WithTimeout(ctx, 200*time.Millisecond)
		defer scancel()
	}
	if err := c.CSTA.Shutdown(sctx); err != nil && !hard {
		errs = append(errs, err)
	}
	if err := c.Events.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	c.Client.Close()
	c.store.fs.Close() // its file handle; a crashed connector's wrote nothing more anyway
	return errors.Join(errs...)
}

// Close stops the connector and the simulator and removes the temporary
// state directory.
func (s *Stack) Close() error {
	err := s.StopConnector()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.peer != nil {
		err = errors.Join(err, s.peer.Shutdown(ctx))
	}
	s.cleanup()
	return err
}

func (s *Stack) cleanup() {
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// publisher hands the gateway's events to the CSTA front end, built after
// the gateway (as cmd/connector's frontPublisher).
type publisher struct {
	srv atomic.Pointer[csta.Server]
}

func (p *publisher) Publish(ev csta.Event) {
	if s := p.srv.Load(); s != nil {
		s.Publish(ev)
	}
}

func (p *publisher) Monitored(dev csta.DeviceID) bool {
	s := p.srv.Load()
	return s != nil && s.Monitored(dev)
}

func (p *publisher) SetSystemStatus(v csta.SystemStatusValue) {
	if s := p.srv.Load(); s != nil {
		s.SetSystemStatus(v)
	}
}

// errCrashed is what Actions return once the connector has "crashed".
var errCrashed = errors.New("stack: connector crashed")

// gatedActions is the xsi client, cut off by kill: every call after it (and
// every call in flight) fails without reaching BroadWorks.
type gatedActions struct {
	*xsi.Client
	ctx     context.Context
	kill    context.CancelFunc
	crashAt atomic.Pointer[crashPoint]
}

// crashPoint is an Xsi-Actions request the connector dies just before.
type crashPoint struct{ step, userID string }

func (a *gatedActions) gate(ctx context.Context, step, userID string) (context.Context, context.CancelFunc, error) {
	if p := a.crashAt.Load(); p != nil && p.step == step && p.userID == userID {
		a.kill()
	}
	if a.ctx.Err() != nil {
		return ctx, func() {}, errCrashed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.ctx, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

func (a *gatedActions) SetAgentState(ctx context.Context, userID string, state xsi.ACDState, code string) error {
	ctx, done, err := a.gate(ctx, "SetAgentState", userID)
	defer done()
	if err != nil {
		return err
	}
	return a.Client.SetAgentState(ctx, userID, state, code)
}

func (a *gatedActions) GetCallForwardingAlways(ctx context.Context, userID string) (xsi.Forwarding, error) {
	ctx, done, err := a.gate(ctx, "GetCallForwardingAlways", userID)
	defer done()
	if err != nil {
		return xsi.Forwarding{}, err
	}
	return a.Client.GetCallForwardingAlways(ctx, userID)
}

func (a *gatedActions) SetCallForwardingAlways(ctx context.Context, userID string, f xsi.Forwarding) error {
	ctx, done, err := a.gate(ctx, "SetCallForwardingAlways", userID)
	defer done()
	if err != nil {
		return err
	}
	return a.Client.SetCallForwardingAlways(ctx, userID, f)
}

func (a *gatedActions) AssociateGuest(ctx context.Context, guest, host string) error {
	ctx, done, err := a.gate(ctx, "AssociateGuest", guest)
	defer done()
	if err != nil {
		return err
	}
	return a.Client.AssociateGuest(ctx, guest, host)
}

func (a *gatedActions) EndGuestAssociation(ctx context.Context, guest string) error {
	ctx, done, err := a.gate(ctx, "EndGuestAssociation", guest)
	defer done()
	if err != nil {
		return err
	}
	return a.Client.EndGuestAssociation(ctx, guest)
}

// CrashBefore makes the running connector die (as CrashConnector, which
// the test still calls to take it down) just before it sends the
// Xsi-Actions request step ("SetAgentState", "SetCallForwardingAlways",
// "AssociateGuest", "EndGuestAssociation") about userID: a crash between
// two steps of a sequence with nothing in flight, so the half-done state
// it leaves is known.
func (s *Stack) CrashBefore(step, userID string) {
	if c := s.Conn(); c != nil {
		c.acts.crashAt.Store(&crashPoint{step: step, userID: userID})
	}
}

// gatedStore is the hoteling FileStore; after a crash it writes nothing
// more (a dead process does not run its compensation's bookkeeping).
type gatedStore struct {
	fs   *hoteling.FileStore
	dead atomic.Bool
}

func (g *gatedStore) Save(r hoteling.Remembered) error {
	if g.dead.Load() {
		return errCrashed
	}
	return g.fs.Save(r)
}

func (g *gatedStore) Delete(host string) error {
	if g.dead.Load() {
		return errCrashed
	}
	return g.fs.Delete(host)
}

func (g *gatedStore) Load() ([]hoteling.Remembered, error) { return g.fs.Load() }

// DeskState is what BroadWorks (the simulator) shows for one desk and one
// agent.
type DeskState struct {
	Agent, Desk xspsim.UserSnapshot
}

// State reads the simulator's snapshots of agent a and desk d (1-based).
func (s *Stack) State(a, d int) (DeskState, error) {
	ag, err := s.snapshot(AgentUser(a))
	if err != nil {
		return DeskState{}, err
	}
	ds, err := s.snapshot(DeskUser(d))
	if err != nil {
		return DeskState{}, err
	}
	return DeskState{Agent: ag, Desk: ds}, nil
}

// CheckLoggedIn reports why agent a is not fully logged in at desk d:
// associated both ways, the desk forwarding to the agent's number, the
// agent Unavailable.
func (s *Stack) CheckLoggedIn(a, d int) error {
	st, err := s.State(a, d)
	if err != nil {
		return err
	}
	var bad []string
	if st.Agent.GuestHostID != DeskUser(d) {
		bad = append(bad, fmt.Sprintf("agent associated with %q", st.Agent.GuestHostID))
	}
	if st.Desk.HostGuestID != AgentUser(a) {
		bad = append(bad, fmt.Sprintf("desk's guest %q", st.Desk.HostGuestID))
	}
	if !st.Desk.CFAActive || st.Desk.CFANumber != AgentNumber(a) {
		bad = append(bad, fmt.Sprintf("desk CFA %v %q", st.Desk.CFAActive, st.Desk.CFANumber))
	}
	if st.Agent.AgentState != xspsim.StateUnavailable {
		bad = append(bad, "agent state "+st.Agent.AgentState)
	}
	if bad != nil {
		return fmt.Errorf("agent %d not logged in at desk %d: %s", a, d, strings.Join(bad, "; "))
	}
	return nil
}

// CheckSame reports the differences between before and the current state
// of agent a and desk d (agent state and code, desk CFA, associations).
func (s *Stack) CheckSame(a, d int, before DeskState) error {
	now, err := s.State(a, d)
	if err != nil {
		return err
	}
	var bad []string
	if now.Agent.AgentState != before.Agent.AgentState || now.Agent.UnavailableCode != before.Agent.UnavailableCode {
		bad = append(bad, fmt.Sprintf("agent state %s/%s, was %s/%s", now.Agent.AgentState, now.Agent.UnavailableCode,
			before.Agent.AgentState, before.Agent.UnavailableCode))
	}
	if now.Agent.GuestHostID != before.Agent.GuestHostID || now.Desk.HostGuestID != before.Desk.HostGuestID {
		bad = append(bad, fmt.Sprintf("association %q/%q, was %q/%q", now.Agent.GuestHostID, now.Desk.HostGuestID,
			before.Agent.GuestHostID, before.Desk.HostGuestID))
	}
	if now.Desk.CFAActive != before.Desk.CFAActive || (before.Desk.CFAActive && now.Desk.CFANumber != before.Desk.CFANumber) {
		bad = append(bad, fmt.Sprintf("desk CFA %v %q, was %v %q", now.Desk.CFAActive, now.Desk.CFANumber,
			before.Desk.CFAActive, before.Desk.CFANumber))
	}
	if bad != nil {
		return fmt.Errorf("agent %d / desk %d not as before: %s", a, d, strings.Join(bad, "; "))
	}
	return nil
}
