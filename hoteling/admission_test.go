package hoteling

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/xsi"
)

// cappedBW is fakeBW behind an XSP's limits as xsi.Client has them: cap
// requests in flight, each holding its slot for hold before it is answered
// (then the fake applies it and its event follows after fakeBW's delay). A
// request waits for a slot as long as its context lets it, and is marked
// sent (xsi.MarkSent) once it has one, as the Client's transport does.
type cappedBW struct {
	*fakeBW
	slots   chan struct{}
	hold    time.Duration
	waiting atomic.Int32
	before  func(op string) // when set, called as a call starts
}

func newCappedBW(f *fakeBW, capacity int, hold time.Duration) *cappedBW {
	return &cappedBW{fakeBW: f, slots: make(chan struct{}, capacity), hold: hold}
}

func (c *cappedBW) Load() xsi.Load {
	return xsi.Load{InFlight: len(c.slots), Waiting: int(c.waiting.Load()), Cap: cap(c.slots)}
}

// call runs fn once a slot is held and hold has passed.
func (c *cappedBW) call(ctx context.Context, op string, fn func() error) error {
	if c.before != nil {
		c.before(op)
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.waiting.Add(1)
		select {
		case c.slots <- struct{}{}:
			c.waiting.Add(-1)
		case <-ctx.Done():
			c.waiting.Add(-1)
			return fmt.Errorf("%w: %w", xsi.ErrNotSent, ctx.Err())
		}
	}
	defer func() { <-c.slots }()
	xsi.MarkSent(ctx)
	select {
	case <-time.After(c.hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	return fn()
}

func (c *cappedBW) SetAgentState(ctx context.Context, user string, state xsi.ACDState, code string) error {
	return c.call(ctx, "SetAgentState", func() error { return c.fakeBW.SetAgentState(ctx, user, state, code) })
}

func (c *cappedBW) GetCallForwardingAlways(ctx context.Context, user string) (f xsi.Forwarding, err error) {
	err = c.call(ctx, "GetCallForwardingAlways", func() error { f, err = c.fakeBW.GetCallForwardingAlways(ctx, user); return err })
	return f, err
}

func (c *cappedBW) SetCallForwardingAlways(ctx context.Context, user string, f xsi.Forwarding) error {
	return c.call(ctx, "SetCallForwardingAlways", func() error { return c.fakeBW.SetCallForwardingAlways(ctx, user, f) })
}

func (c *cappedBW) AssociateGuest(ctx context.Context, guest, host string) error {
	return c.call(ctx, "AssociateGuest", func() error { return c.fakeBW.AssociateGuest(ctx, guest, host) })
}

func (c *cappedBW) EndGuestAssociation(ctx context.Context, guest string) error {
	return c.call(ctx, "EndGuestAssociation", func() error { return c.fakeBW.EndGuestAssociation(ctx, guest) })
}

// desks is n agents g0… signed out and n hot desks d0… (agents themselves,
// signed in: a login signs each out, four steps in all), each with its CFA off.
func desks(n int) []User {
	var us []User
	for i := range n {
		us = append(us, User{ID: fmt.Sprint("g", i), ACDState: xsi.ACDSignOut},
			User{ID: fmt.Sprint("d", i), ACDState: xsi.ACDAvailable, CFA: off("+1555999")})
	}
	return us
}

// storm logs in agents g1…g(n-1) at desks d1… at once, each with a caller's
// deadline of within, after a warm-up login of g0 alone (it measures the
// latency the admission estimates from). It returns each login's error
// and how long it took.
func storm(t *testing.T, s *Sequencer, n int, within time.Duration) ([]error, []time.Duration) {
	t.Helper()
	if err := loginErr(s, t.Context(), "g0", "d0", "n0"); err != nil {
		t.Fatalf("warm-up login: %v", err)
	}
	errs := make([]error, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), within)
			defer cancel()
			start := time.Now()
			errs[i] = loginErr(s, ctx, fmt.Sprint("g", i), fmt.Sprint("d", i), fmt.Sprint("n", i))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	return errs[1:], took[1:]
}

// sumOf adds the samples whose name{labels} starts with prefix.
func sumOf(samples map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range samples {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// TestAdmissionStormBeyondCapacity: 40 logins at once against 2 XSI slots
// each held 100 ms, every caller giving 3 s. The XSI serves 20 steps a
// second; 40 logins of 4 steps need 8 s. Admitted ones all end logged in;
// the rest are refused at once (no time passes in the bubble) with
// ErrOverloaded, having sent nothing and left their agent and desk as they
// were; no sequence is compensated. Without admission, the same storm
// leaves sequences failing half way (the premise of the test).
func TestAdmissionStormBeyondCapacity(t *testing.T) {
	const n, capacity, hold, within = 40, 2, 100 * time.Millisecond, 3 * time.Second
	for _, admission := range []bool{true, false} {
		t.Run(fmt.Sprint("admission=", admission), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeBW(desks(n), 50*time.Millisecond)
				c := newCappedBW(f, capacity, hold)
				s := New(Config{StepTimeout: time.Second, DisableAdmission: !admission, XSILoad: c.Load}, c, f, testLogger())
				before := f.snapshot()
				errs, took := storm(t, s, n, within)
				after := f.snapshot()
				var ok, overloaded, failed int
				for i, err := range errs {
					g, d := fmt.Sprint("g", i+1), fmt.Sprint("d", i+1)
					switch {
					case err == nil:
						ok++
						loggedOnAt(t, after, g, d, fmt.Sprint("n", i+1))
					case admission && errors.Is(err, ErrOverloaded):
						overloaded++
						var se *StepError
						if !errors.As(err, &se) || se.Step != "admission" {
							t.Errorf("%s: %v, want refused at admission", g, err)
						}
						if took[i] != 0 {
							t.Errorf("%s: refused after %v, want at once", g, took[i])
						}
						if after[g] != before[g] || after[d] != before[d] {
							t.Errorf("%s refused but changed: %+v %+v, was %+v %+v", g, after[g], after[d], before[g], before[d])
						}
					default:
						failed++
						if admission {
							t.Errorf("%s: %v, want success or ErrOverloaded", g, err)
						}
						if errors.Is(err, ErrOverloaded) { // a step without a slot in time
							overloaded++
						}
					}
				}
				got := promtest.Scrape(t, s.Collectors()...)
				undone := sumOf(got, "connector_hotdesk_compensations_total{")
				refused := sumOf(got, "connector_hotdesk_admission_refused_total{")
				t.Logf("ok %d, overloaded %d, failed %d, compensated %v, admission refusals %v", ok, overloaded, failed, undone, refused)
				if admission {
					if ok == 0 || overloaded == 0 || undone != 0 || refused != float64(overloaded) {
						t.Errorf("want some admitted, some refused, none compensated (refusals counted %v)", refused)
					}
				} else if failed == 0 || undone == 0 {
					t.Errorf("without admission: %d failed, %d compensated; want the storm to overrun capacity", failed, int(undone))
				}
			})
		})
	}
}

// TestAdmissionUnderCapacity: the same storm with room for it (40 slots,
// a caller's 10 s) is admitted whole.
func TestAdmissionUnderCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		f := newFakeBW(desks(n), 50*time.Millisecond)
		c := newCappedBW(f, n, 100*time.Millisecond)
		s := New(Config{StepTimeout: time.Second, XSILoad: c.Load}, c, f, testLogger())
		errs, _ := storm(t, s, n, 10*time.Second)
		after := f.snapshot()
		for i, err := range errs {
			if err != nil {
				t.Errorf("g%d: %v", i+1, err)
				continue
			}
			loggedOnAt(t, after, fmt.Sprint("g", i+1), fmt.Sprint("d", i+1), fmt.Sprint("n", i+1))
		}
		if r := sumOf(promtest.Scrape(t, s.Collectors()...), "connector_hotdesk_admission_refused_total{"); r != 0 {
			t.Errorf("%v refused", r)
		}
	})
}

// TestStepTimeoutCountsFromSend: one XSI slot held 600 ms per request, a
// 1 s step timeout, and two logins at once (admission off, to queue them):
// each of the second's steps waits up to 600 ms for the slot and then takes
// 650 ms to be confirmed, more than the step timeout from when it queued
// but within it from its send. Both logins succeed.
func TestStepTimeoutCountsFromSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBW(desks(2), 50*time.Millisecond)
		c := newCappedBW(f, 1, 600*time.Millisecond)
		s := New(Config{StepTimeout: time.Second, DisableAdmission: true, XSILoad: c.Load}, c, f, testLogger())
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { errs[i] = loginErr(s, t.Context(), fmt.Sprint("g", i), fmt.Sprint("d", i), fmt.Sprint("n", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("g%d: %v", i, err)
			}
		}
	})
}

// TestStepQueueBound: a step that finds no XSI slot within its bound (the
// step timeout) fails as overloaded without being sent; the sequence's
// earlier steps are undone, the unsent one is not, and the undo waits for
// the slot as long as it takes.
func TestStepQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBW(desks(1), 10*time.Millisecond)
		c := newCappedBW(f, 1, 10*time.Millisecond)
		s := New(Config{StepTimeout: time.Second, DisableAdmission: true, XSILoad: c.Load}, c, f, testLogger())
		before := f.snapshot()
		// When the desk's CFA is to be set (the second step), the only
		// slot is taken for 5 s by someone else.
		c.before = func(op string) {
			if op == "SetCallForwardingAlways" {
				c.slots <- struct{}{}
				time.AfterFunc(5*time.Second, func() { <-c.slots })
			}
		}
		start := time.Now()
		err := loginErr(s, t.Context(), "g0", "d0", "n0")
		var se *StepError
		if !errors.Is(err, ErrOverloaded) || !errors.Is(err, xsi.ErrNotSent) || !errors.As(err, &se) || se.Step != "host-cfa" || se.Undo != nil {
			t.Fatalf("err = %v, want the host-cfa step not sent (ErrOverloaded), its predecessor undone", err)
		}
		if got := f.actions(); len(got) != 2 || got[1] != "SetAgentState d0 Available " {
			t.Errorf("actions %q, want the sign-out and its undo only", got)
		}
		if after := f.snapshot(); after["d0"] != before["d0"] || after["g0"] != before["g0"] {
			t.Errorf("after: %+v, want %+v", after, before)
		}
		// The undo waited for the slot longer than a step's bound: a
		// compensation is never given up for want of a slot.
		if took := time.Since(start); took < 5*time.Second {
			t.Errorf("login ended after %v, before the slot was free: the undo did not wait for it", took)
		}
	})
}

// TestAdmissionDecision: the refusal reasons, from the estimates as they
// stand (step timeout 1 s, headroom 2).
func TestAdmissionDecision(t *testing.T) {
	tests := []struct {
		name            string
		running         int // other sequences admitted
		answer, confirm time.Duration
		load            xsi.Load
		deadline        time.Duration // the caller's; 0: none
		want            string        // refusal reason; "" admitted
	}{
		{name: "nothing measured", running: 100, load: xsi.Load{Cap: 1, InFlight: 1, Waiting: 50}},
		{name: "alone, however slow", confirm: 10 * time.Second, answer: 10 * time.Second, load: xsi.Load{Cap: 1, Waiting: 9}, deadline: time.Second},
		{name: "fast and room", running: 10, answer: 10 * time.Millisecond, confirm: 20 * time.Millisecond, load: xsi.Load{Cap: 32}, deadline: 10 * time.Second},
		{name: "confirmations too slow", running: 1, answer: 10 * time.Millisecond, confirm: 600 * time.Millisecond, load: xsi.Load{Cap: 32}, want: refusedLatency},
		// (10+1) × 100 ms / 2 slots = 550 ms busy, 450 ms wait: 900 ms ≤ 1 s
		{name: "queue within its bound", running: 10, answer: 100 * time.Millisecond, confirm: 100 * time.Millisecond, load: xsi.Load{Cap: 2}},
		// other requests in the client add to the queue: (10+1+4) × 100 ms / 2 − 100 ms = 650 ms
		{name: "others fill the queue", running: 10, answer: 100 * time.Millisecond, confirm: 100 * time.Millisecond, load: xsi.Load{Cap: 2, InFlight: 2, Waiting: 2}, want: refusedQueue},
		// 2 × 4 steps × 550 ms = 4.4 s > 4 s
		{name: "past the caller's deadline", running: 10, answer: 100 * time.Millisecond, confirm: 100 * time.Millisecond, load: xsi.Load{Cap: 2}, deadline: 4 * time.Second, want: refusedDeadline},
		{name: "within the caller's deadline", running: 10, answer: 100 * time.Millisecond, confirm: 100 * time.Millisecond, load: xsi.Load{Cap: 2}, deadline: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMetrics()
				a := newAdmission(Config{StepTimeout: time.Second}, m, testLogger())
				a.load = func() xsi.Load { return tt.load }
				a.running, a.answer, a.confirm = tt.running, tt.answer, tt.confirm
				ctx := t.Context()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				leave, err := a.enter(ctx, opLogin, stepsLoginHost)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if a.running != tt.running+1 {
						t.Errorf("running %d after enter, want %d", a.running, tt.running+1)
					}
					leave()
					leave() // once only
					if a.running != tt.running {
						t.Errorf("running %d after leave, want %d", a.running, tt.running)
					}
					return
				}
				if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "("+tt.want+":") {
					t.Fatalf("err = %v, want ErrOverloaded for %s", err, tt.want)
				}
				if a.running != tt.running {
					t.Errorf("a refused sequence counts as running")
				}
				got := promtest.Scrape(t, m.admitRefused)
				if n := got[`connector_hotdesk_admission_refused_total{op="login",reason="`+tt.want+`"}`]; n != 1 {
					t.Errorf("refusal counted %v times, want 1: %v", n, got)
				}
			})
		})
	}
}
