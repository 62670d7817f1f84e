package gateway

import (
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// userState is the view of one BroadWorks user, built from XSI events only.
// Each part has a seen flag (a value has been received at some time) and a
// fresh flag (received since the link last came up, so no change can have
// been missed). Guarded by Gateway.mu.
type userState struct {
	id    string
	known bool // any event received for this user

	agentSeen, agentFresh bool
	acdState              xsi.ACDState
	unavailableCode       string
	// An agent state the XSP accepted (200) from our request, standing in
	// the view given to hot-desk sequences until its event confirms it or
	// pendingUntil passes (read your own writes: see expectAgentState).
	pendingACD   xsi.ACDState
	pendingCode  string
	pendingUntil time.Time
	// heard: when an event about the user last came (the reconciler takes
	// no outside change while late events may still be coming in).
	heard time.Time

	// Call Forwarding Always, Busy and No Answer, indexed by fwdIndex.
	fwd [3]forwardingView

	dndSeen, dndFresh bool
	dnd               xsi.DoNotDisturb

	hotelSeen, hotelFresh bool
	hostUserID            string        // as a guest
	hostSince             time.Time     // when the guest association began
	hostLimit             time.Duration // the association limit in force, 0 none
	guestUserID           string        // as a host, from the guest's events
	guestSince            time.Time
	// findingGuest: as a host, a search runs for the guest its read
	// showed and no event or read has named (guest.go).
	findingGuest bool

	// What BroadWorks says the user is, the snapshot read in flight, when
	// a request or monitor last used the user (Config.IdleTTL), and how
	// many events of each facet came (a snapshot read meanwhile keeps
	// theirs: users.go).
	roles   userRoles
	loading *userLoad
	lastUse time.Time
	events  [facetCount]uint32
	// readAt: when the last snapshot read whose every value was taken
	// began (no event came meanwhile): the view is BroadWorks' as of then
	// or later (the reconciler's check before an adoption: readSince).
	readAt time.Time

	// Requests in flight for this user (until their answer is queued) and
	// the CSTA events held meanwhile, in order.
	inflight int
	outbox   []heldEvent
}

// heldEvent is a CSTA event waiting in a user's outbox, with its view
// version (Gateway.viewVersion).
type heldEvent struct {
	ev      csta.Event
	version uint64
}

func (u *userState) stale() {
	u.agentFresh, u.dndFresh, u.hotelFresh = false, false, false
	for i := range u.fwd {
		u.fwd[i].fresh = false
	}
}

// forwardingView is one forwarding service of a user as events told it.
type forwardingView struct {
	seen, fresh bool
	f           xsi.Forwarding
}

// fwdIndex is the slot of a CSTA forwarding type in userState.fwd; -1 for
// a type BroadWorks has no service for.
func fwdIndex(t csta.ForwardingType) int {
	switch t {
	case csta.ForwardImmediate:
		return 0
	case csta.ForwardBusy:
		return 1
	case csta.ForwardNoAns:
		return 2
	}
	return -1
}

func (u *userState) view() hoteling.User {
	since := u.hostSince
	if u.hostUserID == "" {
		since = u.guestSince
	}
	acd, code := u.acdState, u.unavailableCode
	if u.pendingACD != "" && time.Now().Before(u.pendingUntil) {
		switch {
		case u.pendingACD != xsi.ACDUnavailable:
			code = ""
		case u.pendingCode != "":
			code = u.pendingCode
		case acd != xsi.ACDUnavailable:
			code = "" // the XSP picks the default code; its event will say
		}
		acd = u.pendingACD
	}
	return hoteling.User{
		ID:              u.id,
		Known:           u.known,
		ACDState:        acd,
		UnavailableCode: code,
		CFA:             u.fwd[0].f,
		HostUserID:      u.hostUserID,
		GuestUserID:     u.guestUserID,
		Since:           since,
	}
}
