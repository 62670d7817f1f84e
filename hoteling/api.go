package hoteling

import (
	"context"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// User is what the gateway's state view knows of one BroadWorks user, built
// from XSI events (initial subscription events give the snapshot).
type User struct {
	ID              string
	Known           bool // a snapshot has been received for this user
	ACDState        xsi.ACDState
	UnavailableCode string
	CFA             xsi.Forwarding // Call Forwarding Always: Active, ForwardToPhoneNumber
	HostUserID      string         // as a hoteling guest: the host it is associated with
	GuestUserID     string         // as a hoteling host: the guest associated with it
	Since           time.Time      // when the current association began
}

// Actions is the part of the Xsi-Actions client the sequences use; *xsi.Client
// satisfies it.
type Actions interface {
	SetAgentState(ctx context.Context, userID string, state xsi.ACDState, unavailableCode string) error
	GetCallForwardingAlways(ctx context.Context, userID string) (xsi.Forwarding, error)
	SetCallForwardingAlways(ctx context.Context, userID string, f xsi.Forwarding) error
	AssociateGuest(ctx context.Context, guestUserID, hostUserID string) error
	EndGuestAssociation(ctx context.Context, guestUserID string) error
}

// View is the gateway's state view as the sequences need it.
// AssociationNoter is an optional part of a View: told just before the
// sequencer changes a guest's hoteling association itself, and for which
// run (op: "login", "logout", "reconcile"), so that the view can
// tell those changes from the ones BroadWorks makes on its own (an
// association limit, an operator on the portal).
type AssociationNoter interface {
	AssociationChanging(guest, op string)
}

type View interface {
	// User returns the current view of one user.
	User(id string) User
	// Await returns nil once cond holds for the user's view, checking now
	// and after every XSI event for that user, or ctx's error.
	Await(ctx context.Context, id string, cond func(User) bool) error
}
