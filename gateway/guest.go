package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// A desk's guest is known from the guest's side: its Hoteling Guest events
// or read name the desk (applyHoteling). BroadWorks has no Hoteling Host
// event package, and the desk's Hoteling Host read shows a guest by name,
// number and extension only, not by user ID. So a guest associated out of
// the connector's sight (before a start or a takeover, on the portal, a
// guest outside every xsi.scope) is named by nothing: it is looked up in
// the enterprise directory by its number, extension or name, each user
// found read, and the one whose read shows it at the desk is the guest. A
// request that names no agent on a hot desk whose guest the view does not
// know reads the desk first; a guest no one can name is refused, never
// served as the desk's own subscriber.

// errGuestUnknown: BroadWorks shows a guest at the desk and the directory
// did not say who. errDeskUnread: the desk's Hoteling Host read failed.
var (
	errGuestUnknown = errors.New("gateway: the desk's guest is not known")
	errDeskUnread   = errors.New("gateway: reading the desk's Hoteling Host failed")
)

// maxGuestCandidates bounds the users read for one desk's guest (an
// extension may be in several groups of the enterprise, a name anywhere).
const maxGuestCandidates = 4

// maxGuestSearches bounds the searches started by reads (findGuestLocked);
// a request on the desk searches itself whenever it finds no guest named.
const maxGuestSearches = 4

// findGuestLocked starts looking, in the background, for the guest desk
// u's Hoteling Host read h shows when no event or read has named one (the
// dashboard, the journal and the desk's phones learn who sits there), at
// most maxGuestSearches at once. Gateway.mu is held.
func (g *Gateway) findGuestLocked(u *userState, h xsi.HotelingHost) {
	if !h.HasGuest() || u.guestUserID != "" || g.closed || u.findingGuest {
		return
	}
	select {
	case g.guestSearches <- struct{}{}:
	default:
		return
	}
	u.findingGuest = true
	desk := u.id
	g.loads.Add(1)
	go func() {
		defer g.loads.Done()
		ctx, cancel := context.WithTimeout(g.loadCtx, 2*defaultLoadTimeout)
		guest, err := g.identifyGuest(ctx, desk)
		cancel()
		<-g.guestSearches
		g.mu.Lock()
		u.findingGuest = false
		g.mu.Unlock()
		switch {
		case err == nil && guest != "":
			g.log.Info("gateway: a desk's guest found in the directory", "host", desk, "guest", guest)
		case err != nil && !errors.Is(err, context.Canceled):
			g.log.Debug("gateway: a desk's guest not found", "host", desk, "err", err)
		}
	}()
}

// identifyGuest finds who sits at desk as a guest that no event or read
// has named: the desk is read again (the guest may have left: ""), the
// enterprise directory searched for the guest's number, then its
// extension, then its name, and each user found has its Hoteling Guest
// read (at most maxGuestCandidates) until one shows itself at desk. A
// guest the directory does not give is errGuestUnknown.
func (g *Gateway) identifyGuest(ctx context.Context, desk string) (string, error) {
	a := g.deps.Actions
	h, err := a.GetHotelingHost(ctx, desk)
	if notAssigned(err) {
		return "", nil // no Hoteling Host service: no guest
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", errDeskUnread, err)
	}
	if known := g.User(desk).GuestUserID; known != "" || !h.HasGuest() {
		return known, nil // named meanwhile, or gone
	}
	// By number, else extension, else name: BroadWorks may leave any of
	// them out, and only the read below decides.
	var searches []xsi.DirectoryQuery
	if h.GuestPhoneNumber != "" {
		searches = append(searches, xsi.DirectoryQuery{Number: h.GuestPhoneNumber})
	}
	if h.GuestExtension != "" {
		searches = append(searches, xsi.DirectoryQuery{Extension: h.GuestExtension})
	}
	if h.GuestFirstName != "" || h.GuestLastName != "" {
		searches = append(searches, xsi.DirectoryQuery{FirstName: h.GuestFirstName, LastName: h.GuestLastName})
	}
	tried := map[string]bool{}
	for _, q := range searches {
		found, err := a.SearchEnterpriseDirectory(ctx, desk, q)
		if err != nil {
			return "", err
		}
		for _, e := range found {
			if tried[e.UserID] || len(tried) == maxGuestCandidates {
				continue
			}
			tried[e.UserID] = true
			// BroadWorks, read, decides: the view of a user can lag its
			// events (a sequence of ours in flight, a channel lost).
			hg, err := a.GetHotelingGuest(ctx, e.UserID)
			if err != nil || !hg.Active || hg.HostUserID != desk {
				continue
			}
			_ = g.ensure(ctx, e.UserID) // into the view; its events name the desk from now on
			return e.UserID, nil
		}
	}
	return "", errGuestUnknown
}

// guestAt is the guest of desk for a request that names no agent: the one
// the view knows; else, on a hot desk, the one identifyGuest finds; "" when
// the desk has none, or could not be read (the view's answer). A guest BroadWorks shows and no one can name is
// invalidAgentIdentifier: the client must name the agent.
func (g *Gateway) guestAt(ctx context.Context, desk string) (string, error) {
	if guest := g.User(desk).GuestUserID; guest != "" || !g.hotDesk(desk, g.dir().hotDeskUsers[desk]) {
		return guest, nil
	}
	guest, err := g.identifyGuest(ctx, desk)
	switch {
	case errors.Is(err, errDeskUnread):
		// Nothing says a guest sits there: the view's answer stands (the
		// desk's own user), as it does for requests BroadWorks need not
		// be asked about; a request that writes goes to BroadWorks anyway.
		g.log.Debug("gateway: a desk without a known guest could not be read; taken as the view has it", "host", desk, "err", err)
		return "", nil
	case errors.Is(err, errGuestUnknown):
		return "", csta.ErrInvalidAgentIdentifier
	}
	return guest, g.cstaError(err, csta.ErrInvalidDeviceID)
}
