package hoteling

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/broadworks-connector/connector/xsi"
)

// The kinds of failure callers must tell apart, one per line; match them with
// errors.Is on what Login, Logout and Settle return (they see through
// *StepError).
var (
	ErrHostBusy     = errors.New("hoteling: host held by another guest")                   // another guest is on the host and Config.RefuseOccupiedHost is set
	ErrUnknownUser  = errors.New("hoteling: unknown user")                                 // the XSP answered 404 (xsi.ErrNotFound)
	ErrLinkDown     = errors.New("hoteling: XSP unreachable")                              // xsi.ErrLinkDown, any 5xx (503 overload included), connection errors
	ErrTimeout      = errors.New("hoteling: no confirming event")                          // the step's Action or its confirming event did not come within StepTimeout of its send
	ErrContradicted = errors.New("hoteling: contradicting event")                          // the view changed to something other than what the step asked for
	ErrBusy         = errors.New("hoteling: too many sequences queued for agent/host")     // the per-agent/per-host queue (Config.QueueLength) is full
	ErrOverloaded   = errors.New("hoteling: XSI capacity exhausted, sequence not started") // admission (admission.go) refused it before its first step; or a step found no XSI slot in time
)

// StepError is a failed Login, Logout or repair: the step that failed and its
// cause. Kind is one of the sentinels above (nil when none applies, e.g. a
// 400 from the XSP: errors.As the cause to *xsi.Error). By the time it is
// returned the completed steps have been undone in reverse; Undo is nil when
// that compensation fully succeeded, else what went wrong (BroadWorks is then
// neither fully logged in nor as before, and Settle is the way back).
type StepError struct {
	Op    string // "login", "logout", "reconcile"
	Step  string // e.g. "host-cfa", "associate", "agent-unavailable"
	Kind  error
	Err   error
	Undo  error
	Guest string
	Host  string
	// Doubts are the changes this sequence asked for and gave up on (a
	// timeout, a 5xx, a contradicting event) that the XSP may still apply
	// late (research/xsi.md): the failed step, and undos that failed the
	// same way. A caller keeping promises (the gateway's reconciler) takes
	// a later view showing one of them for its own late change.
	Doubts []Doubt
	// Sent: the sequence sent BroadWorks a change (a step or an undo,
	// answered or not) before it failed. Its undo restores each user as
	// the view showed it, which may lag BroadWorks: whatever differs from
	// what the caller promised before is the sequence's doing.
	Sent bool
}

// Doubt is one change a failed sequence may still see applied late.
type Doubt struct {
	User  string
	Step  string
	Shows func(User) bool // the view shows the change
}

func (e *StepError) Error() string {
	s := fmt.Sprintf("hoteling: %s guest %s host %s: step %s: %v", e.Op, e.Guest, e.Host, e.Step, e.Err)
	if e.Kind != nil && !errors.Is(e.Err, e.Kind) {
		s += " (" + e.Kind.Error() + ")"
	}
	if e.Undo != nil {
		s += "; compensation incomplete: " + e.Undo.Error()
	}
	return s
}

// Unwrap gives the cause, so errors.Is(err, xsi.ErrNotFound) works too.
func (e *StepError) Unwrap() error { return e.Err }

// Is matches the sentinel kind.
func (e *StepError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// kindOf maps a step's cause to a sentinel. parent is the caller's context:
// its own cancellation is not a timeout of ours.
func kindOf(parent context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrContradicted), errors.Is(err, ErrHostBusy), errors.Is(err, ErrBusy):
		return nil // already the kind; the caller sets it
	case errors.Is(err, ErrOverloaded):
		return ErrOverloaded
	case parent.Err() != nil:
		return nil
	case errors.Is(err, xsi.ErrNotSent):
		return ErrOverloaded // no XSI slot within the step's queue bound
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, xsi.ErrNotFound):
		return ErrUnknownUser
	case errors.Is(err, xsi.ErrLinkDown), errors.Is(err, xsi.ErrServerError):
		return ErrLinkDown
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ErrLinkDown
	}
	return nil
}

// refused reports whether the XSP definitely did not apply the request (a
// 4xx answer, or it was never sent), so that the failed step itself needs no undo.
func refused(err error) bool {
	if errors.Is(err, xsi.ErrNotSent) {
		return true // it never left: nothing to undo
	}
	var xe *xsi.Error
	return errors.As(err, &xe) && xe.Status >= 400 && xe.Status < 500
}
