package gateway

import (
	"context"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// Config is the gateway's part of the connector configuration.
type Config struct {
	// Domain completes IDs without "@": "1001" → "1001@<Domain>".
	Domain string
	// Devices are explicit device entries; they override the Domain rule.
	Devices []DeviceEntry
	// Agents are explicit agent entries; they override the Domain rule.
	Agents []AgentEntry
	// ReasonCodes map a CSTA not-ready reason to a BroadWorks unavailable code.
	ReasonCodes []ReasonEntry
	// DefaultUnavailableCode is sent with Unavailable when the request has no
	// reason (or one the table does not know); empty sends none.
	DefaultUnavailableCode string
	// RequestTimeout bounds each Xsi-Actions call and hoteling sequence
	// started by a request, inside the request's own deadline; 0: none.
	RequestTimeout time.Duration
	// EventPackages are the Xsi-Events packages subscribed (xsi.event_packages);
	// empty means all of them. A change to a service whose package is not
	// subscribed is reported from the successful request instead.
	EventPackages []string
	// ConflictWindow: when the desktop (CSTA) and the phone (SIP) ask for
	// contradicting agent states within this window, Not Ready / Logout
	// wins over Ready / Login and the later, losing request is refused.
	// 0: off.
	ConflictWindow time.Duration
	// StaleLoginGrace: agents a CTI connection logged on and left logged on
	// when it went away are logged off this long after (unless logged on
	// again meanwhile); 0: off.
	StaleLoginGrace time.Duration
	// AgentPasswords are what a phone's hoteling login must prove
	// (x-broadworks-hoteling nonce challenge).
	AgentPasswords []AgentPassword
	// DoubtWindow: a request given up on (timeout, 5xx) may still be
	// applied by the XSP this long after; until then the reconciler takes
	// the change it asked for, seen over a later promise, for ours landing
	// late and undoes it (reconcile.go). 0: twice RequestTimeout. Not
	// reloaded.
	DoubtWindow time.Duration
	// RecoverMode is what start-up recovery promises a guest whose hot-desk
	// sequence a crash cut off: hoteling.RecoverUndo (default) or
	// RecoverComplete.
	RecoverMode string
	// LoadUsers makes BroadWorks the directory: a user is read from the
	// XSP on first reference (roles, number, snapshot; users.go) and a user
	// it does not know is refused. false: the directory entries and the
	// domain rule alone (the view is built from events only).
	LoadUsers bool
	// MaxUserLoads bounds the users read from the XSP at once; 0: 16.
	// Not reloaded.
	MaxUserLoads int
	// IdleTTL: a user nothing refers to is dropped from memory this long
	// after its last use; 0: never.
	IdleTTL time.Duration
}

// DeviceEntry maps a CSTA device ID to a BroadWorks user. HotDesk marks a
// hoteling host device: agents may log on there as guests.
type DeviceEntry struct {
	DeviceID string
	UserID   string
	HotDesk  bool
}

// AgentEntry maps a CSTA agent ID to a BroadWorks user. Number is the agent's
// own number, the forward-to of a hot-desk login; empty: the agent ID.
type AgentEntry struct {
	AgentID string
	UserID  string
	Number  string
}

// AgentPassword is an agent's password for phone (hoteling) logins.
type AgentPassword struct {
	AgentID  string
	Password string
}

// ReasonEntry maps a CSTA not-ready reason to a BroadWorks unavailable code.
type ReasonEntry struct {
	Reason string
	Code   string
}

// Actions is the part of the Xsi-Actions client the gateway uses;
// *xsi.Client satisfies it.
type Actions interface {
	GetCallCenter(ctx context.Context, userID string) (xsi.CallCenter, error)
	SetAgentState(ctx context.Context, userID string, state xsi.ACDState, unavailableCode string) error
	GetCallForwardingAlways(ctx context.Context, userID string) (xsi.Forwarding, error)
	GetCallForwardingBusy(ctx context.Context, userID string) (xsi.Forwarding, error)
	GetCallForwardingNoAnswer(ctx context.Context, userID string) (xsi.Forwarding, error)
	SetCallForwardingAlways(ctx context.Context, userID string, f xsi.Forwarding) error
	SetCallForwardingBusy(ctx context.Context, userID string, f xsi.Forwarding) error
	SetCallForwardingNoAnswer(ctx context.Context, userID string, f xsi.Forwarding) error
	GetDoNotDisturb(ctx context.Context, userID string) (xsi.DoNotDisturb, error)
	SetDoNotDisturb(ctx context.Context, userID string, d xsi.DoNotDisturb) error
	GetHotelingGuest(ctx context.Context, userID string) (xsi.HotelingGuest, error)
	GetHotelingHost(ctx context.Context, userID string) (xsi.HotelingHost, error)
	GetProfile(ctx context.Context, userID string) (xsi.Profile, error)
	SearchEnterpriseDirectory(ctx context.Context, userID string, q xsi.DirectoryQuery) ([]xsi.DirectoryEntry, error)
}

// Hoteling runs the hot-desk sequences; *hoteling.Sequencer satisfies it.
type Hoteling interface {
	Login(ctx context.Context, guestID, hostID, forwardTo string) (hoteling.Want, error)
	Logout(ctx context.Context, guestID string) (hoteling.Want, error)
	// Satisfied: the view shows the promise; Settle brings BroadWorks to
	// it under the sequencer's locks (the reconciler's repairs).
	Satisfied(w hoteling.Want) bool
	Settle(ctx context.Context, w hoteling.Want, current func() bool) (acted bool, err error)
	// Busy: a sequence holds or waits for the user (as agent or desk).
	Busy(userID string) bool
	// RememberedDesks serves start-up recovery.
	RememberedDesks() []hoteling.Remembered
}

// PromiseStore keeps, across a crash, the promises the reconciler still
// has work on (owed, or with doubts): each is saved as it becomes one and
// deleted once kept. The connector's store (store.Intents) backs it.
type PromiseStore interface {
	SavePromise(userID string, value []byte) error
	DeletePromise(userID string) error
	LoadPromises() (map[string][]byte, error)
}

// Publisher fans events out to CSTA monitors and tells clients the system
// status; *csta.Server satisfies it.
type Publisher interface {
	Publish(ev csta.Event)
	SetSystemStatus(v csta.SystemStatusValue)
	// Monitored: a monitor watches the device (its user stays loaded).
	Monitored(dev csta.DeviceID) bool
}

// Scopes is the XSI event link's view of the scopes it subscribes to
// (xsi.scope): a loaded user no scope covers gets user-level
// subscriptions of its own while it is loaded.
type Scopes interface {
	// Covers: a scope subscription delivers the events of users of the
	// group (of the service provider / enterprise).
	Covers(groupID, serviceProviderID string) bool
	WatchUser(userID string) error
	UnwatchUser(userID string)
}

// Deps are the gateway's collaborators.
type Deps struct {
	Actions   Actions
	Scopes    Scopes   // may be nil: every user is taken as covered
	Hoteling  Hoteling // may be nil (see SetHoteling): hot-desk logon/logoff then answer serviceNotSupported
	Publisher Publisher
	Phones    Phones // may be nil (see SetPhones): no phone sync
	// Promises may be nil: a crash then loses the promises still to keep
	// (start-up recovery puts back only the desks the sequencer remembers).
	Promises PromiseStore
}

var (
	_ Actions   = (*xsi.Client)(nil)
	_ Publisher = (*csta.Server)(nil)
)
