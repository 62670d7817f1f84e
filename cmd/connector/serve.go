package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/logguard"
	"github.com/broadworks-connector/connector/internal/netguard"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/store"
)

// shutdownTimeout bounds a clean shutdown after SIGINT/SIGTERM.
const shutdownTimeout = 10 * time.Second

// process is one running connector: the configuration in force and what was
// built from it.
type process struct {
	configPath string
	cfg        *config.Config
	logLevel   *slog.LevelVar
	logger     *slog.Logger
	front      *csta.Server
	admin      *admin.Server // nil when csta.websocket.enabled is false
	xsi        *xsiLink      // the gateway, the XSI link and, with xsi.simulate, the XSP simulator
	// phones is the phone sync server, nil when sip.listen is empty; set
	// after the admin server has started, so its readers load it.
	phones atomic.Pointer[phonesync.Server]
	store  *store.Bolt // nil when store.path is empty
	// budget caps connections across the guarded listeners below the
	// descriptor limit (netguard.ProcessBudget); nil when unknown.
	budget *netguard.Budget
}

func runCommand(args []string, stderr io.Writer) int {
	fs := newFlagSet("run", "[--config FILE]")
	configFlag := fs.String("config", "", "configuration `FILE` (YAML); default ./"+exampleConfig+" if present")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	path, ok := runConfigPath(*configFlag, stderr)
	if !ok {
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return exitUsage
	}

	p := &process{configPath: path, cfg: cfg, logLevel: new(slog.LevelVar)}
	p.logLevel.Set(cfg.Log.SlogLevel())
	p.logger = newLogger(stderr, cfg.Log.Format, p.logLevel)
	p.logger.Info("connector starting", "version", currentVersion(), "config", path)
	if b, limit, err := netguard.ProcessBudget(); err != nil {
		p.logger.Warn("descriptor limit unknown; no connection budget", "err", err)
	} else if b != nil {
		p.budget = b
		p.logger.Info("descriptor budget", "limit", limit, "connections", b.Cap())
	}

	// Subscribe before starting, so that a signal during startup is not
	// taken by its default action.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	if err := p.start(); err != nil {
		p.logger.Error("connector: cannot start", "error", err)
		return exitFailure
	}
	return p.serveSignals(signals)
}

// newLogger is the process's logger: text or JSON behind logguard, which
// bounds every value from the wire, redacts credentials and rate limits
// lines a peer can trigger (issue 13). It is also slog's default, for
// libraries that log through slog.Default.
func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	guard := logguard.NewHandler(h, logguard.Options{})
	l := slog.New(guard)
	slog.SetDefault(l)
	return l
}

// logSuppressed is the number of log lines the guard dropped, for metrics.
func logSuppressed(l *slog.Logger) float64 {
	if g, ok := l.Handler().(*logguard.Handler); ok {
		return float64(g.Suppressed())
	}
	return 0
}

// start builds the BroadWorks side (the embedded XSP simulator with
// xsi.simulate, the XSI client and channel set, the gateway and its hot-desk
// sequencer), starts the CSTA front end and, for the CSTA WebSocket, the
// admin server with the gateway as their service, and then the XSI link
// feeding the gateway. On error whatever started is stopped again.
func (p *process) start() error {
	if err := p.openStore(); err != nil {
		return err
	}
	var remembered hoteling.Store
	if p.store != nil {
		remembered = p.store.Remembered()
	}
	link, err := newXSILink(p.cfg, p.logger, remembered)
	if err != nil {
		p.closeStore()
		return err
	}
	p.xsi = link
	if err := p.openJournal(); err != nil {
		p.stopXSI()
		return err
	}
	if err := p.startFront(); err != nil {
		p.stopXSI()
		return err
	}
	stopFronts := func() {
		p.stopFront()
		if p.admin != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			p.admin.Shutdown(ctx)
			cancel()
		}
	}
	if err := link.start(p.front, p.cfg.RecoverUsers()); err != nil {
		stopFronts()
		p.stopXSI()
		return err
	}
	if err := p.startPhones(); err != nil {
		stopFronts()
		p.stopXSI()
		return err
	}
	return nil
}

// openStore opens the store (store.path) and migrates into it the files
// of the three stores connectors kept before (journal.path,
// hoteling.state_file, sip.state_file). A file that cannot be migrated
// stops the start, named by its key: it stays in place, so nothing is lost.
func (p *process) openStore() error {
	sc := p.cfg.Store
	if sc.Path == "" {
		p.logger.Warn("store off (store.path is empty): no association journal; remembered desk forwarding and SIP dialogs are lost on restart")
		return nil
	}
	log := p.logger.With("component", "store")
	st, err := store.Open(sc.Path, store.Options{Journal: journal.Options{Retention: p.cfg.Journal.Retention}, Logger: log})
	if err != nil {
		return fmt.Errorf("store.path: %w", err)
	}
	legacy := store.Legacy{JournalPath: p.cfg.Journal.Path, HotelingPath: p.cfg.HotDesks.StateFile, SIPPath: p.cfg.SIP.StateFile}
	if _, err := st.MigrateLegacy(legacy); err != nil {
		st.Close()
		return err
	}
	p.store = st
	log.Info("store open", "driver", sc.Driver, "path", sc.Path, "journal_retention", p.cfg.Journal.Retention)
	return nil
}

// openJournal has the gateway record every association in the store's
// journal from the first XSI event on.
func (p *process) openJournal() error {
	if p.store == nil {
		return nil
	}
	a := &journalAdapter{j: p.store.Journal(), dir: p.xsi.gateway.Directory, log: p.logger.With("component", "journal")}
	p.xsi.journal = a
	p.xsi.gateway.SetJournal(a)
	return nil
}

// closeJournal stops recording (the gateway has stopped) and closes the
// store.
func (p *process) closeJournal() error {
	if p.store == nil {
		return nil
	}
	if p.xsi != nil {
		p.xsi.gateway.CloseJournal()
	}
	return p.closeStore()
}

func (p *process) closeStore() error {
	if p.store == nil {
		return nil
	}
	err := p.store.Close()
	p.store = nil
	return err
}

// startPhones starts phone sync when sip.listen is set: phonesync served by
// the gateway (phones' requests take the CTI requests' path), and the
// gateway publishing every change to it.
func (p *process) startPhones() error {
	pcfg := p.cfg.PhoneSync()
	if p.store != nil && p.cfg.PersistSIPDialogs() {
		pcfg.Dialogs = p.store.SIPDialogs()
	}
	pcfg.Budget = p.budget
	if pcfg.Listen == "" {
		p.logger.Info("phone sync off (sip.listen is empty)")
		return nil
	}
	srv, err := phonesync.NewServer(pcfg, p.xsi.gateway.PhoneService(), p.logger) // it names its component itself
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return err
	}
	p.xsi.gateway.SetPhones(srv)
	p.phones.Store(srv)
	return nil
}

// startFront starts the CSTA front end, served by the gateway, and the admin
// server.
func (p *process) startFront() error {
	p.front = csta.NewServer(p.cfg.CSTA(), p.xsi.gateway, p.logger)
	p.front.SetBudget(p.budget)
	if err := p.front.Start(); err != nil {
		return err
	}
	listening := []any{"csta", p.front.Addr().String()}
	view := adminView{p}
	opts := []admin.Option{admin.WithLogger(p.logger), admin.WithSource(view),
		admin.WithToken(p.cfg.Admin.Token), admin.WithReadiness(view.ready), admin.WithMetrics(view.metrics()),
		admin.WithBudget(p.budget)}
	if p.xsi.journal != nil {
		opts = append(opts, admin.WithJournal(p.xsi.journal))
	}
	scheme := "http"
	if t := p.cfg.Admin.TLS; t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			p.stopFront()
			return fmt.Errorf("admin.tls: %w", err)
		}
		opts = append(opts, admin.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		scheme = "https"
	}
	p.admin = admin.New(p.cfg.Admin.Listen, opts...)
	if p.cfg.CSTAFrontEnd.WebSocket.Enabled {
		// Nothing on the admin port answers without credentials: with
		// CSTA password auth the session asks for them; without, the admin
		// token guards the upgrade (header or ?token=).
		if p.cfg.CSTAFrontEnd.WebSocket.Auth.Mode == "password" {
			p.admin.Handle("/csta", p.front.WebSocketHandler())
		} else {
			p.admin.HandleWithToken("/csta", p.front.WebSocketHandler())
		}
	}
	if err := p.admin.Start(); err != nil {
		p.stopFront()
		return err
	}
	p.xsi.gateway.SetObserver(view)
	addr := p.admin.Addr().String()
	listening = append(listening, "admin", addr)
	if p.cfg.CSTAFrontEnd.WebSocket.Enabled {
		ws := map[string]string{"http": "ws", "https": "wss"}[scheme]
		listening = append(listening, "csta_websocket", ws+"://"+addr+"/csta")
	}
	listening = append(listening, "admin_url", scheme+"://"+addr+"/")
	if p.cfg.Admin.Token == "" {
		p.logger.Warn("admin API locked: admin.token is empty, so every route but /healthz answers 401")
	}
	p.logger.Info("connector running", listening...)
	return nil
}

// serveSignals runs until SIGINT or SIGTERM; SIGHUP reloads.
func (p *process) serveSignals(signals <-chan os.Signal) int {
	for sig := range signals {
		if sig == syscall.SIGHUP {
			p.reload()
			continue
		}
		p.logger.Info("connector shutting down", "signal", sig.String())
		return p.shutdown()
	}
	return exitOK
}

func (p *process) shutdown() int {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Phones, then the CSTA front end: it tells WebSocket sessions too, which the
	// admin server's Shutdown leaves alone. Then the gateway stops, the XSI
	// link deletes its channels, the Actions client closes, and only then
	// does the simulator go.
	var err error
	if phones := p.phones.Load(); phones != nil {
		// Phones first: each subscription gets its terminating NOTIFY
		// while the gateway can still answer.
		p.xsi.gateway.SetPhones(nil)
		err = phones.Close()
	}
	err = errors.Join(err, p.front.Shutdown(ctx))
	p.xsi.gateway.Close() // no stale-login cleanups from here on
	p.xsi.gateway.SetObserver(nil)
	if p.admin != nil {
		err = errors.Join(err, p.admin.Shutdown(ctx))
	}
	err = errors.Join(err, p.xsi.stop(ctx))
	err = errors.Join(err, p.closeJournal())
	if err != nil {
		p.logger.Error("connector: shutdown", "error", err)
		return exitFailure
	}
	p.logger.Info("connector stopped")
	return exitOK
}

func (p *process) stopXSI() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := errors.Join(p.xsi.stop(ctx), p.closeJournal()); err != nil {
		p.logger.Error("connector: shutdown", "error", err)
	}
}

func (p *process) stopFront() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := p.front.Shutdown(ctx); err != nil {
		p.logger.Error("connector: shutdown", "error", err)
	}
}

// reload reads the configuration file again. An invalid file changes
// nothing; otherwise every change that can be made live is applied and the
// others are refused by name until a restart.
func (p *process) reload() {
	p.logger.Info("reload: reading configuration", "config", p.configPath)
	next, err := config.Load(p.configPath)
	if err != nil {
		p.logConfigError(err)
		p.logger.Error("reload: configuration invalid, keeping the running one")
		return
	}
	plan := config.PlanReload(p.cfg, next)
	if len(plan.Changed) == 0 {
		p.logger.Info("reload: no changes")
		return
	}
	for _, key := range plan.Refused {
		p.logger.Warn("reload: change needs a restart, not applied", "key", key)
	}
	applied := slices.DeleteFunc(slices.Clone(plan.Changed), func(key string) bool { return slices.Contains(plan.Refused, key) })
	if len(applied) == 0 {
		return
	}
	if err := p.front.Reload(plan.Apply.CSTA()); err != nil {
		p.logger.Error("reload: csta refused the configuration, keeping the running one", "error", err)
		return
	}
	if phones := p.phones.Load(); phones != nil {
		if err := phones.Reload(plan.Apply.PhoneSync()); err != nil {
			p.logger.Error("reload: phone sync kept its limits", "error", err)
		}
	}
	if sim := p.xsi.simulator; sim != nil && slices.ContainsFunc(applied, func(k string) bool { return strings.HasPrefix(k, "simulator.") }) {
		// Users added to BroadWorks while the connector runs (issue 15):
		// the embedded simulator takes the new ones.
		addSimulatorUsers(sim, p.cfg, plan.Apply, p.logger)
	}
	p.xsi.gateway.Reload(plan.Apply.Gateway())
	p.logLevel.Set(plan.Apply.Log.SlogLevel())
	p.cfg = plan.Apply
	p.logger.Info("reload: applied", "changed", applied)
}

func (p *process) logConfigError(err error) {
	var problems *config.Errors
	if !errors.As(err, &problems) {
		p.logger.Error(err.Error())
		return
	}
	for _, problem := range problems.Problems {
		p.logger.Error("config: invalid key", "key", problem.Key, "problem", problem.Reason)
	}
}
