package gateway

import (
	"cmp"
	"strings"

	"github.com/broadworks-connector/connector/csta"
)

// Directory maps CSTA device and agent IDs to BroadWorks user IDs: explicit
// entries first, then "<id>@<domain>" for IDs without "@"; an ID with "@"
// is taken as a user ID. It is immutable: a reload builds a new one
// (Gateway.Reload).
type Directory struct {
	domain  string
	devices []DeviceEntry
	agents  []AgentEntry
	reasons []ReasonEntry

	// Indexes built once (every XSI event looks devices up: a linear scan
	// was a fifth of the connector's CPU in a 10,000-agent login storm).
	deviceByID    map[string]DeviceEntry // first entry of each device ID
	hotDeskUsers  map[string]bool        // users with a hot-desk entry
	devicesOfUser map[string][]string    // explicit device IDs, in config order
	agentByID     map[string]AgentEntry  // first entry of each agent ID
	agentOfUser   map[string]string      // first agent ID of each user
	numberOfUser  map[string]string      // the first agent entry's number of each user
}

// NewDirectory indexes the directory entries of cfg (Domain, Devices,
// Agents, ReasonCodes).
func NewDirectory(cfg Config) *Directory {
	d := &Directory{
		domain:        cfg.Domain,
		devices:       append([]DeviceEntry(nil), cfg.Devices...),
		agents:        append([]AgentEntry(nil), cfg.Agents...),
		reasons:       append([]ReasonEntry(nil), cfg.ReasonCodes...),
		deviceByID:    make(map[string]DeviceEntry, len(cfg.Devices)),
		hotDeskUsers:  make(map[string]bool),
		devicesOfUser: make(map[string][]string),
		agentByID:     make(map[string]AgentEntry, len(cfg.Agents)),
		agentOfUser:   make(map[string]string, len(cfg.Agents)),
		numberOfUser:  make(map[string]string, len(cfg.Agents)),
	}
	for _, e := range d.devices {
		if _, dup := d.deviceByID[e.DeviceID]; !dup {
			d.deviceByID[e.DeviceID] = e
		}
		if e.HotDesk {
			d.hotDeskUsers[e.UserID] = true
		}
		d.devicesOfUser[e.UserID] = append(d.devicesOfUser[e.UserID], e.DeviceID)
	}
	for _, e := range d.agents {
		if _, dup := d.agentByID[e.AgentID]; !dup {
			d.agentByID[e.AgentID] = e
		}
		if _, dup := d.agentOfUser[e.UserID]; !dup {
			d.agentOfUser[e.UserID] = e.AgentID
			d.numberOfUser[e.UserID] = cmp.Or(e.Number, e.AgentID)
		}
	}
	return d
}

func (d *Directory) byRule(id string) (string, bool) {
	id = strings.TrimSpace(id)
	switch {
	case id == "":
		return "", false
	case strings.Contains(id, "@"):
		return id, true
	case d.domain == "":
		return "", false
	}
	return id + "@" + d.domain, true
}

// Device resolves a CSTA device ID to its BroadWorks user ID and whether it
// is a hot-desk host device.
func (d *Directory) Device(id csta.DeviceID) (userID string, hotDesk bool, ok bool) {
	if e, ok := d.deviceByID[string(id)]; ok {
		return e.UserID, e.HotDesk, true
	}
	u, ok := d.byRule(string(id))
	if !ok {
		return "", false, false
	}
	// A device entry may be given by its user ID only (the HotDesk mark).
	return u, d.hotDeskUsers[u], true
}

// Agent resolves a CSTA agent ID to its BroadWorks user ID and the agent's
// own number (the entry's Number, else the agent ID).
func (d *Directory) Agent(agentID string) (userID, number string, ok bool) {
	if e, ok := d.agentByID[agentID]; ok {
		n := e.Number
		if n == "" {
			n = agentID
		}
		return e.UserID, n, true
	}
	u, ok := d.byRule(agentID)
	if !ok {
		return "", "", false
	}
	return u, agentID, true
}

// AgentID is the CSTA agent ID of a BroadWorks user: the first explicit
// entry, else the user part when the domain is ours, else the user ID.
func (d *Directory) AgentID(userID string) string {
	if id, ok := d.agentOfUser[userID]; ok {
		return id
	}
	return d.shortID(userID)
}

// NumberOf is the number a hot desk forwards to when userID logs on there
// as a guest: the first agent entry's Number, else its agent ID; for a user
// of the domain without an entry, the user part; else "" (unknown).
func (d *Directory) NumberOf(userID string) string {
	if n, ok := d.numberOfUser[userID]; ok {
		return n
	}
	if s := d.shortID(userID); s != userID {
		return s
	}
	return ""
}

// hasNumber: an explicit agent entry gives the user's number.
func (d *Directory) hasNumber(userID string) bool {
	_, ok := d.numberOfUser[userID]
	return ok
}

func (d *Directory) shortID(userID string) string {
	if d.domain != "" {
		if user, ok := strings.CutSuffix(userID, "@"+d.domain); ok && user != "" {
			return user
		}
	}
	return userID
}

// Devices are the configured CSTA device IDs of a user, plus the one the
// rule gives; events are published to each (publishing to an unmonitored
// device costs nothing).
func (d *Directory) Devices(userID string) []csta.DeviceID {
	var out []csta.DeviceID
	add := func(id string) {
		for _, x := range out {
			if string(x) == id {
				return
			}
		}
		out = append(out, csta.DeviceID(id))
	}
	for _, id := range d.devicesOfUser[userID] {
		add(id)
	}
	if s := d.shortID(userID); s != userID {
		if u, _, ok := d.Device(csta.DeviceID(s)); ok && u == userID {
			add(s)
		}
	}
	if u, _, ok := d.Device(csta.DeviceID(userID)); ok && u == userID {
		add(userID)
	}
	return out
}

// UnavailableCode maps a CSTA not-ready reason to a BroadWorks code: the
// table's entry, else the reason itself when it can be a code (1–10
// characters: the reason travels as BroadWorks' AgentNotReadyReasonValue),
// else def.
func (d *Directory) UnavailableCode(reason, def string) string {
	if reason == "" {
		return def
	}
	for _, e := range d.reasons {
		if e.Reason == reason {
			return e.Code
		}
	}
	if len([]rune(reason)) <= 10 {
		return reason
	}
	return def
}

// Reason maps a BroadWorks unavailable code back to the CSTA reason: the
// table's first entry with that code, else the code.
func (d *Directory) Reason(code string) string {
	for _, e := range d.reasons {
		if e.Code == code {
			return e.Reason
		}
	}
	return code
}
