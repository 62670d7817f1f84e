package hoteling

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// fault makes the fake fail the call-th mutating Action (0-based).
type fault struct {
	call int
	mode string // "error": return err, nothing changes; "drop": change applied, no event; "contradict": another change and its event;
	// "late": return err, and apply the change (and its event) lateBy later, as an XSP does with a request it got but answered too late
	err    error
	lateBy time.Duration
}

// fakeBW is BroadWorks (truth, changed when the Action returns) plus the
// gateway's view of it (view), which learns each change by an "event" delay
// after the Action. It implements
// both Actions and View. Create it inside the synctest bubble.
type fakeBW struct {
	mu      sync.Mutex
	truth   map[string]User
	view    map[string]User
	changed chan struct{}
	delay   time.Duration
	fault   *fault
	calls   int
	fired   bool
	log     []string
}

func newFakeBW(users []User, delay time.Duration) *fakeBW {
	f := &fakeBW{truth: map[string]User{}, view: map[string]User{}, changed: make(chan struct{}), delay: delay}
	for _, u := range users {
		u.Known = true
		f.truth[u.ID] = u
		f.view[u.ID] = u
	}
	return f
}

func (f *fakeBW) snapshot() map[string]User {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.truth)
}

func (f *fakeBW) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// change records the call, applies the fault and schedules the change.
func (f *fakeBW) change(entry string, apply, contradict func(m map[string]User)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, entry)
	n := f.calls
	f.calls++
	drop := false
	event := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		apply(f.view)
		close(f.changed)
		f.changed = make(chan struct{})
	}
	if f.fault != nil && f.fault.call == n {
		f.fired = true
		switch f.fault.mode {
		case "error":
			return f.fault.err
		case "drop":
			drop = true
		case "contradict":
			apply = contradict
		case "late":
			time.AfterFunc(f.fault.lateBy, func() {
				f.mu.Lock()
				apply(f.truth)
				f.mu.Unlock()
				time.AfterFunc(f.delay, event)
			})
			return f.fault.err
		}
	}
	// The XSP has applied the change when it answers; the event follows.
	apply(f.truth)
	if drop {
		return nil
	}
	time.AfterFunc(f.delay, event)
	return nil
}

func set(m map[string]User, id string, fn func(*User)) {
	u, ok := m[id]
	if !ok {
		return // e.g. "desk-rogue", the host of a contradicting event
	}
	fn(&u)
	m[id] = u
}

func (f *fakeBW) SetAgentState(_ context.Context, user string, state xsi.ACDState, code string) error {
	to := func(st xsi.ACDState, code string) func(m map[string]User) {
		return func(m map[string]User) {
			set(m, user, func(u *User) {
				if st == xsi.ACDSignIn {
					st = u.ACDState
					if st == xsi.ACDSignOut || st == "" {
						st = xsi.ACDAvailable
					}
				}
				if st == xsi.ACDUnavailable && code == "" && u.ACDState == xsi.ACDUnavailable {
					code = u.UnavailableCode
				}
				if st != xsi.ACDUnavailable {
					code = ""
				}
				u.ACDState, u.UnavailableCode = st, code
			})
		}
	}
	// A contradiction is a change to a third state: neither the one asked
	// for nor the one the user is in (which would be no change at all).
	f.mu.Lock()
	cur := f.truth[user].ACDState
	f.mu.Unlock()
	var other xsi.ACDState
	for _, o := range []xsi.ACDState{xsi.ACDWrapUp, xsi.ACDAvailable, xsi.ACDUnavailable} {
		if o != state && o != cur {
			other = o
			break
		}
	}
	return f.change(fmt.Sprintf("SetAgentState %s %s %s", user, state, code), to(state, code), to(other, ""))
}

func (f *fakeBW) GetCallForwardingAlways(_ context.Context, user string) (xsi.Forwarding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "GetCFA "+user)
	return f.truth[user].CFA, nil
}

func (f *fakeBW) SetCallForwardingAlways(_ context.Context, user string, fw xsi.Forwarding) error {
	to := func(fw xsi.Forwarding) func(m map[string]User) {
		return func(m map[string]User) {
			set(m, user, func(u *User) {
				u.CFA.Active, u.CFA.RingSplash = fw.Active, fw.RingSplash
				if fw.ForwardToPhoneNumber != "" { // as the XSP: empty leaves the stored number
					u.CFA.ForwardToPhoneNumber = fw.ForwardToPhoneNumber
				}
			})
		}
	}
	return f.change(fmt.Sprintf("SetCFA %s %t %s", user, fw.Active, fw.ForwardToPhoneNumber),
		to(fw), to(xsi.Forwarding{Active: true, ForwardToPhoneNumber: "+19999999999"}))
}

func associate(guest, host string) func(m map[string]User) {
	return func(m map[string]User) {
		if old := m[guest].HostUserID; old != "" {
			set(m, old, func(u *User) { u.GuestUserID = "" })
		}
		m[guest] = func(u User) User { u.HostUserID = host; return u }(m[guest])
		if host != "" {
			set(m, host, func(u *User) { u.GuestUserID = guest })
		}
	}
}

func (f *fakeBW) AssociateGuest(_ context.Context, guest, host string) error {
	return f.change("Associate "+guest+" "+host, associate(guest, host), associate(guest, "desk-rogue"))
}

func (f *fakeBW) EndGuestAssociation(_ context.Context, guest string) error {
	return f.change("End "+guest, associate(guest, ""), associate(guest, "desk-rogue"))
}

func (f *fakeBW) User(id string) User {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.view[id]
	u.ID = id
	return u
}

func (f *fakeBW) Await(ctx context.Context, id string, cond func(User) bool) error {
	for {
		f.mu.Lock()
		u, ch := f.view[id], f.changed
		f.mu.Unlock()
		u.ID = id
		if cond(u) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loginErr is Login's error alone, for tests that look at what BroadWorks
// shows rather than at the promise the login leaves.
func loginErr(s *Sequencer, ctx context.Context, guest, host, forwardTo string) error {
	_, err := s.Login(ctx, guest, host, forwardTo)
	return err
}
