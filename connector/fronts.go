package connector

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/internal/logguard"
)

// buildFronts builds the CSTA front end, served by the gateway, and the
// admin server over the admin view, which is also the gateway's observer
// (the admin live stream) from the first event on.
func (c *Connector) buildFronts() error {
	cfg := c.Config()
	c.front = csta.NewServer(cfg.CSTA(), c.gateway, c.logger)
	c.front.SetBudget(c.opts.budget)
	c.publisher.srv.Store(c.front)
	if c.gate != nil {
		c.gate.silence = func() { c.front.Close() }
	}

	view := adminView{c}
	opts := []admin.Option{admin.WithLogger(c.logger), admin.WithSource(view),
		admin.WithToken(cfg.Admin.Token), admin.WithReadiness(view.ready), admin.WithMetrics(view.metrics()),
		admin.WithBudget(c.opts.budget)}
	if c.journal != nil {
		opts = append(opts, admin.WithJournal(c.journal))
	}
	c.scheme = "http"
	if t := cfg.Admin.TLS; t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("admin.tls: %w", err)
		}
		opts = append(opts, admin.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		c.scheme = "https"
	}
	c.admin = admin.New(cfg.Admin.Listen, opts...)
	if cfg.CSTAFrontEnd.WebSocket.Enabled {
		// Nothing on the admin port answers without credentials: with
		// CSTA password auth the session asks for them; without, the admin
		// token guards the upgrade (header or ?token=).
		if cfg.CSTAFrontEnd.WebSocket.Auth.Mode == "password" {
			c.admin.Handle("/csta", c.front.WebSocketHandler())
		} else {
			c.admin.HandleWithToken("/csta", c.front.WebSocketHandler())
		}
	}
	c.gateway.SetObserver(view)
	return nil
}

// startFronts opens the CSTA listener and the admin server, and logs where
// the connector listens.
func (c *Connector) startFronts() error {
	cfg := c.Config()
	if err := c.front.Start(); err != nil {
		return err
	}
	if err := c.admin.Start(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if serr := c.front.Shutdown(ctx); serr != nil {
			c.logger.Error("connector: shutdown", "error", serr)
		}
		return err
	}
	addr := c.AdminAddr()
	listening := []any{"csta", c.CSTAAddr(), "admin", addr}
	if cfg.CSTAFrontEnd.WebSocket.Enabled {
		ws := map[string]string{"http": "ws", "https": "wss"}[c.scheme]
		listening = append(listening, "csta_websocket", ws+"://"+addr+"/csta")
	}
	listening = append(listening, "admin_url", c.scheme+"://"+addr+"/")
	if cfg.Admin.Token == "" {
		c.logger.Warn("admin API locked: admin.token is empty, so every route but /healthz answers 401")
	}
	c.logger.Info("connector running", listening...)
	return nil
}

// logSuppressed is the number of log lines the guard dropped, for metrics
// (0 with a logger that is not behind logguard).
func (c *Connector) logSuppressed() float64 {
	if g, ok := c.logger.Handler().(*logguard.Handler); ok {
		return float64(g.Suppressed())
	}
	return 0
}
