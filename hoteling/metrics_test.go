package hoteling

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/xsi"
)

// A login counts itself and each of its steps, with the time each step
// waited for its confirming event; a failed one counts its undo.
func TestSequencerMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := plain.start(t, Config{}, 200*time.Millisecond)
		if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
			t.Fatal(err)
		}
		got := promtest.Scrape(t, s.Collectors()...)
		promtest.WantSamples(t, got, map[string]float64{
			`connector_hotdesk_sequences_total{op="login",result="ok"}`:           1,
			`connector_hotdesk_sequences_total{op="logout",result="ok"}`:          0,
			`connector_hotdesk_steps_total{result="ok",step="host-cfa"}`:          1,
			`connector_hotdesk_steps_total{result="ok",step="associate"}`:         1,
			`connector_hotdesk_steps_total{result="ok",step="agent-unavailable"}`: 1,
			`connector_hotdesk_step_seconds_count{step="associate"}`:              1,
			// the event comes 200 ms (fake time) after the Action
			`connector_hotdesk_step_seconds_bucket{step="associate",le="0.1"}`:  0,
			`connector_hotdesk_step_seconds_bucket{step="associate",le="0.25"}`: 1,
			`connector_hotdesk_sequence_seconds_count{op="login"}`:              1,
			`connector_hotdesk_sequences_waiting`:                               0,
			`connector_hotdesk_sequences_running`:                               0,
		})

		// Logout: the second Action (restore-host-cfa) fails with a 400;
		// the sign-out before it is undone.
		f.mu.Lock()
		f.fault = &fault{call: f.calls + 1, mode: "error", err: &xsi.Error{Status: 400}}
		f.mu.Unlock()
		if _, err := s.Logout(t.Context(), "g1"); err == nil {
			t.Fatal("logout succeeded despite the fault")
		}
		got = promtest.Scrape(t, s.Collectors()...)
		promtest.WantSamples(t, got, map[string]float64{
			`connector_hotdesk_sequences_total{op="logout",result="refused"}`:         1,
			`connector_hotdesk_steps_total{result="refused",step="restore-host-cfa"}`: 1,
			`connector_hotdesk_steps_total{result="ok",step="undo-agent-sign-out"}`:   1,
			`connector_hotdesk_compensations_total{op="logout",result="ok"}`:          1,
		})
	})
}

// Sequences queued behind a running one show as waiting; a full queue
// counts busy.
func TestSequencerQueueMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{users: []User{
			{ID: "g1", ACDState: xsi.ACDSignOut}, {ID: "g2", ACDState: xsi.ACDSignOut}, {ID: "g3", ACDState: xsi.ACDSignOut},
			{ID: "desk1"},
		}}
		_, s := sc.start(t, Config{QueueLength: 1}, time.Second)
		var wg sync.WaitGroup
		wg.Go(func() { loginErr(s, t.Context(), "g1", "desk1", num1) })
		synctest.Wait()
		wg.Go(func() { loginErr(s, t.Context(), "g2", "desk1", num2) })
		synctest.Wait()
		if err := loginErr(s, t.Context(), "g3", "desk1", "+15550003"); !errors.Is(err, ErrBusy) {
			t.Fatalf("third login: %v, want ErrBusy", err)
		}
		promtest.WantSamples(t, promtest.Scrape(t, s.Collectors()...), map[string]float64{
			`connector_hotdesk_sequences_running`:                         1,
			`connector_hotdesk_sequences_waiting`:                         1,
			`connector_hotdesk_sequences_total{op="login",result="busy"}`: 1,
		})
		wg.Wait()
		promtest.WantSamples(t, promtest.Scrape(t, s.Collectors()...), map[string]float64{
			`connector_hotdesk_sequences_running`:                       0,
			`connector_hotdesk_sequences_waiting`:                       0,
			`connector_hotdesk_sequences_total{op="login",result="ok"}`: 2,
		})
	})
}

func TestResultOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&StepError{Kind: ErrBusy, Err: ErrBusy}, "busy"},
		{&StepError{Kind: ErrTimeout, Err: errors.New("x")}, "timeout"},
		{&StepError{Err: &xsi.Error{Status: 404}}, "unknown_user"},
		{&StepError{Err: &xsi.Error{Status: 409}}, "refused"},
		{&xsi.Error{Status: 503}, "link_down"},
		{&StepError{Err: errors.New("empty guest user ID")}, "failed"},
	} {
		if got := resultNames[resultOf(c.err)]; got != c.want {
			t.Errorf("resultOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
