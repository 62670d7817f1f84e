// Package stack runs the whole connector in process for end-to-end tests,
// the fault campaign and benchmarks: the XSP simulator seeded with agents
// and hot desks, and a connector assembled by package connector, the one
// `connector run` uses, from a config.Config the stack fills in (the
// simulator's URLs, its group as the scope, the hot desks in the directory,
// CSTA, admin and phone sync on 127.0.0.1, the store in a temporary
// directory).
//
// The connector can be stopped and built again against the same simulator
// and store, gracefully (StopConnector) or as a crash (CrashConnector: from
// that moment nothing more reaches BroadWorks or the store).
package stack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/connector"
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
	// Groups spreads agent i and desk i over the simulator's groups
	// grp1..grpN of ent1 (Group(i)), a hot desk's guests being of its own
	// group; default 1. The connector's scope is every group.
	Groups int
	// DeskCFA is the own Call Forwarding Always of desk i (1-based) seeded
	// before the connector starts; "" leaves it off. Default: even desks
	// forward to DeskOwnNumber(i), odd desks have none.
	DeskCFA func(i int) string
	// StorePath is the connector's store (store.path: the journal, desks'
	// remembered forwarding, SIP dialogs); default a file in a new
	// temporary directory (removed by Close).
	StorePath string

	MaxInFlight    int           // xsi.max_in_flight; default 32
	XSITimeout     time.Duration // xsi.request_timeout (includes waiting for one of the MaxInFlight slots); default 5s
	StepTimeout    time.Duration // hoteling.step_timeout; default 2s
	RequestTimeout time.Duration // gateway.request_timeout (csta.limits.request_timeout 5s more); default 10s
	QueueLength    int           // hoteling.queue_length; 0: its default
	RecoverMode    string        // hoteling.recover_mode; default undo
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
	// ConnectorConfig, when set, adjusts the connector's configuration of
	// every life, as an operator's file would (e.g. xsi.channel_expires,
	// directory.reason_codes, sip.liveness).
	ConnectorConfig func(*config.Config)
	// Phones starts phone sync on 127.0.0.1:0 (UDP and TCP), on the same
	// address again in later connector lives. Digest authentication is off;
	// subscriptions are kept in memory only.
	Phones bool
	// OnEvent, when set, sees every XSI event the channel set hands to the
	// gateway, in that order, just before the gateway does (diagnostics).
	OnEvent func(xsi.Event)
}

// Group is the group of agent i and desk i (1-based) when a stack has
// groups of them, and Scope that group as an xsi.scope entry.
func Group(i, groups int) string { return fmt.Sprintf("grp%d", (i-1)%max(groups, 1)+1) }

// Scope is group g (grp1..) of the simulator's enterprise as an xsi.scope
// entry.
func Scope(group string) string { return "group:" + group + "@" + Enterprise }

// Enterprise is the simulator's enterprise.
const Enterprise = "ent1"

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
	tmpDir  string // the store unless Config.StorePath
	users   []string
	Sim     *xspsim.Server // nil with Config.LoadProcess
	peer    simPeer        // the simulator, wherever it runs
	mu      sync.Mutex
	conn    *Connector
	started int // connectors built so far
}

// Connector is one life of the connector.
type Connector struct {
	Assembly  *connector.Connector
	Client    *xsi.Client
	Events    *xsi.Events
	Gateway   *gateway.Gateway
	Sequencer *hoteling.Sequencer
	CSTA      *csta.Server
	Phones    *phonesync.Server // nil without Config.Phones
	Repairs   []gateway.Repair  // what start-up recovery did (the reconciler's repairs until it settled)
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
	if cfg.Groups <= 0 {
		cfg.Groups = 1
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
	dir, err := os.MkdirTemp("", "stack-connector-")
	if err != nil {
		return nil, err
	}
	s.tmpDir = dir
	if cfg.StorePath == "" {
		s.cfg.StorePath = filepath.Join(dir, "connector.db")
	}
	var users []xspsim.User
	for i := 1; i <= cfg.Agents; i++ {
		users = append(users, xspsim.User{ID: AgentUser(i), FirstName: AgentID(i), LastName: "Agent", CallCenter: true, GroupID: Group(i, cfg.Groups)})
		s.users = append(s.users, AgentUser(i))
	}
	for i := 1; i <= cfg.Desks; i++ {
		// CallCenter too, so that one event package list fits every target.
		users = append(users, xspsim.User{ID: DeskUser(i), FirstName: DeskID(i), LastName: "Desk", HotelingHost: true, CallCenter: true, GroupID: Group(i, cfg.Groups)})
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

// StorePath is the connector's store (store.path).
func (s *Stack) StorePath() string { return s.cfg.StorePath }

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

// connectorConfig is the configuration of the next connector life: the
// defaults of config.example.yaml where the stack has no reason to differ.
func (s *Stack) connectorConfig() *config.Config {
	cfg := config.Default()
	n := s.cfg.Agents + s.cfg.Desks

	cfg.CSTAFrontEnd.Listen = "127.0.0.1:0"
	cfg.CSTAFrontEnd.Limits.MaxConnections = 2*n + 16
	cfg.CSTAFrontEnd.Limits.RequestTimeout = s.cfg.RequestTimeout + 5*time.Second
	cfg.Admin.Listen = "127.0.0.1:0"

	x := &cfg.XSILink
	x.Simulate = false
	x.Servers = s.serverURLs()
	x.Username, x.Password = simUser, simPass
	x.RequestTimeout = s.cfg.XSITimeout
	x.MaxInFlight = s.cfg.MaxInFlight
	x.RateLimit, x.RateBurst = 1_000_000, 1_000_000
	x.HeartbeatInterval = time.Second
	x.ReconnectMin, x.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	// The simulator's group as the scope, users read from BroadWorks on
	// first reference.
	x.Scope = nil
	for g := 1; g <= s.cfg.Groups; g++ {
		x.Scope = append(x.Scope, Scope(Group(g, s.cfg.Groups)))
	}
	x.Targets = nil

	// The hot desks are in the directory; agents are BroadWorks' (the
	// simulator seeds no unavailable codes the example's names).
	d := &cfg.Directory
	d.Domain = Domain
	d.Devices = nil
	for i := 1; i <= s.cfg.Desks; i++ {
		d.Devices = append(d.Devices, DeskID(i)+"="+DeskUser(i)+",hotdesk")
	}
	d.Agents, d.ReasonCodes, d.DefaultUnavailableCode = nil, nil, ""
	d.IdleTTL = 0 // every seeded user stays loaded: the checks compare them all
	cfg.GatewayCore.RequestTimeout = s.cfg.RequestTimeout
	cfg.GatewayCore.ConflictWindow = 0 // clients and phones of one agent are driven independently

	h := &cfg.HotDesks
	h.StepTimeout = s.cfg.StepTimeout
	if s.cfg.QueueLength != 0 {
		h.QueueLength = s.cfg.QueueLength
	}
	if s.cfg.RecoverMode != "" {
		h.RecoverMode = s.cfg.RecoverMode
	}
	// One store for every life of the connector; no legacy files to
	// migrate into it.
	h.StateFile = ""
	cfg.Journal.Path = ""
	cfg.Store.Path = s.cfg.StorePath

	sip := &cfg.SIP
	sip.Listen, sip.TLS.Listen = "", ""
	if s.cfg.Phones {
		s.mu.Lock()
		sip.Listen = cmp.Or(s.sipAddr, "127.0.0.1:0")
		s.mu.Unlock()
	}
	sip.Auth.Required = false
	sip.Auth.Phones, sip.Auth.AgentPasswords = nil, nil
	sip.Subscription.MinExpires = time.Second
	sip.Limits.SubscribeRate = 0 // no per-address limit: every phone is on 127.0.0.1
	sip.RequestTimeout = 5 * time.Second
	sip.StateFile = ""
	sip.Presence.DNs = nil

	if s.cfg.ConnectorConfig != nil {
		s.cfg.ConnectorConfig(cfg)
	}
	return cfg
}

// Start builds a connector through package connector and starts it, waits
// for its start-up repair pass (as run has it: once the link is up and the
// snapshots are in) and then until the link is up and the connector's view
// of every user agrees with the simulator.
func (s *Stack) Start() error {
	s.mu.Lock()
	if s.conn != nil {
		s.mu.Unlock()
		return errors.New("stack: connector already running")
	}
	s.started++
	s.mu.Unlock()
	c := &Connector{}
	opts := []connector.Option{
		connector.WithLogger(s.cfg.Logger),
		connector.WithCrashSimulation(),
		// BroadWorks is the directory: agents are not listed, so name
		// every seeded user to be read at start.
		connector.WithStartUpUsers(s.users),
		// The previous life's phone sync may hold the address a moment.
		connector.WithPhonesBindRetry(time.Second),
	}
	if s.cfg.OnEvent != nil {
		opts = append(opts, connector.WithEventTap(s.cfg.OnEvent))
	}
	asm, err := connector.New(s.connectorConfig(), opts...)
	if err != nil {
		return err
	}
	if err := asm.Start(context.Background()); err != nil {
		return err
	}
	c.Assembly = asm
	c.Client, c.Events, c.Gateway, c.Sequencer, c.CSTA, c.Phones =
		asm.Client(), asm.Events(), asm.Gateway(), asm.Sequencer(), asm.CSTA(), asm.Phones()
	if c.Phones != nil {
		s.mu.Lock()
		s.sipAddr = c.Phones.Addr()
		s.mu.Unlock()
	}
	select {
	case <-asm.StartupRepaired():
	case <-time.After(s.cfg.ReadyTimeout):
		s.teardown(c, true)
		return fmt.Errorf("stack: no start-up repair pass after %v", s.cfg.ReadyTimeout)
	}
	if err := s.awaitReady(c, s.cfg.ReadyTimeout); err != nil {
		s.teardown(c, true)
		return err
	}
	c.Repairs = c.Gateway.Repairs()
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

// StopConnector stops the connector gracefully (as run does on SIGTERM).
// The simulator keeps running.
func (s *Stack) StopConnector() error {
	c := s.takeConn()
	if c == nil {
		return nil
	}
	return s.teardown(c, false)
}

// CrashConnector stops the connector as a crash would (connector.Crash):
// from the first instant no Actions request leaves it (in-flight ones are
// cancelled), its CTI clients see their connections drop with requests
// unanswered, and the store is no longer written;
// then everything is torn down. Sequences in progress fail and cannot
// compensate.
func (s *Stack) CrashConnector() error {
	c := s.takeConn()
	if c == nil {
		return nil
	}
	return s.teardown(c, true)
}

// RestartConnector stops the connector (a crash when crash is true) and
// starts a new one against the same simulator and store.
func (s *Stack) RestartConnector(crash bool) error {
	var err error
	if crash {
		err = s.CrashConnector()
	} else {
		err = s.StopConnector()
	}
	return errors.Join(err, s.Start())
}

// SIPAddr is phone sync's address (UDP and TCP), "" without Config.Phones
// or before the first Start.
func (s *Stack) SIPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sipAddr
}

func (s *Stack) teardown(c *Connector, crash bool) error {
	if crash {
		return c.Assembly.Crash()
	}
	ctx, cancel := context.WithTimeout(context.Background(), connector.ShutdownTimeout)
	defer cancel()
	return c.Assembly.Shutdown(ctx)
}

// Close stops the connector and the simulator and removes the temporary
// directory.
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

// CrashBefore makes the running connector die (as CrashConnector, which
// the test still calls to take it down) just before it sends the
// Xsi-Actions request step ("SetAgentState", "SetCallForwardingAlways",
// "AssociateGuest", "EndGuestAssociation") about userID: a crash between
// two steps of a sequence with nothing in flight, so the half-done state
// it leaves is known.
func (s *Stack) CrashBefore(step, userID string) {
	if c := s.Conn(); c != nil {
		c.Assembly.CrashBefore(step, userID) // built WithCrashSimulation: no error
	}
}

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
