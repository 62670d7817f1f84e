package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/xsi"
)

// adminView is the admin API's Source over the running connector (gateway,
// phonesync, the CSTA front end, the XSI link) and the gateway's Observer
// feeding the admin live stream. It only translates; the state lives in
// the packages it reads.
type adminView struct {
	c *Connector
}

var (
	_ admin.Source     = adminView{}
	_ gateway.Observer = adminView{}
)

func (v adminView) Agents() []admin.Agent {
	st := v.c.gateway.Agents()
	out := make([]admin.Agent, 0, len(st))
	for _, a := range st {
		out = append(out, adminAgent(a))
	}
	return out
}

func adminAgent(a gateway.AgentStatus) admin.Agent {
	return admin.Agent{AgentID: a.AgentID, UserID: a.UserID, State: a.State, Reason: a.Reason, Desk: a.Desk, Since: a.Since}
}

func (v adminView) Devices() []admin.Device {
	st := v.c.gateway.Devices()
	out := make([]admin.Device, 0, len(st))
	for _, d := range st {
		out = append(out, adminDevice(d))
	}
	return out
}

// forwardName is the admin API's name of a forwarding type.
var forwardName = map[csta.ForwardingType]string{
	csta.ForwardImmediate: "always",
	csta.ForwardBusy:      "busy",
	csta.ForwardNoAns:     "noAnswer",
}

func adminDevice(d gateway.DeviceStatus) admin.Device {
	out := admin.Device{DeviceID: d.DeviceID, UserID: d.UserID, HotDesk: d.HotDesk, DoNotDisturb: d.DoNotDisturb,
		GuestAgentID: d.GuestAgentID, GuestSince: d.GuestSince, Forwarding: []admin.Forward{}}
	for _, f := range d.Forwarding {
		out.Forwarding = append(out.Forwarding, admin.Forward{Type: forwardName[f.Type], Active: f.Active, Number: f.Number, RingCount: f.RingCount})
	}
	return out
}

func (v adminView) Phones() []admin.Phone {
	phones := v.c.phones.Load()
	if phones == nil {
		return nil
	}
	infos := phones.Phones()
	out := make([]admin.Phone, 0, len(infos))
	for _, ph := range infos {
		out = append(out, admin.Phone{DN: ph.DN, Address: ph.Address, Port: ph.Port, Transport: ph.Transport,
			Expires: ph.Expires, LastSeen: ph.LastSeen, InService: ph.InService, Events: ph.Events})
	}
	return out
}

func (v adminView) Sessions() []admin.Session {
	conns := v.c.front.Connections()
	out := make([]admin.Session, 0, len(conns))
	for _, c := range conns {
		id := c.SessionID
		if id == "" {
			id = "conn-" + strconv.FormatUint(c.ConnID, 10) // connected, no application session (yet)
		}
		out = append(out, admin.Session{ID: id, Remote: c.Remote, User: c.User, Transport: c.Transport, Since: c.Connected, Monitors: c.Monitors})
	}
	return out
}

func (v adminView) Links() []admin.Link {
	ls := v.c.events.LinkState()
	out := make([]admin.Link, 0, len(ls))
	for _, l := range ls {
		al := admin.Link{Server: l.Server, State: l.State.String(), Channel: l.ChannelID, Since: l.Since}
		if l.LastError != nil {
			al.Error = l.LastError.Error()
		}
		out = append(out, al)
	}
	return out
}

func (v adminView) ForceLogout(ctx context.Context, agentID string) error {
	if reason := v.c.notServing(); reason != "" {
		return fmt.Errorf("connector: %s: this instance does not serve; ask the active one", reason)
	}
	err := v.c.gateway.ForceLogout(ctx, agentID)
	switch {
	case errors.Is(err, gateway.ErrUnknownAgent):
		return errors.Join(admin.ErrUnknownAgent, err)
	case errors.Is(err, gateway.ErrNotLoggedOn):
		return errors.Join(admin.ErrNotLoggedOn, err)
	}
	return err
}

// ---- gateway.Observer: changes to the live stream ----

func (v adminView) UsersChanged(userIDs ...string) {
	a := v.c.admin
	if a == nil {
		return
	}
	g := v.c.gateway
	now := time.Now()
	seen := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		if st, ok := g.AgentOf(id); ok {
			ag := adminAgent(st)
			a.Publish(admin.Event{Kind: admin.EventAgent, At: now, Agent: &ag})
		}
		for _, d := range g.DevicesOf(id) {
			dev := adminDevice(d)
			a.Publish(admin.Event{Kind: admin.EventDevice, At: now, Device: &dev})
		}
	}
}

// AgentActivity counts what an XSI event did to an agent in the last
// hour's history (the dashboard's charts).
func (v adminView) AgentActivity(act gateway.AgentActivity) {
	if a := v.c.admin; a != nil {
		a.History().Record(admin.Activity{Login: act.Login, StateChanged: act.StateChanged, Delay: act.Delay, HasDelay: act.HasDelay})
	}
}

func (v adminView) LinkChanged(bool) {
	a := v.c.admin
	if a == nil {
		return
	}
	now := time.Now()
	for _, l := range v.Links() {
		a.Publish(admin.Event{Kind: admin.EventLink, At: now, Link: &l})
	}
}

func (v adminView) PhoneChanged(dn string, _ bool) {
	a := v.c.admin
	if a == nil {
		return
	}
	for _, ph := range v.Phones() {
		if ph.DN == dn {
			a.Publish(admin.Event{Kind: admin.EventPhone, At: time.Now(), Phone: &ph})
		}
	}
}

// ready is /readyz: with ha.mode active-standby, "standby" (or "taking
// over", "deposed", "stopping") unless this instance serves; then every listener serving (a CSTA or SIP listener that
// stopped, or whose accepts have been failing, names itself and why), the
// XSI channel up on at least one XSP, and every xsi.scope subscribed (one
// that is forbidden, unknown or not yet active names itself and why). The
// listeners are bound before the admin server starts.
func (v adminView) ready() (bool, string) {
	if reason := v.c.notServing(); reason != "" {
		return false, reason // an instance of a pair that does not hold the lease
	}
	if err := v.c.front.Health(); err != nil {
		return false, err.Error()
	}
	if phones := v.c.phones.Load(); phones != nil {
		if err := phones.Health(); err != nil {
			return false, err.Error()
		}
	}
	for _, l := range v.c.events.LinkState() {
		if l.State == xsi.LinkUp {
			return xsi.ReadyScopes(v.c.events.Scopes())
		}
	}
	return false, "no XSI event channel is up"
}

// partCollectors are the collectors each part keeps beside it (its
// metrics.go), but phone sync's, which starts later (metrics).
func (v adminView) partCollectors() []prometheus.Collector {
	cs := slices.Concat(v.c.front.Collectors(), v.c.client.Collectors(), v.c.events.Collectors(),
		v.c.gateway.Collectors(), v.c.sequencer.Collectors())
	if v.c.store != nil {
		cs = append(cs, v.c.store.Collectors()...)
	}
	if v.c.ha != nil {
		cs = append(cs, v.c.ha.elector.Collectors()...)
	}
	return cs
}

// metrics is the connector's own Prometheus registry: the Go runtime and
// process, each part's own collectors (kept beside it, in its metrics.go),
// and gauges read from the running parts when scraped.
func (v adminView) metrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(v.partCollectors()...)
	// Phone sync starts after the admin server (its registry is built
	// here): its collectors are looked up at each scrape.
	reg.MustRegister(lateCollectors(func() []prometheus.Collector {
		if phones := v.c.phones.Load(); phones != nil {
			return phones.Collectors()
		}
		return nil
	}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "connector_log_lines_suppressed_total",
		Help: "Log lines dropped by the rate limit of lines a peer can trigger (one kind per source and per message)."},
		func() float64 { return v.c.logSuppressed() }))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("connector_cti_connections", "CTI connections (TCP, TLS and WebSocket).",
		func() float64 { return float64(v.c.front.Stats().Connections) })
	gauge("connector_cti_monitors", "CSTA monitors across all CTI connections.",
		func() float64 { return float64(v.c.front.Stats().Monitors) })
	gauge("connector_xsi_links_up", "XSPs whose event channel is up.", func() float64 {
		n := 0
		for _, l := range v.c.events.LinkState() {
			if l.State == xsi.LinkUp {
				n++
			}
		}
		return float64(n)
	})
	gauge("connector_sip_phones", "Phones with a subscription.", func() float64 { return float64(len(v.Phones())) })
	gauge("connector_sip_phones_out_of_service", "Subscribed phones that stopped answering.", func() float64 {
		n := 0
		for _, ph := range v.Phones() {
			if !ph.InService {
				n++
			}
		}
		return float64(n)
	})
	return reg
}

// lateCollectors collects what get returns at scrape time, for a part that
// starts after the registry is built. It describes nothing, which makes it
// an unchecked collector for the registry.
type lateCollectors func() []prometheus.Collector

func (lateCollectors) Describe(chan<- *prometheus.Desc) {}

func (l lateCollectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range l() {
		c.Collect(ch)
	}
}
