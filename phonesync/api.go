package phonesync

import (
	"context"
	"errors"
	"time"
)

// The types below are what phonesync says to the gateway and what the gateway
// says back. Names keep their ECMA-323 spelling because that is what the
// as-feature-event bodies carry (../shared/research/sip.md §1.2); the gateway
// translates them to and from BroadWorks meaning, phonesync never does.

// ForwardingType is an ECMA-323 forwardingType.
type ForwardingType string

// The three forwarding types phones synchronise.
const (
	ForwardImmediate ForwardingType = "forwardImmediate" // BroadWorks CFA
	ForwardBusy      ForwardingType = "forwardBusy"      // BroadWorks CFB
	ForwardNoAns     ForwardingType = "forwardNoAns"     // BroadWorks CFNA
)

// Forwarding is one forwarding feature of a device.
type Forwarding struct {
	Type      ForwardingType
	Active    bool
	Number    string // forwardDN (SetForwarding) / forwardTo (ForwardingEvent)
	RingCount int    // forwardNoAns only; 0 = not given
}

// AgentStateName is an ECMA-323 agent state as phones use it: the
// requestedAgentState of SetAgentState and the event a NOTIFY carries.
type AgentStateName string

// Agent states (requestedAgentState values and the matching events).
const (
	AgentLoggedOn         AgentStateName = "loggedOn"         // AgentLoggedOnEvent
	AgentLoggedOff        AgentStateName = "loggedOff"        // AgentLoggedOffEvent
	AgentReady            AgentStateName = "ready"            // AgentReadyEvent
	AgentNotReady         AgentStateName = "notReady"         // AgentNotReadyEvent
	AgentWorkingAfterCall AgentStateName = "workingAfterCall" // AgentWorkingAfterCallEvent
)

// AgentState is the call-center agent state of the agent at a device.
type AgentState struct {
	AgentID string
	State   AgentStateName // loggedOff, ready, notReady or workingAfterCall
	Reason  string         // AgentNotReadyReasonValue, notReady only
}

// FeatureState is everything an initial (full) as-feature-event NOTIFY
// reports for one device.
type FeatureState struct {
	DoNotDisturb bool
	Forwarding   []Forwarding // always all three types, in the order above
	Agent        *AgentState  // nil when the device has no agent
	// Version is the gateway's view version these values were read at
	// (see Version); 0 = unversioned.
	Version Version
}

// Hoteling is the x-broadworks-hoteling view of a host device.
type Hoteling struct {
	GuestAddress string        // "" when no guest is associated
	Expires      time.Duration // association time left; 0 = not reported
	// Version is the view version Service.Hoteling read this at; in a
	// Change, Change.Version counts instead.
	Version Version
}

// Version orders what the gateway tells phonesync about a device: one
// counter for the gateway's whole view, raised by every change it applies.
// A Change carries the version that made it; FeatureState and Hoteling the
// version their values were read at, read together with them (every change
// with a version at or below it is in the values, none above it is). So
// a value with a lower version than one already sent on a subscription is
// older, and is not sent (dialog.go, shownLocked). 0 means unversioned:
// always sent, ordering nothing (a Service that does not version).
type Version uint64

// ChangeKind says which feature a Change carries.
type ChangeKind int

// What changed.
const (
	ChangeDoNotDisturb ChangeKind = iota + 1
	ChangeForwarding
	ChangeAgent
	ChangeHoteling
)

// Change is one feature of a device that changed, whoever changed it. The
// gateway hands every change to Server.Publish; subscribed phones of that
// device get a NOTIFY for just that feature (or, for ChangeHoteling, on their
// x-broadworks-hoteling subscriptions).
type Change struct {
	Kind         ChangeKind
	DoNotDisturb bool       // ChangeDoNotDisturb
	Forwarding   Forwarding // ChangeForwarding
	Agent        AgentState // ChangeAgent
	Hoteling     Hoteling   // ChangeHoteling
	// Version is the gateway's view version of this change (see Version).
	Version Version
}

// Origin says which interface asked for a change, for the gateway's
// desktop-versus-phone rules.
type Origin int

// Where a request came from.
const (
	OriginPhone    Origin = iota + 1 // a phone's re-SUBSCRIBE body
	OriginPresence                   // PBX presence (RFC 3856)
)

// Service is what phonesync needs from the gateway. dn is the phone's
// directory number: the user part of the SUBSCRIBE's From (or, for presence,
// of the presentity). Every method is called with a deadline. An error means
// the change was refused or failed; phonesync then NOTIFYs the unchanged state
// (the phone shows what the server says, sip.md §1.2).
type Service interface {
	// FeatureState is the device's current state for a full NOTIFY.
	// ErrUnknownDevice when dn is not in the directory.
	FeatureState(ctx context.Context, dn string) (FeatureState, error)
	SetDoNotDisturb(ctx context.Context, dn string, on bool, origin Origin) error
	SetForwarding(ctx context.Context, dn string, f Forwarding, origin Origin) error
	// SetAgentState with an empty agentID means the agent at the device.
	// ErrForbidden when the phone may not act on that agent (AuthorizeAgent).
	SetAgentState(ctx context.Context, dn, agentID string, state AgentStateName, reason string, origin Origin) error
	// AuthorizeAgent checks, changing nothing, that the phone at dn may ask
	// for state on agentID: only the agent signed in at it (the guest at its
	// hot desk, or its line's own agent), and logging on only its line's own
	// agent (others sign in through x-broadworks-hoteling with their
	// password). ErrForbidden when not: the SUBSCRIBE is answered 403 and
	// nothing changes. Other errors are left to SetAgentState.
	AuthorizeAgent(ctx context.Context, dn, agentID string, state AgentStateName) error
	// Hoteling reports the host device's guest association.
	Hoteling(ctx context.Context, hostDN string) (Hoteling, error)
	// SetHoteling logs guestAddress in at hostDN (the hoteling sequence);
	// "" logs the current guest out.
	SetHoteling(ctx context.Context, hostDN, guestAddress string, origin Origin) error
	// GuestPassword is the agent's password for the hoteling nonce challenge
	// (MD5(nonce:password), sip.md §1.4); ok false for an unknown guest.
	GuestPassword(guestAddress string) (password string, ok bool)
	// PhoneService reports a phone going silent (inService false) or coming
	// back, for OutOfServiceEvent / BackInServiceEvent on CSTA monitors.
	PhoneService(dn string, inService bool)
}

// Sentinel errors a Service may return.
var (
	ErrUnknownDevice = errors.New("phonesync: unknown device")
	ErrUnknownAgent  = errors.New("phonesync: unknown agent")
	// ErrForbidden: the phone may not act on what its request names (an
	// agent other than the one signed in at it). A SUBSCRIBE carrying such
	// a request is answered 403 Forbidden.
	ErrForbidden = errors.New("phonesync: forbidden")
)
