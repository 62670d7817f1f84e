package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

func TestSetForwarding(t *testing.T) {
	tests := []struct {
		name    string
		pre     []*xsi.SubscriptionEvent
		cfa     xsi.Forwarding
		pkgs    []string // xsi.event_packages; nil: all
		req     csta.SetForwarding
		calls   []string
		wantErr error
		events  []csta.Event // published after the answer
	}{
		{
			name:  "CFA on, not fresh: read first to keep ringSplash",
			cfa:   xsi.Forwarding{RingSplash: true},
			req:   csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardImmediate, ActivateForward: true, ForwardDN: "2000"},
			calls: []string{"GetCFA carol@example.com", "SetCFA carol@example.com {Active:true ForwardToPhoneNumber:2000 NumberOfRings:0 RingSplash:true}"},
		},
		{
			name:  "CFA off, fresh view: no read",
			pre:   []*xsi.SubscriptionEvent{xev("carol@example.com", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "2000"})},
			req:   csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardImmediate},
			calls: []string{"SetCFA carol@example.com {Active:false ForwardToPhoneNumber: NumberOfRings:0 RingSplash:false}"},
		},
		{
			name:  "CFB on, package subscribed: the XSI event reports it",
			req:   csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardBusy, ActivateForward: true, ForwardDN: "3000"},
			calls: []string{"SetCFB carol@example.com {Active:true ForwardToPhoneNumber:3000 NumberOfRings:0 RingSplash:false}"},
		},
		{
			name:   "CFB on, package not subscribed: event derived from the request",
			pkgs:   []string{"Call Forwarding Always", "Do Not Disturb"},
			req:    csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardBusy, ActivateForward: true, ForwardDN: "3000"},
			calls:  []string{"SetCFB carol@example.com {Active:true ForwardToPhoneNumber:3000 NumberOfRings:0 RingSplash:false}"},
			events: fwdEvents(csta.ForwardBusy, true, "3000", 0, "carol", "carol@example.com"),
		},
		{
			name:   "CFNA with ringCount → numberOfRings (not subscribed)",
			pkgs:   []string{"Call Forwarding Always"},
			req:    csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardNoAns, ActivateForward: true, ForwardDN: "4000", RingCount: 5},
			calls:  []string{"SetCFNA carol@example.com {Active:true ForwardToPhoneNumber:4000 NumberOfRings:5 RingSplash:false}"},
			events: fwdEvents(csta.ForwardNoAns, true, "4000", 5, "carol", "carol@example.com"),
		},
		{
			name:    "CFNA ringCount outside 2–20",
			req:     csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardNoAns, ActivateForward: true, RingCount: 21},
			wantErr: csta.ErrRingCountOutOfRange,
		},
		{
			name:    "ringCount on CFB",
			req:     csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardBusy, RingCount: 3},
			wantErr: csta.ErrInvalidRingCount,
		},
		{
			name:    "unsupported type",
			req:     csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardDND},
			wantErr: csta.ErrInvalidForwardingType,
		},
		{
			name:    "unknown device",
			req:     csta.SetForwarding{Device: "", ForwardingType: csta.ForwardBusy},
			wantErr: csta.ErrInvalidDeviceID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.EventPackages = tt.pkgs
			h := newHarnessConfig(t, cfg)
			h.act.cfa = tt.cfa
			for _, ev := range tt.pre {
				h.g.HandleXSIEvent(ev)
			}
			before := len(h.pub.Events())
			req := tt.req
			err := h.g.SetForwarding(context.Background(), csta.Requester{}, &req)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if got := h.act.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("calls\n got %q\nwant %q", got, tt.calls)
			}
			h.settle(t)
			if got := h.pub.Events()[before:]; !slices.Equal(got, tt.events) {
				t.Errorf("events\n got %+v\nwant %+v", got, tt.events)
			}
		})
	}
}

func fwdEvents(ft csta.ForwardingType, on bool, to csta.DeviceID, rings int, devices ...csta.DeviceID) []csta.Event {
	var out []csta.Event
	for _, d := range devices {
		out = append(out, csta.Event{Kind: csta.EventForwarding, Device: d, ForwardingType: ft, ForwardStatus: on, ForwardTo: to, RingCount: rings})
	}
	return out
}

func TestGetForwarding(t *testing.T) {
	h := newHarness(t)
	h.act.cfa = xsi.Forwarding{Active: false}
	h.act.cfb = xsi.Forwarding{Active: true, ForwardToPhoneNumber: "tel:+15559999"}
	h.act.cfna = xsi.Forwarding{Active: true, ForwardToPhoneNumber: "5000", NumberOfRings: 4}
	want := []csta.ForwardListItem{
		{ForwardingType: csta.ForwardImmediate, ForwardStatus: false},
		{ForwardingType: csta.ForwardBusy, ForwardStatus: true, ForwardDN: "+15559999"},
		{ForwardingType: csta.ForwardNoAns, ForwardStatus: true, ForwardDN: "5000", RingCount: 4},
	}
	resp, err := h.g.GetForwarding(context.Background(), csta.Requester{}, &csta.GetForwarding{Device: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.ForwardingList, want) {
		t.Errorf("got %+v\nwant %+v", resp.ForwardingList, want)
	}
	wantCalls := []string{"GetCFA carol@example.com", "GetCFB carol@example.com", "GetCFNA carol@example.com"}
	if got := h.act.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls %q, want %q", got, wantCalls)
	}

	// CFA fresh from an event: answered from the view, CFB/CFNA still read.
	h.g.HandleXSIEvent(xev("carol@example.com", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "tel:2000"}))
	resp, err = h.g.GetForwarding(context.Background(), csta.Requester{}, &csta.GetForwarding{Device: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ForwardingList[0]; got != (csta.ForwardListItem{ForwardingType: csta.ForwardImmediate, ForwardStatus: true, ForwardDN: "2000"}) {
		t.Errorf("CFA from view: %+v", got)
	}
	if got := h.act.Calls()[3:]; !slices.Equal(got, wantCalls[1:]) {
		t.Errorf("calls %q, want %q", got, wantCalls[1:])
	}
}

func TestDoNotDisturb(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.act.dnd = xsi.DoNotDisturb{Active: false, RingSplash: true}

	// Not fresh: Get reads XSI; Set reads first to keep ringSplash.
	got, err := h.g.GetDoNotDisturb(ctx, csta.Requester{}, &csta.GetDoNotDisturb{Device: "carol"})
	if err != nil || got.DoNotDisturbOn {
		t.Fatalf("GetDoNotDisturb = %+v, %v", got, err)
	}
	if err := h.g.SetDoNotDisturb(ctx, csta.Requester{}, &csta.SetDoNotDisturb{Device: "carol", DoNotDisturbOn: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{"GetDND carol@example.com", "GetDND carol@example.com", "SetDND carol@example.com {Active:true RingSplash:true}"}
	if c := h.act.Calls(); !slices.Equal(c, want) {
		t.Errorf("calls\n got %q\nwant %q", c, want)
	}

	// The XSI event makes the view fresh: Get answers without XSI.
	h.g.HandleXSIEvent(xev("carol@example.com", dnd(true)))
	got, err = h.g.GetDoNotDisturb(ctx, csta.Requester{}, &csta.GetDoNotDisturb{Device: "carol"})
	if err != nil || !got.DoNotDisturbOn {
		t.Fatalf("GetDoNotDisturb = %+v, %v", got, err)
	}
	if c := h.act.Calls(); len(c) != 3 {
		t.Errorf("fresh Get called XSI: %q", c)
	}
	if _, err := h.g.GetDoNotDisturb(ctx, csta.Requester{}, &csta.GetDoNotDisturb{Device: ""}); !errors.Is(err, csta.ErrInvalidDeviceID) {
		t.Errorf("unknown device: %v", err)
	}
	h.act.errs = map[string]error{"SetDND": &xsi.Error{Status: 404}}
	if err := h.g.SetDoNotDisturb(ctx, csta.Requester{}, &csta.SetDoNotDisturb{Device: "nobody"}); !errors.Is(err, csta.ErrInvalidDeviceID) {
		t.Errorf("404: %v", err)
	}
}
