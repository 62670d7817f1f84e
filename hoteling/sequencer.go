package hoteling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// Config tunes a Sequencer. Zero values get the defaults noted.
type Config struct {
	// StepTimeout bounds one step: the Actions call plus its confirming
	// event, counted from when the request is sent (its wait for an XSI
	// slot has a bound of its own, StepTimeout again). Default 5s.
	StepTimeout time.Duration
	// DisableAdmission lets every Login and Logout start, whatever the
	// XSI capacity (admission.go); by default one that cannot be
	// confirmed in time is refused with ErrOverloaded before its first
	// step.
	DisableAdmission bool
	// XSILoad is the Xsi-Actions client's load (xsi.Client.Load: in
	// flight, waiting, cap), what admission judges a new sequence by;
	// nil: only the measured step latency counts.
	XSILoad func() xsi.Load
	// QueueLength is how many sequences may wait per agent and per host
	// behind a running one; beyond that a request gets ErrBusy. Default 4;
	// negative means none may wait.
	QueueLength int
	// RefuseOccupiedHost makes Login at a host held by another guest fail
	// with ErrHostBusy. The default (false) takes the host over: the other
	// guest is logged out there first (issue 4: "sign out whoever was
	// there").
	RefuseOccupiedHost bool
	// SignInFirst sends Sign-In before Unavailable when the agent is signed
	// out. By default Unavailable is sent directly, which BroadWorks accepts
	// from any state (research/xsi.md §7) and which never exposes the agent
	// as Available in between (Sign-In lands in Available on the XSP).
	SignInFirst bool
	// NumberOf gives the number a guest's host forwards to (the directory's
	// forwardTo for Login). Optional; Logout uses it to leave alone a host
	// CFA that no longer points at the guest when nothing is remembered.
	NumberOf func(guestUserID string) string
	// Store keeps the remembered host forwarding across restarts. Optional
	// (memory only when nil); see FileStore.
	Store Store
}

// Recover modes: what the gateway's start-up recovery promises a guest
// whose hot-desk sequence a crash cut off (undo: back to logged out;
// complete: on to logged in).
const (
	RecoverUndo     = "undo"
	RecoverComplete = "complete"
)

// Remembered is what a host's CFA was before a guest arrived, kept from the
// moment Login changes it until Logout restores it.
type Remembered struct {
	HostUserID  string
	GuestUserID string
	ForwardTo   string         // what Login set the host's CFA to
	PreviousCFA xsi.Forwarding // what to restore
	// HostAgentState and HostUnavailableCode: the host subscriber's own
	// agent state (and code) when a login signed it out (step 1, peers.md
	// §1.1), kept only while that login runs: a crash or a failed
	// compensation between the host's sign-out and the login's end leaves
	// them for Settle to sign the host back in. A finished login clears
	// them (Logout does not sign the host back in, as documented).
	HostAgentState      xsi.ACDState `json:",omitempty"`
	HostUnavailableCode string       `json:",omitempty"`
}

// Store persists Remembered entries so that a restarted connector can still
// restore hosts' own forwarding.
type Store interface {
	Save(r Remembered) error
	Delete(hostUserID string) error
	Load() ([]Remembered, error)
}

// Sequencer runs hot-desk login and logout sequences, one at a time per
// agent and per host. It is safe for concurrent use.
type Sequencer struct {
	cfg    Config
	act    Actions
	view   View
	logger *slog.Logger
	// metrics are the sequencer's Prometheus collectors (metrics.go).
	metrics *metrics
	// adm admits Login and Logout against the XSI capacity (admission.go).
	adm *admission

	mu         sync.Mutex
	locks      map[string]*keyLock
	remembered map[string]Remembered // by host user ID
	desksOf    map[string][]string   // guest user ID → hosts whose remembered entry names it
	loaded     bool                  // Store loaded into remembered
}

// New builds a Sequencer; it starts no goroutine.
func New(cfg Config, act Actions, view View, logger *slog.Logger) *Sequencer {
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 5 * time.Second
	}
	switch {
	case cfg.QueueLength == 0:
		cfg.QueueLength = 4
	case cfg.QueueLength < 0:
		cfg.QueueLength = 0
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	return &Sequencer{cfg: cfg, act: act, view: view, logger: logger, metrics: m, adm: newAdmission(cfg, m, logger),
		locks: map[string]*keyLock{}, remembered: map[string]Remembered{}, desksOf: map[string][]string{}}
}

// Remembered returns the remembered previous CFA of hostUserID.
func (s *Sequencer) Remembered(hostUserID string) (Remembered, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked()
	r, ok := s.remembered[hostUserID]
	return r, ok
}

func (s *Sequencer) loadLocked() {
	if s.loaded || s.cfg.Store == nil {
		return
	}
	s.loaded = true
	rs, err := s.cfg.Store.Load()
	if err != nil {
		s.logger.Error("hoteling: loading remembered host forwarding", "err", err)
		return
	}
	for _, r := range rs {
		if _, ok := s.remembered[r.HostUserID]; !ok {
			s.setLocked(r)
		}
	}
}

// setLocked puts r in remembered and in the guest index (mu held).
func (s *Sequencer) setLocked(r Remembered) {
	s.dropLocked(r.HostUserID)
	s.remembered[r.HostUserID] = r
	s.desksOf[r.GuestUserID] = append(s.desksOf[r.GuestUserID], r.HostUserID)
}

// dropLocked takes host's entry out of remembered and the guest index (mu
// held); it reports whether there was one.
func (s *Sequencer) dropLocked(host string) bool {
	old, ok := s.remembered[host]
	if !ok {
		return false
	}
	delete(s.remembered, host)
	hosts := slices.DeleteFunc(s.desksOf[old.GuestUserID], func(h string) bool { return h == host })
	if len(hosts) == 0 {
		delete(s.desksOf, old.GuestUserID)
	} else {
		s.desksOf[old.GuestUserID] = hosts
	}
	return true
}

// rememberedOf is every remembered entry that names guest.
func (s *Sequencer) rememberedOf(guest string) []Remembered {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked()
	var out []Remembered
	for _, h := range s.desksOf[guest] {
		out = append(out, s.remembered[h])
	}
	return out
}

// RememberedDesks are the remembered entries, by desk (start-up recovery
// looks at their guests).
func (s *Sequencer) RememberedDesks() []Remembered {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked()
	out := slices.Collect(maps.Values(s.remembered))
	slices.SortFunc(out, func(a, b Remembered) int { return strings.Compare(a.HostUserID, b.HostUserID) })
	return out
}

// remember keeps r, in memory and in the store. A store that refuses it
// keeps what it had, and so does the memory: a login must not change the
// host before what it changes is durable (a crash would lose the host's
// own forwarding), so it fails on the error.
func (s *Sequencer) remember(r Remembered) error {
	s.mu.Lock()
	s.loadLocked()
	old, hadOld := s.remembered[r.HostUserID]
	s.setLocked(r)
	s.mu.Unlock()
	if s.cfg.Store == nil {
		return nil
	}
	err := s.cfg.Store.Save(r)
	if err != nil {
		s.logger.Error("hoteling: saving remembered host forwarding", "host", r.HostUserID, "err", err)
		s.mu.Lock()
		if cur, ok := s.remembered[r.HostUserID]; ok && cur == r {
			if hadOld {
				s.setLocked(old)
			} else {
				s.dropLocked(r.HostUserID)
			}
		}
		s.mu.Unlock()
	}
	return err
}

func (s *Sequencer) forget(hostUserID string) {
	s.mu.Lock()
	s.loadLocked()
	had := s.dropLocked(hostUserID)
	s.mu.Unlock()
	if had && s.cfg.Store != nil {
		if err := s.cfg.Store.Delete(hostUserID); err != nil {
			s.logger.Error("hoteling: deleting remembered host forwarding", "host", hostUserID, "err", err)
		}
	}
}

// setRemembered puts back an earlier entry (or its absence) after a
// compensated sequence.
func (s *Sequencer) setRemembered(host string, r Remembered, ok bool) {
	if ok {
		s.remember(r) // a failure is logged; the memory stays as the store has it
	} else {
		s.forget(host)
	}
}

// numberPunct strips the punctuation sameNumber ignores (built once: a
// Replacer is costly to build and safe for concurrent use).
var numberPunct = strings.NewReplacer("-", "", " ", "", ".", "", "(", "", ")", "")

func signedIn(u User) bool { return u.ACDState != "" && u.ACDState != xsi.ACDSignOut }

// sameNumber compares forwarding numbers as the XSP may spell them (a
// tel: URI in events, the dialable string in Actions; research/xsi.md §2.4).
func sameNumber(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(strings.TrimPrefix(s, "tel:"), "sip:")
		return numberPunct.Replace(s)
	}
	return norm(a) == norm(b)
}

func forwardsTo(f xsi.Forwarding, number string) bool {
	return f.Active && number != "" && sameNumber(f.ForwardToPhoneNumber, number)
}

// Login makes the agent guestID a hoteling guest at hostID: whoever was on
// the host is logged out there (or ErrHostBusy), the agent's association
// elsewhere ends, the host subscriber is signed out when it is a
// call-center agent signed in (step 1 of the documented login, peers.md
// §1.1), the host's CFA goes to forwardTo (its previous CFA is
// remembered), the association is made and the agent starts Unavailable.
// hostID empty or equal to guestID is a login at the agent's own device:
// any association ends, then (Sign-In and) Unavailable. Each step waits for
// its confirming event; a failure undoes the completed steps and returns a
// *StepError. A login returns what it left, for the caller to promise: at
// host, in the agent state the view shows once it is done — or, when the
// agent already sat at host signed in, with no agent state (ACD ""): the
// login sent none and the agent keeps whatever it was promised (the view may
// show a difference the caller's reconciler has yet to look at).
func (s *Sequencer) Login(ctx context.Context, guestID, hostID, forwardTo string) (_ Want, err error) {
	start := time.Now()
	defer func() { s.metrics.done(opLogin, start, err) }()
	if guestID == "" {
		return Want{}, &StepError{Op: "login", Step: "check", Err: errors.New("empty guest user ID"), Guest: guestID, Host: hostID}
	}
	own := hostID == "" || hostID == guestID
	if !own && forwardTo == "" {
		return Want{}, &StepError{Op: "login", Step: "check", Err: errors.New("empty forward-to number"), Guest: guestID, Host: hostID}
	}
	steps := stepsLoginHost
	if own {
		steps = stepsLoginOwn
	}
	// Admitted before its locks (a refused request waits for nothing),
	// and again once they are held (the wait may have eaten its time).
	leave, err := s.adm.enter(ctx, opLogin, steps)
	if err != nil {
		return Want{}, &StepError{Op: "login", Step: "admission", Kind: ErrOverloaded, Err: err, Guest: guestID, Host: hostID}
	}
	defer leave()
	release, err := s.lockFor(ctx, func() []string { return s.loginKeys(guestID, hostID, own) })
	if err != nil {
		return Want{}, &StepError{Op: "login", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: guestID, Host: hostID}
	}
	defer release()
	if err := s.adm.check(ctx, opLogin, steps); err != nil {
		return Want{}, &StepError{Op: "login", Step: "admission", Kind: ErrOverloaded, Err: err, Guest: guestID, Host: hostID}
	}
	// A login where the agent already sits signed in sends no agent state
	// (loginHost).
	g := s.view.User(guestID)
	seated := !own && g.HostUserID == hostID && signedIn(g)
	if own {
		err = s.loginOwn(ctx, guestID)
	} else {
		err = s.loginHost(ctx, guestID, hostID, forwardTo)
	}
	if err != nil {
		return Want{}, err
	}
	// What the login left, read under its locks (each step waited for its
	// event, so the view shows what BroadWorks has).
	w := Want{Guest: guestID}
	if !seated {
		g = s.view.User(guestID)
		w.ACD, w.Code = g.ACDState, g.UnavailableCode
	}
	if !own {
		w.Host, w.ForwardTo = hostID, forwardTo
	}
	return w, nil
}

// loginKeys are the locks a login of guest at host needs: the agent, the
// host (as a desk, and as an agent: its own agent state is signed out),
// the agent now on the host and the host the agent is now at.
func (s *Sequencer) loginKeys(guest, host string, own bool) []string {
	keys := []string{agentKey(guest)}
	if !own {
		keys = append(keys, hostKey(host), agentKey(host))
		if other := s.view.User(host).GuestUserID; other != "" {
			keys = append(keys, agentKey(other))
		}
	}
	if prev := s.view.User(guest).HostUserID; prev != "" {
		keys = append(keys, hostKey(prev))
	}
	return keys
}

func kindOrSelf(ctx context.Context, err error) error {
	if errors.Is(err, ErrBusy) {
		return ErrBusy
	}
	return kindOf(ctx, err)
}

func (s *Sequencer) loginOwn(ctx context.Context, guest string) error {
	g := s.view.User(guest)
	r := s.newRun(ctx, "login", guest, "")
	var restore func()
	if g.HostUserID != "" {
		restore = s.leaveHost(r, guest, g.HostUserID)
	}
	s.startUnavailable(r, g)
	if err := r.finish(); err != nil {
		if restore != nil {
			restore()
		}
		return err
	}
	if g.HostUserID != "" {
		s.forget(g.HostUserID)
	}
	return nil
}

func (s *Sequencer) loginHost(ctx context.Context, guest, host, forwardTo string) error {
	g, h := s.view.User(guest), s.view.User(host)
	// Already logged on, and the host subscriber not signed in since
	// (else the login runs again to sign it out: the other steps find
	// their result and send nothing).
	if g.HostUserID == host && signedIn(g) && forwardsTo(h.CFA, forwardTo) && !signedIn(h) {
		s.logger.Debug("hoteling: already logged on", "guest", guest, "host", host)
		return nil
	}
	r := s.newRun(ctx, "login", guest, host)
	var restores []func()
	undoMemory := func() {
		for i := len(restores) - 1; i >= 0; i-- {
			restores[i]()
		}
	}

	// (1) Another guest on the host: log it out there, or refuse.
	// (The host's own agent state is left to step 3.)
	if other := h.GuestUserID; other != "" && other != guest {
		if s.cfg.RefuseOccupiedHost {
			return &StepError{Op: "login", Step: "check-host", Kind: ErrHostBusy,
				Err: fmt.Errorf("%w: %s", ErrHostBusy, other), Guest: guest, Host: host}
		}
		s.logger.Info("hoteling: taking over host", "host", host, "from", other, "guest", guest)
		r.step(s.acdStep(other, "other-sign-out", xsi.ACDSignOut, ""))
		restores = append(restores, s.leaveHost(r, other, host))
	}
	// The agent at another desk moves: that association ends first.
	if prev := g.HostUserID; prev != "" && prev != host {
		s.logger.Info("hoteling: agent moves", "guest", guest, "from", prev, "to", host)
		restores = append(restores, s.leaveHost(r, guest, prev))
	}

	// The desk is now free of other guests; the login's own four steps
	// follow, in the documented order (peers.md §1.1): the host subscriber
	// signed out, CFA, association, Unavailable. The host's sign-out comes
	// after the takeover so that those four stay together, and a host
	// signed in while a guest sat at it is signed out all the same.
	//
	// (2) Remember the host's CFA (and its agent state, which the
	// sign-out changes) before either changes: a crash between the two
	// steps leaves what Settle needs to put the desk back.
	if r.ok() {
		old, hadOld := s.Remembered(host)
		prevCFA, err := s.hostCFA(ctx, host)
		switch {
		case err != nil:
			r.failNow("read-host-cfa", err)
		default:
			if hadOld && old.GuestUserID == guest && forwardsTo(prevCFA, forwardTo) {
				prevCFA = old.PreviousCFA // a repeated login: keep the original
			} else if forwardsTo(prevCFA, forwardTo) {
				s.logger.Warn("hoteling: host already forwards to the guest and nothing is remembered; will restore it as off",
					"host", host, "guest", guest)
				prevCFA = xsi.Forwarding{Active: false}
			}
			rem := Remembered{HostUserID: host, GuestUserID: guest, ForwardTo: forwardTo, PreviousCFA: prevCFA}
			hv := s.view.User(host)
			hostAgent := hv.ACDState != "" // "": no Call Center agent service, no agent state
			switch {
			case signedIn(hv):
				rem.HostAgentState, rem.HostUnavailableCode = hv.ACDState, hv.UnavailableCode
			case hadOld && old.HostAgentState != "":
				// An earlier login signed the host out and did not
				// finish: what the host is owed is still that.
				rem.HostAgentState, rem.HostUnavailableCode = old.HostAgentState, old.HostUnavailableCode
			}
			if err := s.remember(rem); err != nil {
				r.failNow("remember-host-cfa", err)
				break
			}
			restores = append(restores, func() { s.setRemembered(host, old, hadOld) })
			// (3) The host subscriber signed out, if it is an agent signed
			// in (nothing is sent when it is signed out already).
			if hostAgent {
				r.step(s.hostSignOutStep(host))
			}
			// (4) Host CFA to the guest.
			r.step(s.cfaStep(host, "host-cfa", xsi.Forwarding{Active: true, ForwardToPhoneNumber: forwardTo}))
		}
	}
	// (5) Association guest → host.
	r.step(s.assocStep(guest, "associate", host))
	// (6) Start Unavailable, unless already associated here and signed in.
	if g.HostUserID != host || !signedIn(g) {
		s.startUnavailable(r, g)
	}
	if err := r.finish(); err != nil {
		// Forgotten only when the host is surely as before: not when the
		// undo failed (it may still forward or be signed out), nor when a
		// step on the host given up on may still land after its undo (its
		// CFA to the guest, its sign-out): what the host had is needed to
		// put it back then (recovery, Settle).
		hostInDoubt := slices.ContainsFunc(r.err.Doubts, func(d Doubt) bool { return d.User == host })
		if r.err.Undo == nil && !hostInDoubt {
			undoMemory()
		}
		return err
	}
	if prev := g.HostUserID; prev != "" && prev != host {
		s.forget(prev)
	}
	// Done: the host stays signed out until someone signs it in (Logout
	// does not), so nothing is owed to it any more.
	if rem, ok := s.Remembered(host); ok && rem.HostAgentState != "" {
		rem.HostAgentState, rem.HostUnavailableCode = "", ""
		s.remember(rem) // a failure is logged: Settle may sign the host in again, as after a crash
	}
	return nil
}

// startUnavailable: (Sign-In and) Unavailable; never resets a code the
// agent already has while Unavailable.
func (s *Sequencer) startUnavailable(r *run, g User) {
	if s.cfg.SignInFirst && !signedIn(s.view.User(g.ID)) {
		r.step(s.acdStep(g.ID, "agent-sign-in", xsi.ACDSignIn, ""))
	}
	r.step(s.acdStep(g.ID, "agent-unavailable", xsi.ACDUnavailable, ""))
}

// leaveHost adds the steps that end guest's association with host and put
// the host's CFA back; it returns how to put the memory back if the
// sequence is compensated.
// StepEndAssociation is the name of the step that ends a guest's
// association (StepError.Step).
const StepEndAssociation = "end-association"

func (s *Sequencer) leaveHost(r *run, guest, host string) func() {
	old, hadOld := s.Remembered(host)
	if target, ok := s.restoreTarget(guest, host); ok {
		r.step(s.cfaStep(host, "restore-host-cfa", target))
	}
	r.step(s.assocStep(guest, StepEndAssociation, ""))
	return func() { s.setRemembered(host, old, hadOld) }
}

// restoreTarget is what host's CFA goes back to when guest leaves: the
// remembered one, else off — unless the host's CFA is known not to point at
// the guest (then it is left alone).
func (s *Sequencer) restoreTarget(guest, host string) (xsi.Forwarding, bool) {
	if r, ok := s.Remembered(host); ok {
		return r.PreviousCFA, true
	}
	cur := s.view.User(host).CFA
	if s.cfg.NumberOf != nil {
		if n := s.cfg.NumberOf(guest); n != "" && cur.Active && !forwardsTo(cur, n) {
			s.logger.Warn("hoteling: host CFA does not point at the leaving guest; left alone",
				"host", host, "guest", guest, "forwardTo", cur.ForwardToPhoneNumber)
			return xsi.Forwarding{}, false
		}
	}
	s.logger.Warn("hoteling: no remembered CFA for host; restoring it as off", "host", host, "guest", guest)
	return xsi.Forwarding{Active: false}, true
}

// hostCFA reads the host's CFA from the view, or from the XSP when the view
// has no snapshot of the host yet.
func (s *Sequencer) hostCFA(ctx context.Context, host string) (xsi.Forwarding, error) {
	if h := s.view.User(host); h.Known {
		return h.CFA, nil
	}
	cctx, _, cancel := xsi.WithSendTimeout(ctx, s.cfg.StepTimeout, s.cfg.StepTimeout)
	defer cancel()
	return s.act.GetCallForwardingAlways(cctx, host)
}

// Logout signs the agent out, puts its host's CFA back and ends the
// association; it returns what it left (signed out at no desk, the desk it
// left and that desk's own forwarding). It is idempotent: an agent signed
// out and not associated gets success with no XSI traffic.
func (s *Sequencer) Logout(ctx context.Context, guestID string) (_ Want, err error) {
	start := time.Now()
	defer func() { s.metrics.done(opLogout, start, err) }()
	if guestID == "" {
		return Want{}, &StepError{Op: "logout", Step: "check", Err: errors.New("empty guest user ID")}
	}
	leave, err := s.adm.enter(ctx, opLogout, stepsLogout)
	if err != nil {
		return Want{}, &StepError{Op: "logout", Step: "admission", Kind: ErrOverloaded, Err: err, Guest: guestID}
	}
	defer leave()
	release, err := s.lockFor(ctx, func() []string {
		keys := []string{agentKey(guestID)}
		if h := s.view.User(guestID).HostUserID; h != "" {
			keys = append(keys, hostKey(h))
		}
		return keys
	})
	if err != nil {
		return Want{}, &StepError{Op: "logout", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: guestID}
	}
	defer release()
	if err := s.adm.check(ctx, opLogout, stepsLogout); err != nil {
		return Want{}, &StepError{Op: "logout", Step: "admission", Kind: ErrOverloaded, Err: err, Guest: guestID}
	}
	return s.logout(ctx, guestID)
}

// logout runs under the locks of guest and its host.
func (s *Sequencer) logout(ctx context.Context, guest string) (Want, error) {
	g := s.view.User(guest)
	host := g.HostUserID
	left := Want{Guest: guest, ACD: xsi.ACDSignOut, LeftHost: host}
	if rem, ok := s.Remembered(host); ok && rem.GuestUserID == guest {
		left.ForwardTo, left.LeftCFA = rem.ForwardTo, rem.PreviousCFA
	}
	r := s.newRun(ctx, "logout", guest, host)
	r.step(s.acdStep(guest, "agent-sign-out", xsi.ACDSignOut, ""))
	var restore func()
	if host != "" {
		restore = s.leaveHost(r, guest, host)
	}
	if err := r.finish(); err != nil {
		if restore != nil {
			restore()
		}
		return Want{}, err
	}
	if host != "" {
		s.forget(host)
	}
	return left, nil
}
