package phonesync

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/broadworks-connector/connector/internal/netguard"
)

// Lock order (NATS-style locksordering, ../shared/DESIGN.md), outermost
// first:
//
//	Server.lifeMu -> Server.serviceMu -> Server.mu -> subscription.mu -> Server.workMu
//	subscription.reqMu -> subscription.mu
//	subscription.sendMu -> subscription.mu
//	Server.saveMu -> Server.mu
//
// Only lifeMu, serviceMu, reqMu, sendMu and saveMu are held while calling
// the Service or doing I/O; mu, subscription.mu and workMu never are.

// Event packages the connector is notifier for (sip.md §1.2, §1.4).
const (
	eventFeature  = "as-feature-event"
	eventHoteling = "x-broadworks-hoteling"
	eventPresence = "presence"
)

// allowEvents is the Allow-Events value of 489 answers and OPTIONS replies.
const allowEvents = eventFeature + ", " + eventHoteling

// Limits that are not configuration.
const (
	maxNotifyQueue     = 64                     // pending NOTIFYs per subscription before coalescing to full state
	maxSenders         = 1024                   // NOTIFY sender goroutines at most
	udpReadBuffer      = 4 << 20                // SO_RCVBUF of the UDP listener
	maxPhones          = 100000                 // liveness records held
	maxRateSources     = 65536                  // per-source rate limiter entries
	optionsFanout      = 16                     // OPTIONS pings in flight at once
	hotelingNonceTTL   = 2 * time.Minute        // a hoteling challenge nonce is good this long, once
	restartCSeqGap     = 1000                   // NOTIFY CSeq jump after loading persisted dialogs
	closeNotifyTimeout = 500 * time.Millisecond // for the terminating NOTIFYs of Close
	defaultSweepEvery  = time.Second
	defaultSaveDelay   = 2 * time.Second
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("phonesync: server closed")

// Server is the SIP side of phonesync: it is the notifier of the phones'
// as-feature-event and x-broadworks-hoteling subscriptions, pings them for
// liveness and, when configured, watches PBX presence.
type Server struct {
	cfg Config
	svc Service
	log *slog.Logger

	ua       *sipgo.UserAgent
	sipSrv   *sipgo.Server
	client   *sipgo.Client
	auth     *digestAuth
	limiter  *sourceLimiter
	live     atomic.Pointer[limits] // what Reload changes (reload.go)
	presence *presenceWatcher
	tlsConf  *tls.Config
	metrics  *metrics // Prometheus collectors (metrics.go)

	// Test knobs; set before Start.
	sweepEvery  time.Duration
	saveDelay   time.Duration
	nonceTTL    time.Duration
	queueLimit  int
	senderLimit int

	ctx    context.Context // cancelled by Close: ends every goroutine below
	cancel context.CancelFunc
	// reqCtx bounds Service calls made for phones' requests; Close cancels
	// it first so handlers in flight finish at once.
	reqCtx       context.Context
	stopRequests context.CancelFunc

	wg       sync.WaitGroup // listener loops
	bg       sync.WaitGroup // housekeeping, liveness, persistence, presence: all send, so they end before the UA closes
	handlers sync.WaitGroup // SIP request handlers in flight
	workers  sync.WaitGroup // per-subscription NOTIFY senders

	serviceMu     sync.Mutex // orders PhoneService reports; taken before mu
	workMu        sync.Mutex // a leaf: guards the three below and workers.Go
	workersClosed bool
	activeSenders int
	ready         []*subscription // subscriptions with NOTIFYs waiting for a sender

	udpConn  net.PacketConn
	tcpLn    net.Listener
	tlsLn    net.Listener
	tcpGate  *netguard.Gate     // TCP and TLS connections, their caps and idle timeout
	tcpGuard *netguard.Listener // under tcpLn
	tcpRaw   net.Listener       // under tcpGuard
	tlsGuard *netguard.Listener // under tlsLn's TLS
	stopMu   sync.Mutex         // a leaf: guards stopped
	stopped  map[string]error   // listeners whose serve loop ended before Close, and why
	udpLaddr sip.Addr           // the UDP listener, so NOTIFYs leave from the port phones talk to
	port     int
	tlsPort  int
	bindHost string // cfg.Listen's host when it names one address, else ""

	draining atomic.Bool // Close is past its NOTIFYs: requests are dropped as read

	dirty  chan struct{} // persistence wake-up (cap 1)
	saveMu sync.Mutex    // one state-file write at a time
	// savedFinal: the state is written no more — Close's last write is
	// done (saveState), or the server stopped without one; under saveMu.
	savedFinal bool

	lifeMu sync.Mutex // Start and Close, one at a time; taken before all others

	mu      sync.Mutex
	started bool
	closing bool
	subs    map[dialogID]*subscription
	lines   map[subKey][]*subscription // each line's dialogs, oldest first
	phones  map[string]*phoneState
}

// NewServer checks cfg and builds a server; Start makes it listen.
func NewServer(cfg Config, svc Service, log *slog.Logger) (*Server, error) {
	if svc == nil {
		return nil, errors.New("phonesync: nil Service")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = withDefaults(cfg)
	cfg.Credentials = maps.Clone(cfg.Credentials) // the caller may reuse its map
	cfg.Presence.DNs = slices.Clone(cfg.Presence.DNs)
	if cfg.Listen == "" {
		return nil, errors.New("phonesync: sip.listen is empty")
	}
	if cfg.MinExpires > cfg.MaxExpires {
		return nil, fmt.Errorf("phonesync: min expires %v above max expires %v", cfg.MinExpires, cfg.MaxExpires)
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("phonesync: sip.listen: %w", err)
	}
	s := &Server{
		cfg:         cfg,
		svc:         svc,
		log:         log.With("component", "phonesync"),
		auth:        newDigestAuth(cfg.Realm, cfg.Credentials),
		limiter:     newSourceLimiter(cfg.SubscribeRate, cfg.SubscribeBurst, maxRateSources),
		sweepEvery:  defaultSweepEvery,
		saveDelay:   defaultSaveDelay,
		nonceTTL:    hotelingNonceTTL,
		queueLimit:  maxNotifyQueue,
		senderLimit: maxSenders,
		dirty:       make(chan struct{}, 1),
		subs:        make(map[dialogID]*subscription),
		lines:       make(map[subKey][]*subscription),
		phones:      make(map[string]*phoneState),
		metrics:     newMetrics(),
	}
	s.live.Store(limitsOf(cfg))
	s.tcpGate = netguard.NewGate(tcpLimits(cfg), cfg.Budget)
	if cfg.TLSListen != "" && cfg.TLSCertFile != "" && cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("phonesync: tls: %w", err)
		}
		s.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		s.bindHost = host
	}
	// Every sipgo logger is ours, so its lines go through the connector's
	// handler (logguard: bounded, redacted, rate limited), wire data cut to
	// an excerpt first (sipgoLogHandler). sipgo's
	// remaining lines (connection reference counts, at Debug) use
	// sip.DefaultLogger, which is slog.Default: cmd/connector sets that
	// to the same handler.
	sipgoLog := slog.New(sipgoLogHandler{s.log.Handler()})
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("broadworks-connector"),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerReadFilter(s.readFilter),
			sip.WithTransportLayerLogger(sipgoLog),
		),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipgoLog)),
	}
	if s.bindHost != "" {
		uaOpts = append(uaOpts, sipgo.WithUserAgentHostname(s.bindHost))
	}
	if s.tlsConf != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(s.tlsConf))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("phonesync: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipgoLog))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("phonesync: %w", err)
	}
	clientOpts := []sipgo.ClientOption{sipgo.WithClientLogger(sipgoLog)}
	if s.bindHost != "" {
		clientOpts = append(clientOpts, sipgo.WithClientHostname(s.bindHost)) // presence's Via and Contact
	}
	client, err := sipgo.NewClient(ua, clientOpts...)
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("phonesync: %w", err)
	}
	s.ua, s.sipSrv, s.client = ua, srv, client
	srv.OnSubscribe(s.track(s.onSubscribe))
	srv.OnNotify(s.track(s.onNotify))
	srv.OnOptions(s.track(s.onOptions))
	// An ACK is never answered (RFC 3261 §17.2.1): one to a non-2xx answer
	// of an INVITE is the INVITE transaction's, which the connector never
	// has, and a stray one gets nothing.
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnNoRoute(s.track(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", "SUBSCRIBE, NOTIFY, OPTIONS"))
		respond(tx, res)
	}))
	if cfg.Presence.PBX != "" {
		s.presence = newPresenceWatcher(cfg.Presence, client, ua, svc, s.log)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.reqCtx, s.stopRequests = context.WithCancel(s.ctx)
	return s, nil
}

func withDefaults(cfg Config) Config {
	def := DefaultConfig()
	if cfg.Realm == "" {
		cfg.Realm = def.Realm
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = def.MaxExpires
	}
	if cfg.DefaultExpires <= 0 {
		cfg.DefaultExpires = def.DefaultExpires
	}
	cfg.DefaultExpires = min(cfg.DefaultExpires, cfg.MaxExpires)
	if cfg.MaxSubscriptionsPerLine <= 0 {
		cfg.MaxSubscriptionsPerLine = def.MaxSubscriptionsPerLine
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = def.MaxSubscriptions
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	cfg = withTCPDefaults(cfg)
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = def.RequestTimeout
	}
	if cfg.OptionsInterval > 0 && cfg.LivenessTimeout <= 0 {
		cfg.LivenessTimeout = 2 * cfg.OptionsInterval
	}
	return cfg
}

// Start binds UDP and TCP on cfg.Listen (the same port for both; with port 0
// the port UDP got is taken for TCP too) and TLS on cfg.TLSListen when
// configured, loads persisted dialogs and returns once listening. ctx bounds
// the start only; Close stops the server.
func (s *Server) Start(ctx context.Context) error {
	s.lifeMu.Lock() // a Close meanwhile waits for the start to finish
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("phonesync: already started")
	}
	s.started = true
	s.mu.Unlock()

	if err := s.bind(ctx); err != nil {
		return err
	}
	s.wg.Go(func() { s.serveEnded("sip/udp", s.sipSrv.ServeUDP(s.udpConn)) })
	s.wg.Go(func() { s.serveEnded("sip/tcp", s.sipSrv.ServeTCP(s.tcpLn)) })
	if s.tlsLn != nil {
		s.wg.Go(func() { s.serveEnded("sip/tls", s.sipSrv.ServeTLS(s.tlsLn)) })
	}
	// NOTIFYs over UDP are sent from the listener socket, which the transport
	// registers when ServeUDP starts; wait for that so none leaves from an
	// ephemeral port.
	s.waitUDPListener(ctx)

	s.bg.Go(s.housekeeping)
	if s.cfg.OptionsInterval > 0 {
		s.bg.Go(s.pingLoop)
	}
	if s.persisting() {
		restored := s.loadState()
		s.bg.Go(s.persistLoop)
		for _, sub := range restored {
			s.enqueue(sub, notifyJob{kind: jobFull}) // resync what changed while we were down
		}
	}
	if s.presence != nil {
		s.bg.Go(func() { s.presence.run(s.ctx) })
	}
	s.log.Info("SIP listening", "addr", s.Addr(), "tls", s.tlsAddr())
	return nil
}

func (s *Server) bind(ctx context.Context) error {
	host, portStr, _ := net.SplitHostPort(s.cfg.Listen)
	wantPort, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("phonesync: sip.listen port %q: %w", portStr, err)
	}
	var lc net.ListenConfig
	var lastErr error
	// With port 0, UDP picks a port and TCP must get the same one; a port
	// the TCP side holds (a client connection's, in TIME_WAIT after a
	// burst of connections) makes that try fail, so try often enough for
	// a busy ephemeral range.
	for range 64 {
		if err := ctx.Err(); err != nil {
			return err
		}
		pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(wantPort)))
		if err != nil {
			return fmt.Errorf("phonesync: listen udp: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			pc.Close()
			lastErr = err
			if wantPort == 0 {
				continue // TCP's twin of the port UDP got is taken: try another
			}
			return fmt.Errorf("phonesync: listen tcp: %w", err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			// The kernel default (~208 KB) overflows in a subscribe storm or
			// above ~10,000 NOTIFY answers/s, and every dropped datagram costs
			// a retransmission at T1 = 500 ms (BENCHMARKS.md, phone sync). The
			// kernel caps it at net.core.rmem_max; an error only means less.
			_ = uc.SetReadBuffer(udpReadBuffer)
		}
		la := pc.LocalAddr().(*net.UDPAddr)
		s.tcpRaw, s.tcpGuard = ln, s.guard(ln, "sip/tcp")
		s.udpConn = netguard.NewPacketConn(pc, "sip/udp", s.log)
		s.tcpLn, s.port = s.tcpGuard, port
		s.udpLaddr = sip.Addr{IP: la.IP, Port: la.Port}
		break
	}
	if s.udpConn == nil {
		return fmt.Errorf("phonesync: no port free for both UDP and TCP: %w", lastErr)
	}
	if s.tlsConf != nil {
		ln, err := lc.Listen(ctx, "tcp", s.cfg.TLSListen)
		if err != nil {
			s.udpConn.Close()
			s.tcpLn.Close()
			return fmt.Errorf("phonesync: listen tls: %w", err)
		}
		s.tlsGuard = s.guard(ln, "sip/tls")
		s.tlsLn = tls.NewListener(s.tlsGuard, s.tlsConf)
		s.tlsPort = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

func (s *Server) waitUDPListener(ctx context.Context) {
	pool := s.ua.TransportLayer().Pool("udp")
	addr := s.udpLaddr.String()
	for range 200 {
		if pool.Size() > 0 {
			if c, err := s.ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
				c.Ref(-1) // GetConnection took a reference
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Addr is the bound UDP and TCP address (host:port), "" before Start.
func (s *Server) Addr() string {
	if s.udpConn == nil {
		return ""
	}
	return s.udpConn.LocalAddr().String()
}

func (s *Server) tlsAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// Close ends the server. Subscriptions are terminated with a NOTIFY
// (Subscription-State: terminated;reason=noresource), except, when a state
// file is configured, the UDP ones: those are written to it and carry on
// after the restart (issue 5, "Restart and failover"). Close then stops
// every goroutine and closes the listeners.
func (s *Server) Close() error { return s.shutdown(true) }

// crash stops the server the way a killed process would: no terminating
// NOTIFYs and no last write of the state file. Tests use it for restarts.
func (s *Server) crash() error { return s.shutdown(false) }

func (s *Server) shutdown(graceful bool) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	started := s.started
	all := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		all = append(all, sub)
	}
	s.mu.Unlock()

	persist := graceful && started && s.persisting()
	var kept []*subscription
	for _, sub := range all {
		sub.mu.Lock()
		udp := sub.transport == "UDP"
		sub.mu.Unlock()
		switch {
		case persist && udp:
			kept = append(kept, sub) // written below, then stopped
		case graceful && started:
			s.enqueue(sub, notifyJob{kind: jobTerminate, reason: "noresource"})
		default:
			sub.kill()
		}
	}
	s.stopRequests() // Service calls of handlers in flight give up now
	s.handlers.Wait()
	s.workMu.Lock()
	s.workersClosed = true
	s.workMu.Unlock()
	s.workers.Wait()
	s.draining.Store(true)
	if persist {
		if err := s.saveState(true); err != nil {
			s.log.Warn("saving SIP dialog state", "err", err)
		}
	} else {
		// Nothing more is written (a crash writes nothing): the persist
		// loop must not put the dialogs being cleared below over the file.
		s.saveMu.Lock()
		s.savedFinal = true
		s.saveMu.Unlock()
	}
	for _, sub := range kept {
		sub.kill()
	}
	s.mu.Lock()
	clear(s.subs)
	clear(s.lines)
	s.mu.Unlock()
	s.cancel()
	s.bg.Wait()
	var errs []error
	if s.udpConn != nil {
		errs = append(errs, ignoreClosed(s.udpConn.Close()))
	}
	if s.tcpLn != nil {
		errs = append(errs, ignoreClosed(s.tcpLn.Close()))
	}
	if s.tlsLn != nil {
		errs = append(errs, ignoreClosed(s.tlsLn.Close()))
	}
	errs = append(errs, s.ua.Close())
	s.wg.Wait()
	return errors.Join(errs...)
}

// readFilter sees every read before sipgo parses it. It refuses what cannot
// be SIP (edge.go) before sipgo would log it whole, and drops requests once
// Close has sent its NOTIFYs: sipgo takes a connection for a request's
// answer as soon as it is read, and one read while the listeners close
// would open a fresh socket after the UA closed. Responses still pass:
// presence's unSUBSCRIBEs are waiting for theirs.
func (s *Server) readFilter(props sip.TransportReadProps, data []byte) ([]byte, error) {
	if err := s.screen(props, data); err != nil {
		if props.Transport == "UDP" {
			return nil, nil // an error would end sipgo's UDP read loop
		}
		return nil, err // sipgo closes the connection: a stream has no boundary to resync on
	}
	if s.draining.Load() && !bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		return nil, nil
	}
	return data, nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// track counts a handler in flight so Close can wait for it, and leaves
// requests unanswered once closing.
func (s *Server) track(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		if s.closing {
			// Unanswered: the listeners are about to close, and sipgo
			// would open a fresh socket for a response it can no longer
			// route through them. The phone retries elsewhere or later.
			s.mu.Unlock()
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		h(req, tx)
	}
}

func respond(tx sip.ServerTransaction, res *sip.Response) {
	_ = tx.Respond(res)
}

// onNotify takes PBX presence NOTIFYs; the connector holds no other
// subscriptions as subscriber.
func (s *Server) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	pkg, _ := eventPackage(req)
	if pkg == eventPresence && s.presence != nil {
		code := s.presence.handleNotify(req)
		respond(tx, sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil))
		return
	}
	respond(tx, sip.NewResponseFromRequest(req, 481, "Subscription Does Not Exist", nil))
}

// onOptions answers pings (and counts them as contact from a known phone).
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "SUBSCRIBE, NOTIFY, OPTIONS"))
	res.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
	res.AppendHeader(sip.NewHeader("Accept", FeatureEventContentType+", "+HotelingContentType))
	respond(tx, res)
	if from := req.From(); from != nil && from.Address.User != "" {
		s.touch(from.Address.User, false)
	}
}

func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 481:
		return "Subscription Does Not Exist"
	case 489:
		return "Bad Event"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	}
	return "Unknown"
}

// headerValue reads a header by long or compact name (sipgo's parser does
// not map the compact Event form "o", sip.md §4.2).
func headerValue(req *sip.Request, long, compact string) string {
	if h := req.GetHeader(long); h != nil {
		return strings.TrimSpace(h.Value())
	}
	if compact != "" {
		if h := req.GetHeader(compact); h != nil {
			return strings.TrimSpace(h.Value())
		}
	}
	return ""
}

// eventPackage splits the Event header into package name and the whole
// value (which NOTIFYs echo, ;id= included).
func eventPackage(req *sip.Request) (pkg, full string) {
	full = headerValue(req, "Event", "o")
	name, _, _ := strings.Cut(full, ";")
	return strings.ToLower(strings.TrimSpace(name)), full
}
