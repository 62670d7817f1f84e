package connector

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

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
	token := cfg.Admin.Token
	if token == "" && cfg.Admin.TokenFile == "" && loopback(cfg.Admin.Listen) {
		// First run: the README's first command opens the dashboard
		// without editing the configuration. Only this host can reach
		// it; a token for another address is the operator's to choose.
		token = rand.Text()
		c.firstRunToken = token
	}
	opts := []admin.Option{admin.WithLogger(c.logger), admin.WithSource(view),
		admin.WithToken(token), admin.WithReadiness(view.ready), admin.WithMetrics(view.metrics()),
		admin.WithBudget(c.opts.budget)}
	if c.journal != nil {
		opts = append(opts, admin.WithJournal(c.journal))
	}
	opts = append(opts, admin.WithCluster(clusterView{c}))
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
			c.admin.Handle("/csta", c.servedWhenActive(c.front.WebSocketHandler()))
		} else {
			c.admin.HandleWithToken("/csta", c.servedWhenActive(c.front.WebSocketHandler()))
		}
	}
	c.gateway.SetObserver(view)
	return nil
}

// startFronts opens the CSTA listener and the admin server, and logs where
// the connector listens.
func (c *Connector) startFronts() error {
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
	c.logAdmin()
	c.logListening()
	return nil
}

// logListening logs where the connector serves: "connector running".
func (c *Connector) logListening() {
	cfg := c.Config()
	addr := c.AdminAddr()
	listening := []any{"csta", c.CSTAAddr(), "admin", addr}
	if cfg.CSTAFrontEnd.WebSocket.Enabled {
		ws := map[string]string{"http": "ws", "https": "wss"}[c.scheme]
		listening = append(listening, "csta_websocket", ws+"://"+addr+"/csta")
	}
	listening = append(listening, "admin_url", c.scheme+"://"+addr+"/")
	if c.ha != nil {
		listening = append(listening, "instance_id", cfg.InstanceName(), "role", string(c.Role()))
	}
	c.logger.Info("connector running", listening...)
}

// logAdmin warns about the admin token once the admin server listens.
func (c *Connector) logAdmin() {
	cfg := c.Config()
	switch {
	case c.firstRunToken != "":
		c.logger.Warn("admin.token is empty: the admin API takes a token made for this run, on this host only; set admin.token or admin.token_file to keep one",
			"dashboard", c.DashboardURL())
	case cfg.Admin.Token == "":
		c.logger.Warn("admin API locked: admin.token is empty and admin.listen is not a loopback address, so every route but /healthz answers 401")
	}
}

// DashboardURL is the admin dashboard's address with the token made for
// this run in it; "" when the token is the configuration's (or none).
func (c *Connector) DashboardURL() string {
	if c.firstRunToken == "" {
		return ""
	}
	return c.scheme + "://" + c.AdminAddr() + "/?token=" + c.firstRunToken
}

// loopback: the host:port listens on a loopback address only (a name
// other than localhost, or no host, may be any interface).
func loopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// logSuppressed is the number of log lines the guard dropped, for metrics
// (0 with a logger that is not behind logguard).
func (c *Connector) logSuppressed() float64 {
	if g, ok := c.logger.Handler().(*logguard.Handler); ok {
		return float64(g.Suppressed())
	}
	return 0
}
