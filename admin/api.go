package admin

import (
	"context"
	"errors"
	"time"
)

// What the admin surface shows. These are plain views, already in domain
// terms: an adapter in cmd/connector builds them from the gateway, phonesync,
// csta and xsi, so admin never sees a wire format. JSON names are the REST
// and stream contract; a zero time is left out.

// Agent is an ACD agent as the gateway sees it.
type Agent struct {
	AgentID string    `json:"agentId"`
	UserID  string    `json:"userId"`           // the BroadWorks user
	State   string    `json:"state"`            // loggedOff | ready | notReady | workingAfterCall | unknown
	Reason  string    `json:"reason,omitempty"` // not-ready reason, as the reason-code table names it
	Desk    string    `json:"desk,omitempty"`   // device ID of the hot desk the agent sits at, "" when none
	Since   time.Time `json:"since,omitzero"`   // when State last changed
}

// Forward is one call-forwarding service of a device.
type Forward struct {
	Type      string `json:"type"` // always | busy | noAnswer | ...
	Active    bool   `json:"active"`
	Number    string `json:"number,omitempty"`
	RingCount int    `json:"ringCount,omitempty"`
}

// Device is a CSTA device (a BroadWorks user's line), possibly a hot desk.
type Device struct {
	DeviceID     string    `json:"deviceId"`
	UserID       string    `json:"userId"`
	HotDesk      bool      `json:"hotDesk"` // a hoteling host a guest may log in at
	DoNotDisturb bool      `json:"doNotDisturb"`
	Forwarding   []Forward `json:"forwarding"`
	GuestAgentID string    `json:"guestAgentId,omitempty"` // the agent associated with this desk, "" when free
	GuestSince   time.Time `json:"guestSince,omitzero"`
}

// Phone is a SIP phone subscribed to the connector.
type Phone struct {
	DN        string    `json:"dn"` // the phone's directory number; equals the DeviceID of its desk
	Address   string    `json:"address"`
	Port      int       `json:"port"`
	Transport string    `json:"transport"`
	Expires   time.Time `json:"expires,omitzero"`  // when its subscriptions run out
	LastSeen  time.Time `json:"lastSeen,omitzero"` // last message from it
	InService bool      `json:"inService"`         // alive by the liveness check
	Events    []string  `json:"events"`            // subscribed event packages
}

// Session is a CTI application session.
type Session struct {
	ID        string    `json:"id"`
	Remote    string    `json:"remote"`
	User      string    `json:"user,omitempty"`
	Transport string    `json:"transport"` // tcp | tls | websocket
	Since     time.Time `json:"since,omitzero"`
	Monitors  int       `json:"monitors"`
}

// Link is the XSI link to one XSP.
type Link struct {
	Server  string    `json:"server"`
	State   string    `json:"state"` // e.g. up | down | connecting
	Channel string    `json:"channel,omitempty"`
	Error   string    `json:"error,omitempty"` // last error, for the operator
	Since   time.Time `json:"since,omitzero"`
}

// Source is everything the admin API reads and the one action it takes. It is
// implemented over the gateway, phonesync, csta and xsi by the wiring in
// cmd/connector. Methods are called from request goroutines concurrently and
// must return copies the caller may keep. Order of the slices does not
// matter; the API sorts them.
type Source interface {
	Agents() []Agent
	Devices() []Device
	Phones() []Phone
	Sessions() []Session
	Links() []Link
	// ForceLogout logs agentID out through the same gateway path a CTI
	// logout takes (a supervisor action). It returns ErrUnknownAgent or
	// ErrNotLoggedOn (wrapped or not); any other error is reported to the
	// caller as a failure of BroadWorks (502) with its message, so it must
	// carry no secret.
	ForceLogout(ctx context.Context, agentID string) error
}

// Association is one hoteling association from the journal: an agent (the
// hoteling guest) at a desk (the hoteling host), as the journal API shows it.
type Association struct {
	ID          string    `json:"id,omitempty"`
	AgentID     string    `json:"agentId"`
	AgentUserID string    `json:"agentUserId"`
	DeviceID    string    `json:"deviceId"` // the desk
	DeskUserID  string    `json:"deskUserId"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"`      // zero while open
	EndedBy     string    `json:"endedBy,omitempty"` // logout | forced | stale | associationLimit | ...
	Detail      string    `json:"detail,omitempty"`
}

// Journal answers questions about past hoteling associations; the wiring
// adapts package journal to it (copying its Association, and mapping an
// agent ID to the user ID journal keys agents by). ctx carries the request's
// deadline. Without a Journal, the journal routes answer 501.
type Journal interface {
	// AtDesk is the association at desk (a device ID) at time at; found is
	// false when the desk was free then.
	AtDesk(ctx context.Context, desk string, at time.Time) (association Association, found bool, err error)
	// AgentBetween is every association of agent overlapping [from, to],
	// oldest first.
	AgentBetween(ctx context.Context, agent string, from, to time.Time) ([]Association, error)
	// DeskBetween is every association at desk overlapping [from, to],
	// oldest first.
	DeskBetween(ctx context.Context, desk string, from, to time.Time) ([]Association, error)
}

// Event kinds used by the wiring; Kind is free text to admin, these are the
// ones the dashboard knows.
const (
	EventAgent  = "agent"  // Agent changed (state, reason, desk)
	EventDevice = "device" // Device changed (forwarding, DND, guest)
	EventPhone  = "phone"  // Phone registered, expired or changed liveness
	EventLink   = "link"   // Link changed state
)

// Event is one change pushed to the live stream by (*Server).Publish. It
// carries the whole new view of the thing that changed, so a client that
// sees an event twice ends in the same state.
type Event struct {
	Kind   string    `json:"kind"`
	At     time.Time `json:"at,omitzero"`
	Agent  *Agent    `json:"agent,omitempty"`
	Device *Device   `json:"device,omitempty"`
	Phone  *Phone    `json:"phone,omitempty"`
	Link   *Link     `json:"link,omitempty"`
}

// Errors a Source's ForceLogout returns, matched with errors.Is.
var (
	ErrUnknownAgent = errors.New("admin: unknown agent")       // no such agent in the directory → 404
	ErrNotLoggedOn  = errors.New("admin: agent not logged on") // nothing to log out → 409
)
