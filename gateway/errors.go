package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// CSTA errors csta does not define, one per line (ECMA-269 §9.2 values).
var (
	// ErrInvalidObjectState: the hot-desk host is held by another guest.
	ErrInvalidObjectState = &csta.Error{Class: csta.ErrStateIncompatibility, Value: "invalidObjectState"}
	// ErrStateGeneric: BroadWorks changed under the request (a hot-desk
	// step saw a contradicting event).
	ErrStateGeneric = &csta.Error{Class: csta.ErrStateIncompatibility, Value: "generic"}
)

// cstaError chooses the CSTA answer for an error from Actions or Hoteling.
// notFound is the answer for "no such user" (404 or unknown user).
func (g *Gateway) cstaError(err error, notFound *csta.Error) error {
	if err == nil {
		return nil
	}
	var ce *csta.Error
	if errors.As(err, &ce) {
		return ce
	}
	// hoteling errors (errors.Is sees through *hoteling.StepError) first:
	// their causes are xsi errors too.
	switch {
	case errors.Is(err, hoteling.ErrHostBusy):
		return ErrInvalidObjectState
	case errors.Is(err, hoteling.ErrContradicted):
		return ErrStateGeneric
	case errors.Is(err, hoteling.ErrUnknownUser), errors.Is(err, errUnknownUser):
		return notFound
	case errors.Is(err, hoteling.ErrLinkDown), errors.Is(err, xsi.ErrLinkDown):
		return csta.ErrResourceOutOfService
	case errors.Is(err, hoteling.ErrTimeout), errors.Is(err, hoteling.ErrBusy), errors.Is(err, hoteling.ErrOverloaded):
		// ErrOverloaded: refused before any step, nothing changed; the
		// client may try again (phones get the same, phones.go).
		return csta.ErrResourceBusy
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err // the front end answers resourceBusy
	case errors.Is(err, xsi.ErrNotFound):
		return notFound
	case errors.Is(err, xsi.ErrBadRequest):
		return csta.ErrInvalidParameterValue
	case errors.Is(err, xsi.ErrUnavailable), errors.Is(err, xsi.ErrTooManyRequests):
		return csta.ErrResourceBusy
	case errors.Is(err, xsi.ErrServerError):
		return csta.ErrResourceOutOfService
	}
	g.log.Warn("gateway: request failed", "err", err)
	return fmt.Errorf("gateway: %w", err) // answered operation/generic
}
