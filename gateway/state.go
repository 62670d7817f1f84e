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

	cfaSeen, cfaFresh bool
	cfa               xsi.Forwarding

	dndSeen, dndFresh bool
	dnd               xsi.DoNotDisturb

	hotelSeen, hotelFresh bool
	hostUserID            string    // as a guest
	hostSince             time.Time // when the guest association began
	guestUserID           string    // as a host, from the guest's events
	guestSince            time.Time

	// Requests in flight for this user (until their answer has settled) and
	// the CSTA events held meanwhile, in order.
	inflight int
	outbox   []csta.Event
}

func (u *userState) stale() {
	u.agentFresh, u.cfaFresh, u.dndFresh, u.hotelFresh = false, false, false, false
}

func (u *userState) view() hoteling.User {
	since := u.hostSince
	if u.hostUserID == "" {
		since = u.guestSince
	}
	return hoteling.User{
		ID:              u.id,
		Known:           u.known,
		ACDState:        u.acdState,
		UnavailableCode: u.unavailableCode,
		CFA:             u.cfa,
		HostUserID:      u.hostUserID,
		GuestUserID:     u.guestUserID,
		Since:           since,
	}
}
