package gateway

// liveConfig is the configuration in force and the directory built from it.
// Reload replaces it whole; readers load it once per use (g.cfg(), g.dir()),
// so a request never sees half of an old and half of a new configuration.
type liveConfig struct {
	cfg Config
	dir *Directory
}

func (g *Gateway) cfg() *Config    { return &g.live.Load().cfg }
func (g *Gateway) dir() *Directory { return g.live.Load().dir }

// Reload applies a new configuration while the gateway runs (SIGHUP): the
// directory (domain, devices, agents, reason codes), the default unavailable
// code, the request timeout, the conflict window and the stale-login grace.
// The event packages and the agents' phone passwords are fixed
// at New (the XSI subscriptions and the phone server are built once) and
// keep their values.
//
// Nothing in BroadWorks changes: an agent logged on stays logged on, and
// events from then on are published to the devices the new directory maps
// its user to. A stale-login cleanup already scheduled keeps its time.
func (g *Gateway) Reload(cfg Config) {
	old := g.cfg()
	cfg.EventPackages = old.EventPackages
	cfg.AgentPasswords = old.AgentPasswords
	cfg.DoubtWindow, cfg.RecoverMode = old.DoubtWindow, old.RecoverMode
	cfg.LoadUsers, cfg.MaxUserLoads = old.LoadUsers, old.MaxUserLoads
	g.live.Store(&liveConfig{cfg: cfg, dir: NewDirectory(cfg)})
	g.log.Info("gateway configuration reloaded", "devices", len(cfg.Devices), "agents", len(cfg.Agents),
		"reason_codes", len(cfg.ReasonCodes))
}
