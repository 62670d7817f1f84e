package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/xsi"
)

// gatedJournal holds every Begin until gate is closed and fails every End.
type gatedJournal struct{ gate chan struct{} }

func (j gatedJournal) Begin(ctx context.Context, _ Association) error {
	select {
	case <-j.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (gatedJournal) End(context.Context, string, time.Time, string, string) error {
	return errors.New("disk full")
}

// The view's agents and guests, and the journal writer's queue and
// failures, as XSI events arrive.
func TestGatewayMetrics(t *testing.T) {
	const alice = "alice@example.com"
	h := newHarness(t)
	j := gatedJournal{gate: make(chan struct{})}
	h.g.SetJournal(j)
	promtest.WantSamples(t, promtest.Scrape(t, h.g.Collectors()...), map[string]float64{
		`connector_gateway_agents{state="Available"}`: 0,
		`connector_gateway_hotdesk_guests`:            0,
		`connector_gateway_journal_queue`:             0,
	})

	h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
	h.g.HandleXSIEvent(xev("bob@example.com", agentSnap("Sign-Out", "")))
	h.g.HandleXSIEvent(xev(alice, guestOf("host1@example.com", time.Now()))) // its Begin is held by the journal
	h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))    // the End queues behind it
	promtest.WantSamples(t, promtest.Scrape(t, h.g.Collectors()...), map[string]float64{
		`connector_gateway_agents{state="Available"}`:    1,
		`connector_gateway_agents{state="Sign-Out"}`:     1,
		`connector_gateway_agents{state="Unavailable"}`:  0,
		`connector_gateway_hotdesk_guests`:               0,
		`connector_gateway_journal_queue`:                1,
		`connector_gateway_journal_write_failures_total`: 0,
		`connector_gateway_events_held`:                  0,
	})
	h.g.HandleXSIEvent(xev(alice, guestOf("host2@example.com", time.Now())))
	if got := promtest.Scrape(t, h.g.Collectors()...)[`connector_gateway_hotdesk_guests`]; got != 1 {
		t.Errorf("guests %v, want 1", got)
	}

	close(j.gate) // the Begin is written, the End fails
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := promtest.Scrape(t, h.g.Collectors()...)
		if got[`connector_gateway_journal_queue`] == 0 && got[`connector_gateway_journal_write_failures_total`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal queue %v, failures %v; want 0 and 1", got[`connector_gateway_journal_queue`], got[`connector_gateway_journal_write_failures_total`])
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.g.CloseJournal()
	h.settle(t)
}
