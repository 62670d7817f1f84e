package xsi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Scope kinds: every user of a group, of an enterprise or of a service
// provider (research/xsi.md §3.2.2; "enterprise/…" and "serviceprovider/…"
// paths are interchangeable, §4.6.2.1).
const (
	KindUser            = "user"
	KindGroup           = "group"
	KindEnterprise      = "enterprise"
	KindServiceProvider = "serviceprovider"
)

// String is the target as the configuration spells it:
// "group:<groupId>@<enterpriseId>", "enterprise:<id>", "serviceprovider:<id>"
// or "user:<userId>".
func (t Target) String() string {
	if t.Kind == KindGroup {
		return t.Kind + ":" + t.ID + "@" + t.ParentID
	}
	return t.Kind + ":" + t.ID
}

// isScope reports whether t watches many users (group, enterprise or
// service provider) rather than one.
func (t Target) isScope() bool {
	return t.Kind == KindGroup || t.Kind == KindEnterprise || t.Kind == KindServiceProvider
}

// sameScope reports whether a and b are the same target on the XSP: an
// enterprise and a service provider of the same ID are.
func sameScope(a, b Target) bool {
	wide := func(k string) bool { return k == KindEnterprise || k == KindServiceProvider }
	if wide(a.Kind) && wide(b.Kind) {
		return a.ID == b.ID
	}
	return a == b
}

// ScopeResync is delivered on Events(), in order with the SubscriptionEvents,
// when events of a scope subscription (group, enterprise or service provider)
// may have been lost: sequence numbers missing on it for 2 s (they did not
// come on another channel of the set either; one marker for all of them,
// after the events that showed the gap), its re-creation after the XSP
// ended or forgot it (SubscriptionTerminatedEvent, a refresh answered
// 403/404), or the loss of an event channel (every scope). Unlike a user target, a scope
// subscription gets no initial events, neither when created nor when
// refreshed (research/xsi.md §0 item 8), so nothing the XSP sends repairs the
// view: the consumer must treat every user of Scope it knows as stale and
// read their state again through Xsi-Actions. Events delivered after the
// marker are newer than what was lost.
type ScopeResync struct {
	Scope  Target
	Reason string // "sequence gap", "resubscribed", "channel lost"
}

func (*ScopeResync) xsiEvent() {}

// ScopeState is the state of one scope's subscription(s).
type ScopeState string

// Scope states. Only ScopeActive is ready.
const (
	ScopePending   ScopeState = "pending"   // not yet subscribed (no answer yet, or resubscribing)
	ScopeActive    ScopeState = "active"    // every subscription of the scope is in place
	ScopeForbidden ScopeState = "forbidden" // the XSP answered 403: the credential cannot reach the scope
	ScopeNotFound  ScopeState = "not_found" // the XSP answered 404: no such group, enterprise or service provider
	ScopeFailing   ScopeState = "failing"   // another error; retried with backoff
)

// ScopeStates lists every ScopeState (metrics, tests).
var ScopeStates = []ScopeState{ScopePending, ScopeActive, ScopeForbidden, ScopeNotFound, ScopeFailing}

// ScopeMode is how a scope is subscribed.
type ScopeMode string

const (
	// ScopeList: one subscription with an eventPackageList (R23+).
	ScopeList ScopeMode = "list"
	// ScopePerPackage: one subscription per event package, after the XSP
	// answered 400 to the list (kept for the life of the process) or when
	// our per-package subscriptions were adopted at start.
	ScopePerPackage ScopeMode = "per_package"
)

// ScopeStatus is the state of one configured scope.
type ScopeStatus struct {
	Scope  Target
	State  ScopeState
	Reason string // the last error's reason, e.g. "not found (404): Group not found: ent1/grp9"; "" when active or not yet answered
	Mode   ScopeMode
	Since  time.Time // when State last changed
}

// ReadyScopes reports whether every scope is active; when not, why, naming the
// first scope that is not (e.g. "xsi scope group:grp9@ent1: not found
// (404)").
func ReadyScopes(scopes []ScopeStatus) (bool, string) {
	for _, s := range scopes {
		if s.State == ScopeActive {
			continue
		}
		what := s.Reason
		if what == "" {
			what = "not yet active"
		}
		return false, "xsi scope " + s.Scope.String() + ": " + what
	}
	return true, ""
}

// Scopes reports every configured scope, in Config.Scopes order.
func (e *Events) Scopes() []ScopeStatus {
	s := e.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScopeStatus, len(s.scopes))
	for i, sc := range s.scopes {
		out[i] = sc.status()
	}
	return out
}

// Covers reports whether a configured scope delivers the events of the
// users of group groupID in service provider (enterprise) serviceProviderID,
// as a user's profile names them: a group scope of that group, or an
// enterprise / service provider scope of that ID. It goes by the
// configuration, not by the scope's state: a scope that is failing for now
// will deliver, and one the credential cannot reach (403) would not let a
// user subscription of its users through either. A user no scope covers
// needs WatchUser.
func (e *Events) Covers(groupID, serviceProviderID string) bool {
	for _, t := range e.cfg.Scopes {
		switch t.Kind {
		case KindGroup:
			if groupID != "" && t.ID == groupID && t.ParentID == serviceProviderID {
				return true
			}
		case KindEnterprise, KindServiceProvider:
			if serviceProviderID != "" && t.ID == serviceProviderID {
				return true
			}
		}
	}
	return false
}

// ErrTooManyWatched is WatchUser's answer past Config.MaxWatchedUsers.
var ErrTooManyWatched = errors.New("xsi: too many watched users")

// DefaultMaxWatchedUsers bounds WatchUser when Config.MaxWatchedUsers is 0.
const DefaultMaxWatchedUsers = 10000

// maxUserIDLen bounds a watched user ID (BroadWorks user IDs are far
// shorter; this only keeps a bad caller from filling memory and logs).
const maxUserIDLen = 256

// WatchUser subscribes a user outside every scope: one user-target
// subscription per Config.EventPackages (as for Config.Targets: each
// package's initial event arrives on its own, and a package the user lacks,
// e.g. Call Center Agent, fails alone instead of failing a list). It
// returns at once (the subscription loop does the requests), is idempotent,
// and does nothing for a user of Config.Targets. Past MaxWatchedUsers
// watched users it returns an error matching ErrTooManyWatched.
func (e *Events) WatchUser(userID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if len(e.cfg.EventPackages) == 0 {
		return errors.New("xsi: watch user: no event packages configured")
	}
	return e.subs.watch(userID)
}

// UnwatchUser ends what WatchUser started: the user's subscriptions are
// deleted at the XSP (in the background). It is idempotent and does nothing
// for a user that is not watched (or is one of Config.Targets).
func (e *Events) UnwatchUser(userID string) {
	e.subs.unwatch(userID)
}

// WatchedUsers is how many users WatchUser watches now.
func (e *Events) WatchedUsers() int {
	s := e.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watched)
}

func checkUserID(id string) error {
	if id == "" || len(id) > maxUserIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("xsi: watch user: user ID must be 1 to %d bytes of UTF-8", maxUserIDLen)
	}
	if strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) >= 0 {
		return errors.New("xsi: watch user: user ID must not contain spaces, control characters or '/'")
	}
	return nil
}

// scopeReason classifies a failed scope subscription request.
func scopeReason(err error) (ScopeState, string) {
	var xe *Error
	if errors.As(err, &xe) {
		state := ScopeFailing
		switch xe.Status {
		case http.StatusForbidden:
			state = ScopeForbidden
		case http.StatusNotFound:
			state = ScopeNotFound
		}
		text := fmt.Sprintf("%s (%d)", strings.ToLower(http.StatusText(xe.Status)), xe.Status)
		if xe.SummaryEnglish != "" {
			text += ": " + clip(xe.SummaryEnglish, 200)
		}
		return state, text
	}
	return ScopeFailing, clip(err.Error(), 300)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
