package hoteling

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// Admission (issue 16, "overload without half-done work"): a hot-desk login
// or logout starts only when the XSI capacity can confirm it in time. A
// sequence refused before its first step leaves nothing to undo and adds no
// load; one started beyond capacity times out half way and its compensation
// adds more.
//
// The model is deliberately small. Each running sequence has one request
// out at a time; a step takes, from its send, about A to be answered (the
// in-flight slot's hold time) and L to be confirmed by its event (both
// EWMAs of measured steps). With R sequences and O other requests sharing C
// slots, a step waits W = max(0, (R+1+O)·A/C − L) for a slot (throughput
// C/A against a demand of one request per W+L per sequence), so a sequence
// of S steps takes S·(W+L). It is refused when, with a factor of headroom
// for the tail over the mean:
//   - the confirmation itself would not fit the step timeout (L),
//   - the wait for a slot would not fit its bound (W, the step timeout too),
//   - the whole would not end before the caller's deadline (S·(W+L)).
// With no sequence running it is always admitted: that is how the estimate
// recovers after a spike (nothing else would measure), and one sequence at
// a time is never the overload.
//
// Compensations are never refused: admission is asked only when a Login or
// Logout starts.

const (
	admitHeadroom = 2   // tail over mean: a sequence is admitted when twice its estimate fits
	ewmaWeight    = 0.1 // of a new sample in the estimates: about the last ten steps
)

// Steps a sequence is estimated to take (its plan is known only once its
// locks are held): a login at a host signs the host out, forwards it,
// associates and sets Unavailable; one at the agent's own device ends any
// association and sets Unavailable; a logout signs out, restores the CFA
// and ends the association.
const (
	stepsLoginHost = 4
	stepsLoginOwn  = 2
	stepsLogout    = 3
)

// Reasons for a refusal, as labelled.
const (
	refusedLatency  = "latency"  // confirmations take longer than the step timeout allows
	refusedQueue    = "queue"    // the wait for an XSI slot would pass its bound
	refusedDeadline = "deadline" // the sequence would not end before the caller's deadline
)

// admission keeps the estimates and the count of admitted sequences.
type admission struct {
	load        func() xsi.Load // nil: the Actions do not report theirs (then only L and the deadline count)
	stepTimeout time.Duration
	refuse      bool // Config.DisableAdmission unset
	metrics     *metrics
	logger      *slog.Logger

	mu       sync.Mutex
	running  int           // sequences admitted, not ended
	inCall   int           // our steps inside their Actions call
	answer   time.Duration // EWMA send → Actions answer; 0 until measured
	confirm  time.Duration // EWMA send → confirming event; 0 until measured
	refusing bool          // the last decision was a refusal (logged on change only)
}

func newAdmission(cfg Config, m *metrics, logger *slog.Logger) *admission {
	return &admission{stepTimeout: cfg.StepTimeout, refuse: !cfg.DisableAdmission, metrics: m, logger: logger, load: cfg.XSILoad}
}

// estimate is the admission's view of one step, for a decision and its log.
type estimate struct {
	confirm, answer, wait time.Duration
	running, others, cap  int
}

func ewma(old, sample time.Duration) time.Duration {
	if old == 0 {
		return sample
	}
	return old + time.Duration(ewmaWeight*float64(sample-old))
}

// answered records a step's send → answer time.
func (a *admission) answered(d time.Duration) {
	a.mu.Lock()
	a.answer = ewma(a.answer, d)
	a.mu.Unlock()
}

// confirmed records a step's send → confirmation time (the step timeout
// when none came: at least that long).
func (a *admission) confirmed(d time.Duration) {
	a.mu.Lock()
	a.confirm = ewma(a.confirm, d)
	a.mu.Unlock()
}

// calling counts a step of ours entering (+1) or leaving (-1) its Actions
// call, so that the client's load can be told apart from ours.
func (a *admission) calling(n int) {
	a.mu.Lock()
	a.inCall += n
	a.mu.Unlock()
}

// estimates reads the latency estimates (for the gauges).
func (a *admission) estimates() (answer, confirm time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answer, a.confirm
}

// enter admits a sequence of steps steps (counted as running until leave)
// or refuses it with ErrOverloaded.
func (a *admission) enter(ctx context.Context, op, steps int) (leave func(), err error) {
	var l xsi.Load
	if a.load != nil {
		l = a.load() // outside a.mu: the client has its own locks
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.decideLocked(ctx, op, steps, l, false); err != nil {
		return nil, err
	}
	a.running++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.running--
			a.mu.Unlock()
		})
	}, nil
}

// check asks again for a sequence already entered, once its locks are
// held: the queue behind its agent or desk may have eaten its time.
func (a *admission) check(ctx context.Context, op, steps int) error {
	var l xsi.Load
	if a.load != nil {
		l = a.load()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.decideLocked(ctx, op, steps, l, true)
}

func (a *admission) decideLocked(ctx context.Context, op, steps int, l xsi.Load, entered bool) error {
	running := a.running // the other sequences of ours
	if entered {
		running--
	}
	e := estimate{confirm: a.confirm, answer: a.answer, running: running, cap: l.Cap,
		others: max(0, l.InFlight+l.Waiting-a.inCall)}
	if e.cap > 0 {
		busy := time.Duration(float64(running+1+e.others) * float64(e.answer) / float64(e.cap))
		e.wait = max(0, busy-e.confirm)
	}
	reason := ""
	switch {
	case running == 0:
		// Alone: admitted, and measured (see above).
	case admitHeadroom*e.confirm > a.stepTimeout:
		reason = refusedLatency
	case admitHeadroom*e.wait > a.stepTimeout:
		reason = refusedQueue
	default:
		if dl, ok := ctx.Deadline(); ok && admitHeadroom*time.Duration(steps)*(e.wait+e.confirm) > time.Until(dl) {
			reason = refusedDeadline
		}
	}
	if reason == "" || !a.refuse {
		if a.refusing {
			a.refusing = false
			a.logger.Info("hoteling: admitting hot-desk sequences again", "running", e.running,
				"wait", e.wait.Round(time.Millisecond), "confirm", e.confirm.Round(time.Millisecond))
		}
		return nil
	}
	a.metrics.refused(op, reason)
	err := fmt.Errorf("%w (%s: %d running, %d other XSI requests, %d slots; estimated per step: wait %v, confirmation %v)",
		ErrOverloaded, reason, e.running, e.others, e.cap, e.wait.Round(time.Millisecond), e.confirm.Round(time.Millisecond))
	if !a.refusing { // once per overload, not per refused request
		a.refusing = true
		a.logger.Warn("hoteling: refusing hot-desk sequences: XSI capacity exhausted", "err", err)
	}
	return err
}
