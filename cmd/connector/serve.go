package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/connector"
	"github.com/broadworks-connector/connector/internal/logguard"
	"github.com/broadworks-connector/connector/internal/netguard"
)

// process is one running connector (package connector) and what the
// command keeps around it: the configuration file, for SIGHUP, and the
// logger with its level.
type process struct {
	configPath string
	logLevel   *slog.LevelVar
	logger     *slog.Logger
	conn       *connector.Connector
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

	p := &process{configPath: path, logLevel: new(slog.LevelVar)}
	p.logLevel.Set(cfg.Log.SlogLevel())
	p.logger = newLogger(stderr, cfg.Log.Format, p.logLevel)
	p.logger.Info("connector starting", "version", currentVersion(), "config", path)
	opts := []connector.Option{connector.WithLogger(p.logger)}
	if b, limit, err := netguard.ProcessBudget(); err != nil {
		p.logger.Warn("descriptor limit unknown; no connection budget", "err", err)
	} else if b != nil {
		opts = append(opts, connector.WithBudget(b))
		p.logger.Info("descriptor budget", "limit", limit, "connections", b.Cap())
	}

	// Subscribe before starting, so that a signal during startup is not
	// taken by its default action.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	conn, err := connector.New(cfg, opts...)
	if err == nil {
		err = conn.Start(context.Background())
	}
	if err != nil {
		p.logger.Error("connector: cannot start", "error", err)
		return exitFailure
	}
	p.conn = conn
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

// serveSignals runs until SIGINT or SIGTERM, or until the connector stops
// serving on its own (an instance of an active/standby pair deposed, or
// unable to take over): then the process ends with a failure, so that its
// supervisor (systemd's Restart=on-failure) starts it again, as a standby.
// SIGHUP reloads.
func (p *process) serveSignals(signals <-chan os.Signal) int {
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				p.reload()
				continue
			}
			p.logger.Info("connector shutting down", "signal", sig.String())
			return p.shutdown()
		case <-p.conn.Done():
			err := p.conn.Err()
			if errors.Is(err, connector.ErrDeposed) {
				p.logger.Error("connector deposed: another instance may take the lease; exiting so that the supervisor starts this one again as a standby", "reason", err)
			} else {
				p.logger.Error("connector stopped serving", "error", err)
			}
			p.shutdown()
			return exitFailure
		}
	}
}

func (p *process) shutdown() int {
	ctx, cancel := context.WithTimeout(context.Background(), connector.ShutdownTimeout)
	defer cancel()
	if err := p.conn.Shutdown(ctx); err != nil {
		p.logger.Error("connector: shutdown", "error", err)
		return exitFailure
	}
	p.logger.Info("connector stopped")
	return exitOK
}

// reload reads the configuration file again. An invalid file changes
// nothing; otherwise every change that can be made live is applied and the
// others are refused by name until a restart.
func (p *process) reload() {
	p.logger.Info("reload: reading configuration", "config", p.configPath)
	next, err := config.Load(p.configPath)
	if err != nil {
		logConfigProblems(p.logger, err)
		p.logger.Error("reload: configuration invalid, keeping the running one")
		return
	}
	if _, err := p.conn.Reload(next); err == nil {
		p.logLevel.Set(p.conn.Config().Log.SlogLevel())
	}
}
