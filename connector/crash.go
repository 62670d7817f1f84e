package connector

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
)

// A simulated crash (WithCrashSimulation) for the fault campaign: a killed
// process sends nothing more and writes nothing more, from one instant on.
// In process, that instant is a gate that every Xsi-Actions request, every
// write to the store (remembered desk forwarding, journal records, SIP
// dialogs) passes; Crash closes the CSTA listener and its connections
// unanswered, then closes the gate (requests in flight are cancelled), and
// then tears the rest down.

// ErrCrashed is what the gated parts return once the connector crashed.
var ErrCrashed = errors.New("connector: crashed")

type crashGate struct {
	ctx     context.Context // ends at the crash
	kill    context.CancelFunc
	crashAt atomic.Pointer[crashPoint]
	// silence closes the CSTA front end (its connections unanswered): at
	// the crash, first, so that no answer of a request the crash makes
	// fail goes out (a dead process answers nothing).
	silence func()
}

// die is the crash's instant: the CTI connections drop, then no request
// leaves and nothing is written.
func (g *crashGate) die() {
	if g.silence != nil {
		g.silence()
	}
	g.kill()
}

// crashPoint is an Xsi-Actions request the connector dies just before.
type crashPoint struct{ step, userID string }

func newCrashGate() *crashGate {
	g := &crashGate{}
	g.ctx, g.kill = context.WithCancel(context.Background())
	return g
}

func (g *crashGate) dead() bool { return g.ctx.Err() != nil }

// pass lets one request through the gate: ctx is cancelled at the crash.
func (g *crashGate) pass(ctx context.Context, step, userID string) (context.Context, context.CancelFunc, error) {
	if p := g.crashAt.Load(); p != nil && p.step == step && p.userID == userID {
		g.die()
	}
	if g.dead() {
		return ctx, func() {}, ErrCrashed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(g.ctx, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// Crash stops the connector as a crash would: from this instant no
// Xsi-Actions request leaves it (those in flight are cancelled), the
// store (remembered forwarding, journal, SIP dialogs) is written no more, and CTI clients see
// their connections drop with requests unanswered; then everything is torn
// down (its XSI channels deleted, as the XSP would expire them). Sequences
// in progress fail and cannot compensate. It needs WithCrashSimulation.
func (c *Connector) Crash() error {
	if c.gate == nil {
		return errors.New("connector: Crash needs WithCrashSimulation")
	}
	if !c.started || c.stopped {
		return errNotStarted
	}
	c.gate.die()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return c.stop(ctx, true)
}

// CrashBefore makes the connector die (as Crash, which the caller still
// calls to take it down) just before it sends the Xsi-Actions request step
// ("SetAgentState", "SetCallForwardingAlways", "AssociateGuest",
// "EndGuestAssociation", …: the method name) about userID: a crash between
// two steps of a sequence with nothing in flight, so the half-done state it
// leaves is known. It needs WithCrashSimulation.
func (c *Connector) CrashBefore(step, userID string) error {
	if c.gate == nil {
		return errors.New("connector: CrashBefore needs WithCrashSimulation")
	}
	c.gate.crashAt.Store(&crashPoint{step: step, userID: userID})
	return nil
}

// gatedActions is the Xsi-Actions client behind the crash gate.
type gatedActions struct {
	*xsi.Client
	gate *crashGate
}

var (
	_ gateway.Actions  = (*gatedActions)(nil)
	_ hoteling.Actions = (*gatedActions)(nil)
)

func gated[T any](a *gatedActions, ctx context.Context, step, userID string, call func(context.Context) (T, error)) (T, error) {
	ctx, done, err := a.gate.pass(ctx, step, userID)
	defer done()
	if err != nil {
		var zero T
		return zero, err
	}
	return call(ctx)
}

// set is gated for a request that returns nothing but an error.
func (a *gatedActions) set(ctx context.Context, step, userID string, call func(context.Context) error) error {
	_, err := gated(a, ctx, step, userID, func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) })
	return err
}

func (a *gatedActions) GetCallCenter(ctx context.Context, u string) (xsi.CallCenter, error) {
	return gated(a, ctx, "GetCallCenter", u, func(ctx context.Context) (xsi.CallCenter, error) { return a.Client.GetCallCenter(ctx, u) })
}

func (a *gatedActions) SetAgentState(ctx context.Context, u string, s xsi.ACDState, code string) error {
	return a.set(ctx, "SetAgentState", u, func(ctx context.Context) error { return a.Client.SetAgentState(ctx, u, s, code) })
}

func (a *gatedActions) GetCallForwardingAlways(ctx context.Context, u string) (xsi.Forwarding, error) {
	return gated(a, ctx, "GetCallForwardingAlways", u, func(ctx context.Context) (xsi.Forwarding, error) {
		return a.Client.GetCallForwardingAlways(ctx, u)
	})
}

func (a *gatedActions) GetCallForwardingBusy(ctx context.Context, u string) (xsi.Forwarding, error) {
	return gated(a, ctx, "GetCallForwardingBusy", u, func(ctx context.Context) (xsi.Forwarding, error) {
		return a.Client.GetCallForwardingBusy(ctx, u)
	})
}

func (a *gatedActions) GetCallForwardingNoAnswer(ctx context.Context, u string) (xsi.Forwarding, error) {
	return gated(a, ctx, "GetCallForwardingNoAnswer", u, func(ctx context.Context) (xsi.Forwarding, error) {
		return a.Client.GetCallForwardingNoAnswer(ctx, u)
	})
}

func (a *gatedActions) SetCallForwardingAlways(ctx context.Context, u string, f xsi.Forwarding) error {
	return a.set(ctx, "SetCallForwardingAlways", u, func(ctx context.Context) error { return a.Client.SetCallForwardingAlways(ctx, u, f) })
}

func (a *gatedActions) SetCallForwardingBusy(ctx context.Context, u string, f xsi.Forwarding) error {
	return a.set(ctx, "SetCallForwardingBusy", u, func(ctx context.Context) error { return a.Client.SetCallForwardingBusy(ctx, u, f) })
}

func (a *gatedActions) SetCallForwardingNoAnswer(ctx context.Context, u string, f xsi.Forwarding) error {
	return a.set(ctx, "SetCallForwardingNoAnswer", u, func(ctx context.Context) error { return a.Client.SetCallForwardingNoAnswer(ctx, u, f) })
}

func (a *gatedActions) GetDoNotDisturb(ctx context.Context, u string) (xsi.DoNotDisturb, error) {
	return gated(a, ctx, "GetDoNotDisturb", u, func(ctx context.Context) (xsi.DoNotDisturb, error) { return a.Client.GetDoNotDisturb(ctx, u) })
}

func (a *gatedActions) SetDoNotDisturb(ctx context.Context, u string, d xsi.DoNotDisturb) error {
	return a.set(ctx, "SetDoNotDisturb", u, func(ctx context.Context) error { return a.Client.SetDoNotDisturb(ctx, u, d) })
}

func (a *gatedActions) GetHotelingGuest(ctx context.Context, u string) (xsi.HotelingGuest, error) {
	return gated(a, ctx, "GetHotelingGuest", u, func(ctx context.Context) (xsi.HotelingGuest, error) { return a.Client.GetHotelingGuest(ctx, u) })
}

func (a *gatedActions) GetHotelingHost(ctx context.Context, u string) (xsi.HotelingHost, error) {
	return gated(a, ctx, "GetHotelingHost", u, func(ctx context.Context) (xsi.HotelingHost, error) { return a.Client.GetHotelingHost(ctx, u) })
}

func (a *gatedActions) GetProfile(ctx context.Context, u string) (xsi.Profile, error) {
	return gated(a, ctx, "GetProfile", u, func(ctx context.Context) (xsi.Profile, error) { return a.Client.GetProfile(ctx, u) })
}

func (a *gatedActions) SearchEnterpriseDirectory(ctx context.Context, u string, q xsi.DirectoryQuery) ([]xsi.DirectoryEntry, error) {
	return gated(a, ctx, "SearchEnterpriseDirectory", u, func(ctx context.Context) ([]xsi.DirectoryEntry, error) {
		return a.Client.SearchEnterpriseDirectory(ctx, u, q)
	})
}

func (a *gatedActions) AssociateGuest(ctx context.Context, guest, host string) error {
	return a.set(ctx, "AssociateGuest", guest, func(ctx context.Context) error { return a.Client.AssociateGuest(ctx, guest, host) })
}

func (a *gatedActions) EndGuestAssociation(ctx context.Context, guest string) error {
	return a.set(ctx, "EndGuestAssociation", guest, func(ctx context.Context) error { return a.Client.EndGuestAssociation(ctx, guest) })
}

// gatedStore is the hot-desk store; after a crash it writes nothing more (a
// dead process does not run its compensation's bookkeeping).
type gatedStore struct {
	hoteling.Store
	gate *crashGate
}

func (s gatedStore) Save(r hoteling.Remembered) error {
	if s.gate.dead() {
		return ErrCrashed
	}
	return s.Store.Save(r)
}

func (s gatedStore) Delete(host string) error {
	if s.gate.dead() {
		return ErrCrashed
	}
	return s.Store.Delete(host)
}

// gatedJournal is the store's journal; after a crash it records nothing
// more, whoever writes (the gateway's associations, the start-up
// reconciliation closing stale ones). Reads pass: the admin API may still
// be asked while the crashed connector is torn down.
type gatedJournal struct {
	store.Journal
	gate *crashGate
}

func (j gatedJournal) Begin(ctx context.Context, a journal.Association) (journal.ID, error) {
	if j.gate.dead() {
		return 0, ErrCrashed
	}
	return j.Journal.Begin(ctx, a)
}

func (j gatedJournal) End(ctx context.Context, agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error) {
	if j.gate.dead() {
		return journal.Association{}, ErrCrashed
	}
	return j.Journal.End(ctx, agentUserID, at, by, detail)
}

// gatedDialogs is the store's SIP dialogs; after a crash phone sync's last
// snapshot (written as it closes) is not saved: a killed process saves
// nothing on its way down.
type gatedDialogs struct {
	phonesync.DialogStore
	gate *crashGate
}

func (d gatedDialogs) SaveDialogs(snapshot []byte) error {
	if d.gate.dead() {
		return ErrCrashed
	}
	return d.DialogStore.SaveDialogs(snapshot)
}

// gatedJournal and gatedDialogs are the store's parts behind the crash
// gate when there is one.
func (c *Connector) gatedJournal(j store.Journal) store.Journal {
	if c.gate == nil {
		return j
	}
	return gatedJournal{Journal: j, gate: c.gate}
}

func (c *Connector) gatedDialogs(d phonesync.DialogStore) phonesync.DialogStore {
	if c.gate == nil {
		return d
	}
	return gatedDialogs{DialogStore: d, gate: c.gate}
}

// promiseStore keeps the reconciler's promises in the store's intents
// bucket (facet "promise"); after a crash it writes nothing more.
type promiseStore struct {
	intents store.Intents
	gate    *crashGate // nil without WithCrashSimulation
}

// promiseFacet is the intents facet a promise is kept under.
const promiseFacet = "promise"

func (p promiseStore) SavePromise(user string, value []byte) error {
	if p.gate != nil && p.gate.dead() {
		return ErrCrashed
	}
	return p.intents.Put(user, promiseFacet, value)
}

func (p promiseStore) DeletePromise(user string) error {
	if p.gate != nil && p.gate.dead() {
		return ErrCrashed
	}
	return p.intents.Delete(user, promiseFacet)
}

func (p promiseStore) LoadPromises() (map[string][]byte, error) {
	all, err := p.intents.Load()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, in := range all {
		if in.Facet == promiseFacet {
			out[in.UserID] = in.Value
		}
	}
	return out, nil
}
