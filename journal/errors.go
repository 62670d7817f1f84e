package journal

import (
	"errors"
	"time"
)

// The kinds of failure callers must tell apart, one per line; match them with
// errors.Is (the returned errors add which agent, desk or association).
var (
	ErrInvalid           = errors.New("journal: invalid input")                                    // empty or oversized IDs, zero or out-of-range times, unknown EndReason, end before start
	ErrClosed            = errors.New("journal: closed")                                           // the Journal was closed
	ErrLocked            = errors.New("journal: file in use by another journal")                   // Open could not lock the file within Options.LockTimeout
	ErrNoOpenAssociation = errors.New("journal: no open association for agent")                    // End for an agent without an open association
	ErrAgentAssociated   = errors.New("journal: agent already has an open association")            // Begin for an agent whose previous association was not ended
	ErrDeskOccupied      = errors.New("journal: desk already has an open association")             // Begin at a desk whose previous association was not ended
	ErrOverlap           = errors.New("journal: start before the end of the previous association") // Begin starting before the agent's or desk's previous association ended
	ErrCorrupt           = errors.New("journal: corrupt record")                                   // an index points at a missing or undecodable record
)

var sentinels = []error{ErrInvalid, ErrClosed, ErrLocked, ErrNoOpenAssociation, ErrAgentAssociated, ErrDeskOccupied, ErrOverlap, ErrCorrupt}

// ValidateBegin, ValidateEnd and ValidateQuery check what Begin, End and the
// queries accept (ErrInvalid otherwise), for another implementation of the
// journal (store/postgres) to refuse exactly what this one refuses.
func ValidateBegin(a Association) error { return validateBegin(a) }

// ValidateEnd: see ValidateBegin.
func ValidateEnd(agentUserID string, at time.Time, by EndReason, detail string) error {
	return validateEnd(agentUserID, at, by, detail)
}

// ValidateQuery checks a query's key (named what: "device ID", "agent user
// ID") and its time: see ValidateBegin.
func ValidateQuery(what, key string, at time.Time) error { return validateQuery(what, key, at) }

// ValidTime checks a time the journal stores or compares (named name): not
// zero, within 1678..2262.
func ValidTime(name string, t time.Time) error { return validTime(name, t) }
