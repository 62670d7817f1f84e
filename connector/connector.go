// Package connector assembles the whole connector from a *config.Config:
// the XSI link (the Xsi-Actions client, the Xsi-Events channel set and, with
// xsi.simulate, the embedded XSP simulator), the gateway with its hot-desk
// sequencer, the association journal, the CSTA front end, the admin server
// and phone sync. `connector run` builds its process with it, and so do the
// fault campaign and the benchmarks (internal/stack), so that what they
// prove is the production wiring.
//
// New builds every part in construction order (nothing listens and nothing
// talks to BroadWorks yet); Start opens the listeners and the XSI link;
// Shutdown stops them in reverse. Options that production does not use are
// for the tests that drive an assembled connector: a crash (Crash,
// CrashBefore), an event tap, a repair observer.
package connector

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/netguard"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// ShutdownTimeout bounds a clean shutdown and the steps of start-up that
// wait on a peer (phone sync binding, the simulator stopping).
const ShutdownTimeout = 10 * time.Second

// recoverSnapshotWait bounds how long a repair pass waits for the users'
// snapshots after the link is (back) up; users without one are looked at
// anyway, and again once theirs is in.
const recoverSnapshotWait = 15 * time.Second

// Option adjusts how New assembles the connector.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	budget     *netguard.Budget
	crashable  bool
	tap        func(xsi.Event)
	startUp    []string
	hasStartUp bool
	bindRetry  time.Duration
	cluster    store.Cluster
}

// WithLogger is the logger of every part (each names its component); the
// default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBudget caps connections across the guarded listeners (CSTA, admin,
// SIP/TCP) below the process's descriptor limit (netguard.ProcessBudget).
func WithBudget(b *netguard.Budget) Option { return func(o *options) { o.budget = b } }

// WithCrashSimulation lets Crash and CrashBefore stop the connector as a
// killed process would: every Xsi-Actions request and every write to the
// store (journal, remembered desk forwarding, SIP dialogs) passes a gate
// that a crash closes at once.
// The fault campaign needs it; `run` does not use it (a real crash needs no
// simulation).
func WithCrashSimulation() Option { return func(o *options) { o.crashable = true } }

// WithEventTap has tap see every XSI event the channel set hands to the
// gateway, in that order, just before the gateway does (diagnostics).
func WithEventTap(tap func(xsi.Event)) Option { return func(o *options) { o.tap = tap } }

// WithStartUpUsers replaces the users read at start (by default the
// directory's hot desks and agents, config.StartUpUsers), for a directory
// that BroadWorks alone holds.
func WithStartUpUsers(users []string) Option {
	return func(o *options) { o.startUp, o.hasStartUp = slices.Clone(users), true }
}

// WithPhonesBindRetry keeps trying to bind sip.listen for up to d when it
// is taken: a connector started again at once on the address of the one
// before may find it still held for a moment.
func WithPhonesBindRetry(d time.Duration) Option { return func(o *options) { o.bindRetry = d } }

// Connector is one assembled connector: the configuration in force and
// what was built from it.
type Connector struct {
	opts   options
	logger *slog.Logger

	mu  sync.Mutex // cfg
	cfg *config.Config

	simulator *xspsim.Server // nil unless xsi.simulate
	client    *xsi.Client
	events    *xsi.Events
	gateway   *gateway.Gateway
	sequencer *hoteling.Sequencer
	store     durableStore // nil with the bbolt driver and no store.path
	front     *csta.Server
	admin     *admin.Server
	journal   *journalAdapter // nil without store.path
	// phones is phone sync, nil when sip.listen is empty or not yet
	// started; the admin view reads it.
	phones    atomic.Pointer[phonesync.Server]
	publisher *frontPublisher
	gate      *crashGate // nil without WithCrashSimulation or ha.mode active-standby
	ha        *haState   // nil in standalone mode
	// cluster is the shared store's lease and heartbeat side, nil on the
	// embedded store.
	cluster       store.Cluster
	stopReporting func() // a standalone instance's heartbeats, nil unless running

	// life serializes starting the parts (Start, or a standby taking
	// over) with stopping them.
	life      sync.Mutex
	startedAt time.Time
	ended     chan struct{} // Done
	endOnce   sync.Once
	endErr    error

	scheme string // of the admin server: http or https
	// firstRunToken: the admin token made at start when none is set and
	// the admin server is on a loopback address (buildFronts).
	firstRunToken   string
	startupRepaired chan struct{} // closed once the start-up repair pass is done
	startupOnce     sync.Once

	started      bool
	stopped      bool
	cancel       context.CancelFunc // ends the gateway's Run and the repair loop
	gatewayDone  chan struct{}      // closed when Run and the repair loop returned
	linkLogDone  chan struct{}      // closed by shutdown: ends the link-state logger
	linkLoggerWG sync.WaitGroup
}

// New builds the connector from cfg (a validated configuration, as
// config.Load returns): with xsi.simulate the embedded simulator starts
// (the XSI link needs its address); the store opens (and takes in the
// files of the stores before it); everything else is
// built but neither listens nor talks to BroadWorks until Start. On error
// whatever was built is released again.
func New(cfg *config.Config, opts ...Option) (*Connector, error) {
	c := &Connector{cfg: cfg, publisher: &frontPublisher{}, startupRepaired: make(chan struct{}),
		gatewayDone: make(chan struct{}), linkLogDone: make(chan struct{}), ended: make(chan struct{})}
	for _, o := range opts {
		o(&c.opts)
	}
	if c.opts.logger == nil {
		c.opts.logger = slog.New(slog.DiscardHandler)
	}
	c.logger = c.opts.logger
	if c.opts.crashable || cfg.ActiveStandby() {
		// A deposed instance of a pair stops as a crashed one does.
		c.gate = newCrashGate()
	}
	// The store first: a file it cannot migrate stops the start before
	// anything else is built.
	err := c.openStore()
	if err == nil {
		err = c.buildXSILink()
	}
	if err == nil {
		c.buildGateway()
		err = c.buildHA() // before the fronts: the admin's metrics include the lease's
	}
	if err == nil {
		err = c.buildFronts()
	}
	if err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// release frees what New built when it fails, or when Start fails before
// anything runs: the store, the Actions client and the simulator.
func (c *Connector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := c.closeStore(); err != nil {
		c.logger.Error("connector: store close", "error", err)
	}
	if c.client != nil {
		c.client.Close()
	}
	if c.simulator != nil {
		if err := c.simulator.Shutdown(ctx); err != nil {
			c.logger.Error("connector: xsp simulator shutdown", "error", err)
		}
	}
}

// Start opens the CSTA listener and the admin server, starts the gateway's
// event loop, the repair loop and the XSI channel set, and then phone sync.
// With ha.mode active-standby it opens the admin server only and runs the
// lease; the rest starts once the lease is this instance's (ha.go).
// On error whatever started is stopped again and the connector is done.
func (c *Connector) Start(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.started {
		return errors.New("connector: already started")
	}
	c.started = true
	c.startedAt = time.Now()
	if c.ha != nil {
		if err := c.startStandby(); err != nil {
			c.release()
			c.stopped = true
			return err
		}
		return nil
	}
	if err := c.startFronts(); err != nil {
		c.release()
		c.stopped = true
		return err
	}
	if err := c.startLink(); err != nil {
		c.stopLocked(context.Background(), true)
		return err
	}
	if err := c.startPhones(ctx); err != nil {
		c.stopLocked(context.Background(), true)
		return err
	}
	c.startReporting()
	return nil
}

// Shutdown stops the connector: phones first (each subscription gets its
// terminating NOTIFY while the gateway can still answer), then the CSTA
// front end (it tells WebSocket sessions too, which the admin server's
// Shutdown leaves alone), the gateway, the admin server, the XSI link
// (its channels deleted, the Actions client closed), the store and only
// then the simulator. ctx bounds the waits.
func (c *Connector) Shutdown(ctx context.Context) error {
	return c.stop(ctx, false)
}

// stop is Shutdown; hard (after a crash, a deposition or a failed start)
// leaves out the errors of parts that a crash leaves broken (phones, the
// CSTA sessions, the admin server). An instance of a pair releases its
// lease once its parts have stopped (its last writes under the fence are
// done).
func (c *Connector) stop(ctx context.Context, hard bool) error {
	if c.ha != nil {
		defer c.ha.activations.Wait() // a take-over that found the connector stopped
	}
	c.life.Lock()
	defer c.life.Unlock()
	return c.stopLocked(ctx, hard)
}

// stopLocked is stop with c.life held (Start's failures).
func (c *Connector) stopLocked(ctx context.Context, hard bool) error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	hard = hard || c.gate != nil && c.gate.dead()
	var err error
	keep := func(e error) {
		if !hard {
			err = errors.Join(err, e)
		}
	}
	if phones := c.phones.Load(); phones != nil {
		c.gateway.SetPhones(nil)
		keep(phones.Close())
	}
	keep(c.front.Shutdown(ctx))
	c.gateway.Close() // no stale-login cleanups from here on
	c.gateway.SetObserver(nil)
	keep(c.admin.Shutdown(ctx))
	err = errors.Join(err, c.stopLink(ctx))
	c.stopHA()
	if c.stopReporting != nil {
		c.stopReporting()
	}
	err = errors.Join(err, c.closeStore())
	if c.simulator != nil {
		err = errors.Join(err, c.simulator.Shutdown(ctx))
	}
	return err
}

// Config is the configuration in force (Reload replaces it).
func (c *Connector) Config() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Reload applies next as far as it can be applied live: an invalid
// combination changes nothing, changes that need a restart are logged by
// key and left out, the others are applied (the CSTA limits, phone sync,
// users added to the embedded simulator, the gateway's directory and
// timers). It returns the keys applied; the caller sets its log level from
// Config().Log.
func (c *Connector) Reload(next *config.Config) ([]string, error) {
	cur := c.Config()
	plan := config.PlanReload(cur, next)
	if len(plan.Changed) == 0 {
		c.logger.Info("reload: no changes")
		return nil, nil
	}
	for _, key := range plan.Refused {
		c.logger.Warn("reload: change needs a restart, not applied", "key", key)
	}
	applied := slices.DeleteFunc(slices.Clone(plan.Changed), func(key string) bool { return slices.Contains(plan.Refused, key) })
	if len(applied) == 0 {
		return nil, nil
	}
	if err := c.front.Reload(plan.Apply.CSTA()); err != nil {
		c.logger.Error("reload: csta refused the configuration, keeping the running one", "error", err)
		return nil, err
	}
	if phones := c.phones.Load(); phones != nil {
		if err := phones.Reload(plan.Apply.PhoneSync()); err != nil {
			c.logger.Error("reload: phone sync kept its limits", "error", err)
		}
	}
	if c.simulator != nil && slices.ContainsFunc(applied, func(k string) bool { return strings.HasPrefix(k, "simulator.") }) {
		// Users added to BroadWorks while the connector runs (issue 15):
		// the embedded simulator takes the new ones.
		AddSimulatorUsers(c.simulator, cur, plan.Apply, c.logger)
	}
	c.gateway.Reload(plan.Apply.Gateway())
	c.mu.Lock()
	c.cfg = plan.Apply
	c.mu.Unlock()
	c.logger.Info("reload: applied", "changed", applied)
	return applied, nil
}

// Accessors, for the process's log lines and for tests.

// CSTAAddr is the CSTA listener's address (after Start; "" while a
// standby's listener is closed).
func (c *Connector) CSTAAddr() string {
	if a := c.front.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// AdminAddr is the admin server's address (after Start).
func (c *Connector) AdminAddr() string { return c.admin.Addr().String() }

// SIPAddr is phone sync's address, "" when it is off.
func (c *Connector) SIPAddr() string {
	if p := c.phones.Load(); p != nil {
		return p.Addr()
	}
	return ""
}

func (c *Connector) Gateway() *gateway.Gateway      { return c.gateway }
func (c *Connector) Sequencer() *hoteling.Sequencer { return c.sequencer }
func (c *Connector) Events() *xsi.Events            { return c.events }
func (c *Connector) Client() *xsi.Client            { return c.client }
func (c *Connector) CSTA() *csta.Server             { return c.front }
func (c *Connector) Phones() *phonesync.Server      { return c.phones.Load() }
func (c *Connector) Simulator() *xspsim.Server      { return c.simulator } // nil unless xsi.simulate

// StartupRepaired is closed once the start-up repair pass is done (or
// will not come: no users to look at, or the connector stopped first).
func (c *Connector) StartupRepaired() <-chan struct{} { return c.startupRepaired }

// startPhones starts phone sync when sip.listen is set: phonesync served by
// the gateway (phones' requests take the CTI requests' path), and the
// gateway publishing every change to it.
func (c *Connector) startPhones(ctx context.Context) error {
	cfg := c.Config()
	pcfg := cfg.PhoneSync()
	if c.store != nil && cfg.PersistSIPDialogs() {
		pcfg.Dialogs = c.gatedDialogs(c.store.SIPDialogs())
	}
	pcfg.Budget = c.opts.budget
	if pcfg.Listen == "" {
		c.logger.Info("phone sync off (sip.listen is empty)")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	retryUntil := time.Now().Add(c.opts.bindRetry)
	for {
		srv, err := phonesync.NewServer(pcfg, c.gateway.PhoneService(), c.logger) // it names its component itself
		if err != nil {
			return err
		}
		err = srv.Start(ctx)
		if err == nil {
			c.gateway.SetPhones(srv)
			c.phones.Store(srv)
			return nil
		}
		srv.Close()
		if !time.Now().Before(retryUntil) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// frontPublisher hands the gateway's events to the CSTA front end, which is
// built after the gateway (it needs the gateway as its csta.Service).
type frontPublisher struct {
	srv atomic.Pointer[csta.Server]
}

func (p *frontPublisher) Publish(ev csta.Event) {
	if s := p.srv.Load(); s != nil {
		s.Publish(ev)
	}
}

func (p *frontPublisher) Monitored(dev csta.DeviceID) bool {
	s := p.srv.Load()
	return s != nil && s.Monitored(dev)
}

func (p *frontPublisher) SetSystemStatus(v csta.SystemStatusValue) {
	if s := p.srv.Load(); s != nil {
		s.SetSystemStatus(v)
	}
}

// errNotStarted is what a crash of a connector not running returns.
var errNotStarted = errors.New("connector: not running")
