// Package xspsim is an embedded BroadWorks XSP simulator: a real net/http
// server speaking Xsi-Actions v2.0 and Xsi-Events v2.0 (streaming channel
// mode) for a seeded set of users, with fault injection for tests and
// benchmarks. It deliberately does not import package xsi so that client and
// simulator cannot share (and so cancel out) the same bug; wire facts come
// from ../shared/research/xsi.md and the XSDs in ../shared/xsd/xsi/.
//
// Lifecycle: New starts a janitor goroutine (expiry, ack and heartbeat
// timeouts, hoteling association limits); Shutdown stops it and every
// streaming handler, so call Shutdown even when only Handler() is used with
// httptest.
package xspsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Namespaces used on the wire.
const (
	NS    = "http://schema.broadsoft.com/xsi"
	NSXSI = "http://www.w3.org/2001/XMLSchema-instance"
)

// URL prefixes served.
const (
	ActionsPrefix     = "/com.broadsoft.xsi-actions/v2.0"
	EventsPrefix      = "/com.broadsoft.xsi-events/v2.0"
	AsyncEventsPrefix = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0"
)

// NeverExpires is the expires value meaning "never" (XSD ChannelExpiration /
// SubscriptionExpiration).
const NeverExpires = 2147483647

// UnavailableCode is one group-level ACD agent unavailable code.
type UnavailableCode struct {
	Code        string // 1..10 chars
	Description string
	Active      bool
	Default     bool
}

// User seeds one BroadWorks user. Every user has the Hoteling Guest, DND
// and call forwarding services assigned.
type User struct {
	ID        string // user@domain
	FirstName string
	LastName  string
	// PhoneNumber and Extension are the user's number and extension: the
	// profile's details/number and details/extension, and guestPhoneNumber /
	// guestExtension on the host's HotelingHost while this user is its guest.
	PhoneNumber string
	Extension   string
	// GroupID and EnterpriseID place the user; empty means Config.GroupID /
	// Config.EnterpriseID. Group IDs are unique within an enterprise only.
	GroupID      string
	EnterpriseID string
	// CallCenter assigns the Call Center agent service (services/CallCenter,
	// "Call Center Agent" event package).
	CallCenter bool
	// ACDState is the agent's initial ACD state: "" or Sign-Out (signed
	// out), Available (signed in; Sign-In means the same), Unavailable (with
	// the group's default unavailable code) or Wrap-Up. Only with CallCenter.
	ACDState string
	// CallCenters are the serviceUserIds of the queues the agent is joined to.
	CallCenters []string
	// HotelingHost assigns the Hoteling Host service, initially active with
	// accessLevel Group.
	HotelingHost bool
	// HostAssociationLimitHours > 0 makes the host enforce that limit.
	HostAssociationLimitHours int
}

// ChunkMode selects how documents are cut into HTTP chunks on the event
// channel stream.
type ChunkMode int

const (
	// ChunkWhole writes and flushes each document as one chunk.
	ChunkWhole ChunkMode = iota
	// ChunkSplit splits every document into 2..MaxPieces chunks.
	ChunkSplit
	// ChunkCoalesce holds a document for CoalesceWindow so that documents
	// following closely share one chunk.
	ChunkCoalesce
	// ChunkRandom picks whole, split or coalesce per document (seeded).
	ChunkRandom
)

// Chunking configures stream framing. The zero value is ChunkWhole.
type Chunking struct {
	Mode           ChunkMode
	Seed           uint64        // seed of the per-channel chunking RNG
	MaxPieces      int           // upper bound for ChunkSplit pieces; default 4
	CoalesceWindow time.Duration // default 5ms
	// Separator is written after every document (e.g. "\n"); default none.
	Separator string
}

// Config configures a Server. Zero values get the defaults noted.
type Config struct {
	Listen string // default "127.0.0.1:0"; only loopback addresses are accepted
	// Users are the seed. The server keeps referring to them (it does not
	// copy 100,000 users): do not modify the slice or its users after New.
	// Start reports the first invalid user (see AddUsers for the rules);
	// New skips it.
	Users []User

	// EnterpriseID and GroupID are the enterprise and group of users that
	// name none, and exist even without users; defaults "ent1" and "grp1".
	// An enterprise is also accepted as serviceProviderId.
	EnterpriseID string
	GroupID      string

	// AdminEnterprises are the enterprises the credential (Username) may
	// reach; empty means every one. Subscribing to another enterprise, a
	// group or user in it, or acting on such a user (Actions) is answered
	// 403, as BroadWorks answers a target outside the admin's scope.
	AdminEnterprises []string
	// RejectPackageLists makes the XSP behave as before R23: any
	// subscription with an eventPackageList is answered 400.
	RejectPackageLists bool
	// RequestLogSize is how many requests Requests keeps (the newest);
	// default 10,000, negative keeps none.
	RequestLogSize int

	UnavailableCodes      []UnavailableCode
	ForceUnavailableCodes bool // Unavailable without agentUnavailableCode → 400

	// Username/Password is the HTTP Basic credential required on every
	// request; empty Username disables authentication. The Username is the
	// subscription owner (SubscriptionEvent userId); without auth it is
	// "admin@sim.example.com".
	Username, Password string

	// EventAckTimeout: a SubscriptionEvent not acknowledged within it ends
	// its channel with ChannelTerminatedEvent NonResponsiveChannel. 0 = off.
	EventAckTimeout time.Duration
	// HeartbeatTimeout: a channel without a heartbeat PUT for this long is
	// ended with ChannelTerminatedEvent NonResponsiveChannel. 0 = off.
	HeartbeatTimeout time.Duration

	// MinExpires / MaxExpires bound granted expires (seconds, like BroadWorks);
	// defaults 3600 and 2147483646. NeverExpires is always granted as never.
	MinExpires, MaxExpires int
	// DefaultExpires is granted when a request has no expires; default 3600.
	DefaultExpires int
	// ExpiresUnit is the real duration of one "second" of expires; default
	// time.Second. Tests use milliseconds to watch expiry happen.
	ExpiresUnit time.Duration
	// HourUnit is the real duration of one hoteling association-limit hour;
	// default time.Hour.
	HourUnit time.Duration

	Chunking Chunking

	// ActionsCharset is the declared and actual encoding of Xsi-Actions
	// response bodies (GET bodies and ErrorInfo): "ISO-8859-1" (default,
	// like real XSPs) or "UTF-8". Events are always UTF-8.
	ActionsCharset string

	QueueSize   int    // per-channel stream queue; default 256; overflow kills the channel
	BacklogSize int    // per channel set, events held while it has no channel; default 256
	Seed        uint64 // seed for IDs-independent randomness (fault rates, latency, channel choice)

	JanitorInterval time.Duration // default 20ms

	// RequestReadTimeout bounds reading each request body (the streaming
	// channel clears it once its body is read); default 10s.
	RequestReadTimeout time.Duration

	// Trace, if set, receives every XML document the simulator emits
	// (Actions bodies, ErrorInfo, Channel, ChannelHeartBeat, Event, ...),
	// before chunking. It is called concurrently.
	Trace func(doc []byte)
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.EnterpriseID == "" {
		c.EnterpriseID = "ent1"
	}
	if c.GroupID == "" {
		c.GroupID = "grp1"
	}
	if c.MinExpires <= 0 {
		c.MinExpires = 3600
	}
	if c.MaxExpires <= 0 {
		c.MaxExpires = 2147483646
	}
	if c.DefaultExpires <= 0 {
		c.DefaultExpires = 3600
	}
	if c.ExpiresUnit <= 0 {
		c.ExpiresUnit = time.Second
	}
	if c.HourUnit <= 0 {
		c.HourUnit = time.Hour
	}
	if c.Chunking.MaxPieces < 2 {
		c.Chunking.MaxPieces = 4
	}
	if c.Chunking.CoalesceWindow <= 0 {
		c.Chunking.CoalesceWindow = 5 * time.Millisecond
	}
	if c.ActionsCharset == "" {
		c.ActionsCharset = "ISO-8859-1"
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.BacklogSize <= 0 {
		c.BacklogSize = 256
	}
	if c.RequestReadTimeout <= 0 {
		c.RequestReadTimeout = 10 * time.Second
	}
	if c.RequestLogSize == 0 {
		c.RequestLogSize = defaultRequestLogSize
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = 20 * time.Millisecond
	}
}

// Server is the simulated XSP.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	mu       sync.Mutex
	users    map[string]*userState // key: user ID
	order    []*userState          // in seed order (New, then AddUsers)
	hosts    []*userState          // users with Hoteling Host assigned, in seed order
	groups   map[groupKey]*group
	ents     map[string]*enterprise
	reach    map[string]bool // Config.AdminEnterprises; nil = every enterprise
	seedErr  error           // first invalid seed user (Start reports it)
	reqLog   requestLog
	channels map[string]*channel
	sets     map[string]*channelSet // key: owner + "\x00" + channelSetId
	subs     map[string]*subscription
	// subsByUser, group.subs and enterprise.subs index subs by target (see
	// addSubLocked), so that an event costs the subscriptions that can want
	// it, not all, and a group subscription costs no walk over its users.
	subsByUser map[string]map[string]*subscription // User targets, by target user ID, then subscription ID
	// nextSubExpiry is the earliest expiresAt of a subscription (zero:
	// none); the janitor walks s.subs only once it has passed.
	nextSubExpiry time.Time
	pending       map[string]*pendingEvent // key: eventID
	// assocGuests are the users with a hoteling host (the janitor checks
	// their association limits).
	assocGuests map[string]*userState
	// nextAssocExpiry is the earliest time an association may reach its
	// limit (zero: none has one); assocLimitsChanged makes the janitor
	// walk assocGuests anyway (a guest's or host's limit was changed).
	nextAssocExpiry    time.Time
	assocLimitsChanged bool
	rng                *rand.Rand
	faults             faultState
	chanSeq            uint64
	stats              Stats

	// listener state (guarded by mu); xsps[0] is the primary XSP (Start).
	xsps    []*xspNode
	started bool
	closed  bool

	quit      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Stats are counters for tests and benchmarks.
type Stats struct {
	EventsSent    int // SubscriptionEvents written to a channel queue
	EventsAcked   int
	EventsDropped int // backlog overflow, channel loss before delivery
	Heartbeats    int
	ChannelsOpen  int // current
}

// New builds a Server from cfg. logger may be nil.
func New(cfg Config, logger *slog.Logger) *Server {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:         cfg,
		log:         logger,
		users:       make(map[string]*userState, len(cfg.Users)),
		order:       make([]*userState, 0, len(cfg.Users)),
		channels:    make(map[string]*channel),
		sets:        make(map[string]*channelSet),
		subs:        make(map[string]*subscription),
		subsByUser:  make(map[string]map[string]*subscription),
		groups:      make(map[groupKey]*group),
		ents:        make(map[string]*enterprise),
		pending:     make(map[string]*pendingEvent),
		assocGuests: make(map[string]*userState),
		rng:         rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		quit:        make(chan struct{}),
	}
	s.reqLog.init(cfg.RequestLogSize)
	if len(cfg.AdminEnterprises) > 0 {
		s.reach = make(map[string]bool, len(cfg.AdminEnterprises))
		for _, e := range cfg.AdminEnterprises {
			s.reach[e] = true
		}
	}
	s.groupLocked(cfg.EnterpriseID, cfg.GroupID)
	s.seedLocked(cfg.Users)
	s.handler = s.routes()
	s.wg.Add(1)
	go s.janitor()
	return s
}

// Handler returns the simulator's HTTP handler (for httptest). Call Shutdown
// when done to stop the janitor and streaming handlers.
func (s *Server) Handler() http.Handler { return s.handler }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// xspNode is one simulated XSP front end. All nodes share the application
// server state (users, subscriptions, channel sets); a channel lives on the
// node that accepted it, and its heartbeats, refreshes, deletes and event
// responses are answered 404 on any other node (research §0.5, §3.4).
type xspNode struct {
	idx    int
	addr   string
	srv    *http.Server
	killed bool
}

type xspKey struct{}

// xspOf returns the node index a request arrived on (0 for Handler()).
func xspOf(r *http.Request) int {
	if v, ok := r.Context().Value(xspKey{}).(int); ok {
		return v
	}
	return 0
}

// Start listens on Config.Listen (loopback only) and serves in the
// background. This is XSP 0.
func (s *Server) Start() error {
	if err := checkLoopback(s.cfg.Listen); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("xspsim: server shut down")
	}
	if s.started {
		return errors.New("xspsim: already started")
	}
	if s.seedErr != nil {
		return s.seedErr
	}
	n := &xspNode{idx: 0}
	if err := s.listenLocked(n, s.cfg.Listen); err != nil {
		return err
	}
	s.xsps = append(s.xsps, n)
	s.started = true
	return nil
}

// AddXSP starts one more XSP front end on 127.0.0.1:0 sharing this server's
// state, and returns its index (for URLOf, KillXSP, RestartXSP). Start must
// have been called.
func (s *Server) AddXSP() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return 0, errors.New("xspsim: AddXSP needs a started server")
	}
	n := &xspNode{idx: len(s.xsps)}
	if err := s.listenLocked(n, "127.0.0.1:0"); err != nil {
		return 0, err
	}
	s.xsps = append(s.xsps, n)
	return n.idx, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("xspsim: listen address %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("xspsim: listen address %q is not loopback", addr)
	}
	return nil
}

func (s *Server) listenLocked(n *xspNode, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("xspsim: listen: %w", err)
	}
	n.addr = ln.Addr().String()
	idx := n.idx
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(context.Background(), xspKey{}, idx) },
	}
	n.srv = srv
	n.killed = false
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("xspsim: serve", "err", err)
		}
	}()
	return nil
}

func (s *Server) node(i int) *xspNode {
	if i < 0 || i >= len(s.xsps) {
		return nil
	}
	return s.xsps[i]
}

// Addr is the listening address (host:port) of XSP 0 after Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.node(0); n != nil {
		return n.addr
	}
	return ""
}

// URL is "http://" + Addr().
func (s *Server) URL() string { return "http://" + s.Addr() }

// URLOf is the base URL of XSP i ("" if there is none).
func (s *Server) URLOf(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.node(i); n != nil {
		return "http://" + n.addr
	}
	return ""
}

// Kill simulates a crash of every XSP: listeners and connections are closed
// abruptly (streams end without a terminating chunk or
// ChannelTerminatedEvent) and all channels are forgotten. Application-server
// state survives: users, service settings and subscriptions (subscriptions
// wait for a new channel in their channel set; events in the meantime go to
// the set's backlog). Restart listens again on the same addresses.
func (s *Server) Kill() {
	s.mu.Lock()
	n := len(s.xsps)
	s.mu.Unlock()
	for i := 0; i < n; i++ {
		_ = s.KillXSP(i)
	}
}

// KillXSP crashes XSP i only: its connections drop and its channels are
// forgotten; other XSPs keep serving.
func (s *Server) KillXSP(i int) error {
	s.mu.Lock()
	n := s.node(i)
	if n == nil {
		s.mu.Unlock()
		return fmt.Errorf("xspsim: no XSP %d", i)
	}
	srv := n.srv
	n.srv = nil
	n.killed = true
	for _, ch := range s.channels {
		if ch.xsp == i {
			s.abortLocked(ch)
		}
	}
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	return nil
}

// Restart listens again on the addresses of every killed XSP.
func (s *Server) Restart() error {
	s.mu.Lock()
	var killed []int
	for _, n := range s.xsps {
		if n.killed {
			killed = append(killed, n.idx)
		}
	}
	s.mu.Unlock()
	if len(killed) == 0 {
		return errors.New("xspsim: restart without kill")
	}
	for _, i := range killed {
		if err := s.RestartXSP(i); err != nil {
			return err
		}
	}
	return nil
}

// RestartXSP listens again on XSP i's address after KillXSP/Kill.
func (s *Server) RestartXSP(i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("xspsim: server shut down")
	}
	n := s.node(i)
	if n == nil || !n.killed {
		return fmt.Errorf("xspsim: XSP %d is not killed", i)
	}
	var err error
	for try := 0; try < 50; try++ { // the port may linger briefly after Close
		if err = s.listenLocked(n, n.addr); err == nil {
			return nil
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		if s.closed {
			return errors.New("xspsim: server shut down")
		}
	}
	return err
}

// Shutdown ends every channel stream (abruptly, as an XSP going down would),
// stops the HTTP servers, the janitor and every goroutine the simulator
// started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.quit) })
	s.mu.Lock()
	s.closed = true
	var srvs []*http.Server
	for _, n := range s.xsps {
		if n.srv != nil {
			srvs = append(srvs, n.srv)
			n.srv = nil
		}
	}
	for _, ch := range s.channels {
		s.abortLocked(ch)
	}
	s.mu.Unlock()
	var err error
	for _, srv := range srvs {
		if serr := srv.Shutdown(ctx); serr != nil {
			_ = srv.Close()
			if err == nil {
				err = fmt.Errorf("xspsim: shutdown: %w", serr)
			}
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("xspsim: shutdown: %w", ctx.Err())
		}
	}
	return err
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ChannelsOpen = len(s.channels)
	return st
}

// ChannelInfo describes a live channel.
type ChannelInfo struct {
	ID, ChannelSetID, ApplicationID, Owner string
	Priority, Weight                       int
	XSP                                    int // index of the XSP holding the stream
}

// Channels lists the live channels, sorted by ID.
func (s *Server) Channels() []ChannelInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChannelInfo, 0, len(s.channels))
	for _, ch := range s.channels {
		out = append(out, ChannelInfo{ch.id, ch.set.id, ch.set.appID, ch.set.owner, ch.priority, ch.weight, ch.xsp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SubscriptionInfo describes a live subscription.
type SubscriptionInfo struct {
	ID, ChannelSetID, ApplicationID, Owner string
	TargetType, TargetID                   string // TargetType: User, Group, ServiceProvider
	Packages                               []string
}

// Subscriptions lists the live subscriptions, sorted by ID.
func (s *Server) Subscriptions() []SubscriptionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SubscriptionInfo, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, SubscriptionInfo{sub.id, sub.setID, sub.appID, sub.owner, sub.targetType, sub.targetID, append([]string(nil), sub.packages...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) trace(doc []byte) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(doc)
	}
}
