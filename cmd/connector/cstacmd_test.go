package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// cstaCmdService is a minimal csta.Service for the command's tests: known
// devices answer and publish the matching event, others get invalidDeviceID.
type cstaCmdService struct {
	mu      sync.Mutex
	devices map[csta.DeviceID]bool
	srv     *csta.Server
	last    []any // requests received
}

func (f *cstaCmdService) check(d csta.DeviceID, req any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = append(f.last, req)
	if !f.devices[d] {
		return csta.ErrInvalidDeviceID
	}
	return nil
}

func (f *cstaCmdService) requests() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]any(nil), f.last...)
}

func (f *cstaCmdService) MonitorStart(_ context.Context, _ csta.Requester, r *csta.MonitorStart) error {
	return f.check(r.Device, *r)
}

func (f *cstaCmdService) SetAgentState(_ context.Context, _ csta.Requester, r *csta.SetAgentState) (*csta.SetAgentStateResponse, error) {
	if err := f.check(r.Device, *r); err != nil {
		return nil, err
	}
	kind := map[csta.ReqAgentState]csta.EventKind{csta.ReqLoggedOn: csta.EventAgentLoggedOn, csta.ReqLoggedOff: csta.EventAgentLoggedOff,
		csta.ReqReady: csta.EventAgentReady, csta.ReqNotReady: csta.EventAgentNotReady, csta.ReqWorkingAfterCall: csta.EventAgentWorkingAfterCall}[r.RequestedState]
	f.srv.Publish(csta.Event{Kind: kind, Device: r.Device, AgentID: r.AgentID, ReasonCode: r.ReasonCode})
	return &csta.SetAgentStateResponse{}, nil
}

func (f *cstaCmdService) GetAgentState(_ context.Context, _ csta.Requester, r *csta.GetAgentState) (*csta.GetAgentStateResponse, error) {
	if err := f.check(r.Device, *r); err != nil {
		return nil, err
	}
	return &csta.GetAgentStateResponse{AgentStateList: []csta.AgentStateEntry{{AgentID: "agent1", LoggedOnState: true,
		AgentInfo: []csta.AgentInfoItem{{AgentState: csta.AgentNotReady}}}}, ReasonCode: "lunch"}, nil
}

func (f *cstaCmdService) SetForwarding(_ context.Context, _ csta.Requester, r *csta.SetForwarding) error {
	if err := f.check(r.Device, *r); err != nil {
		return err
	}
	f.srv.Publish(csta.Event{Kind: csta.EventForwarding, Device: r.Device, ForwardingType: r.ForwardingType,
		ForwardStatus: r.ActivateForward, ForwardTo: r.ForwardDN, RingCount: r.RingCount})
	return nil
}

func (f *cstaCmdService) GetForwarding(_ context.Context, _ csta.Requester, r *csta.GetForwarding) (*csta.GetForwardingResponse, error) {
	if err := f.check(r.Device, *r); err != nil {
		return nil, err
	}
	return &csta.GetForwardingResponse{ForwardingList: []csta.ForwardListItem{
		{ForwardingType: csta.ForwardImmediate, ForwardStatus: false},
		{ForwardingType: csta.ForwardNoAns, ForwardStatus: true, ForwardDN: "2000", RingCount: 3}}}, nil
}

func (f *cstaCmdService) SetDoNotDisturb(_ context.Context, _ csta.Requester, r *csta.SetDoNotDisturb) error {
	if err := f.check(r.Device, *r); err != nil {
		return err
	}
	f.srv.Publish(csta.Event{Kind: csta.EventDoNotDisturb, Device: r.Device, DoNotDisturbOn: r.DoNotDisturbOn})
	return nil
}

func (f *cstaCmdService) GetDoNotDisturb(_ context.Context, _ csta.Requester, r *csta.GetDoNotDisturb) (*csta.GetDoNotDisturbResponse, error) {
	if err := f.check(r.Device, *r); err != nil {
		return nil, err
	}
	return &csta.GetDoNotDisturbResponse{DoNotDisturbOn: true}, nil
}

func startCSTACmdServer(t *testing.T, auth csta.Auth) (*csta.Server, *cstaCmdService) {
	t.Helper()
	cfg := csta.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TCPAuth = auth
	svc := &cstaCmdService{devices: map[csta.DeviceID]bool{"desk1": true, "desk2": true}}
	s := csta.NewServer(cfg, svc, nil)
	svc.srv = s
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, svc
}

type cstaCmdResult struct {
	code           int
	stdout, stderr string
}

func runCSTACmd(t *testing.T, args ...string) cstaCmdResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cstaCommand(args, &out, &errOut)
	return cstaCmdResult{code, out.String(), errOut.String()}
}

func cstaLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

func TestCSTACommandLogin(t *testing.T) {
	s, svc := startCSTACmdServer(t, csta.Auth{Mode: "password", UserName: "op", Password: "pw"})
	r := runCSTACmd(t, "--addr", s.Addr().String(), "--user", "op", "--password", "pw",
		"--events-for", "300ms", "login", "agent1", "desk1")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	got := cstaLines(r.stdout)
	if len(got) != 2 || got[0] != "ok" || !strings.HasPrefix(got[1], "AgentLoggedOnEvent device=desk1 agent=agent1") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Fatalf("stderr: %s", r.stderr)
	}
	reqs := svc.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests %#v", reqs)
	}
	if sa, ok := reqs[1].(csta.SetAgentState); !ok || sa.RequestedState != csta.ReqLoggedOn || sa.AgentID != "agent1" || sa.Device != "desk1" {
		t.Fatalf("request %#v", reqs[1])
	}
	// The session was stopped: the server holds no monitors.
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Monitors != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.Monitors != 0 {
		t.Fatalf("monitors left: %+v", st)
	}
}

func TestCSTACommandActions(t *testing.T) {
	s, svc := startCSTACmdServer(t, csta.Auth{Mode: "none"})
	addr := s.Addr().String()
	cases := []struct {
		args  []string
		lines []string // exact stdout lines; a trailing "*" matches a prefix
	}{
		{[]string{"notready", "agent1", "desk1", "lunch"}, []string{"ok", "AgentNotReadyEvent device=desk1 agent=agent1 reason=lunch *"}},
		{[]string{"ready", "agent1", "desk1"}, []string{"ok", "AgentReadyEvent device=desk1 agent=agent1 *"}},
		{[]string{"acw", "agent1", "desk1"}, []string{"ok", "AgentWorkingAfterCallEvent device=desk1 agent=agent1 *"}},
		{[]string{"logout", "agent1", "desk1"}, []string{"ok", "AgentLoggedOffEvent device=desk1 agent=agent1 *"}},
		{[]string{"state", "desk1"}, []string{"ok agent=agent1 loggedOn=true state=agentNotReady reason=lunch"}},
		{[]string{"forward", "desk1", "noanswer", "on", "2000", "--rings", "3"}, []string{"ok", "ForwardingEvent device=desk1 type=forwardNoAns on=true to=2000 rings=3 *"}},
		{[]string{"forward", "desk1", "immediate", "off"}, []string{"ok", "ForwardingEvent device=desk1 type=forwardImmediate on=false *"}},
		{[]string{"forward", "desk1"}, []string{"ok forwardImmediate=off forwardNoAns=on:2000:3rings"}},
		{[]string{"dnd", "desk1", "on"}, []string{"ok", "DoNotDisturbEvent device=desk1 on=true *"}},
		{[]string{"dnd", "desk1"}, []string{"ok dnd=on"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCSTACmd(t, append([]string{"--addr", addr, "--events-for", "200ms", "--edition", "ed6"}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			got := cstaLines(r.stdout)
			if len(got) != len(tc.lines) {
				t.Fatalf("stdout:\n%s", r.stdout)
			}
			for i, want := range tc.lines {
				if p, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(got[i], p) || got[i] == want {
					continue
				}
				t.Fatalf("line %d = %q, want %q", i, got[i], want)
			}
		})
	}
	var sawReason bool
	for _, r := range svc.requests() {
		if sa, ok := r.(csta.SetAgentState); ok && sa.RequestedState == csta.ReqNotReady && sa.ReasonCode == "lunch" {
			sawReason = true
		}
	}
	if !sawReason {
		t.Fatal("the not-ready reason did not reach the service as AgentNotReadyReasonValue")
	}
}

func TestCSTACommandErrorAnswer(t *testing.T) {
	s, _ := startCSTACmdServer(t, csta.Auth{Mode: "none"})
	r := runCSTACmd(t, "--addr", s.Addr().String(), "login", "agent1", "nosuch")
	if r.code != 1 || strings.TrimSpace(r.stdout) != "operation/invalidDeviceID" {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "monitor nosuch: operation/invalidDeviceID") {
		t.Fatalf("stderr: %s", r.stderr)
	}

	// JSON answer with class and value.
	r = runCSTACmd(t, "--addr", s.Addr().String(), "--json", "dnd", "nosuch", "on")
	var obj map[string]any
	if r.code != 1 || json.Unmarshal([]byte(cstaLines(r.stdout)[0]), &obj) != nil ||
		obj["ok"] != false || obj["class"] != "operation" || obj["value"] != "invalidDeviceID" || obj["error"] != "operation/invalidDeviceID" {
		t.Fatalf("exit %d stdout %s", r.code, r.stdout)
	}
}

func TestCSTACommandSessionAndConnectionFailures(t *testing.T) {
	s, _ := startCSTACmdServer(t, csta.Auth{Mode: "password", UserName: "op", Password: "pw"})
	r := runCSTACmd(t, "--addr", s.Addr().String(), "--user", "op", "--password", "bad", "state", "desk1")
	if r.code != 1 || strings.TrimSpace(r.stdout) != "StartApplicationSession refused: invalidApplicationInfo" {
		t.Fatalf("bad password: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r = runCSTACmd(t, "--addr", addr, "--timeout", "2s", "state", "desk1")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "dial") {
		t.Fatalf("no server: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func TestCSTACommandJSON(t *testing.T) {
	s, _ := startCSTACmdServer(t, csta.Auth{Mode: "none"})
	r := runCSTACmd(t, "--addr", s.Addr().String(), "--json", "--events-for", "300ms", "notready", "agent1", "desk1", "break")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	got := cstaLines(r.stdout)
	if len(got) != 2 {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	var answer, event map[string]any
	if err := json.Unmarshal([]byte(got[0]), &answer); err != nil || answer["type"] != "answer" || answer["ok"] != true || answer["action"] != "notready" {
		t.Fatalf("answer %s (%v)", got[0], err)
	}
	if err := json.Unmarshal([]byte(got[1]), &event); err != nil || event["type"] != "event" || event["name"] != "AgentNotReadyEvent" ||
		event["device"] != "desk1" || event["agent"] != "agent1" || event["reason"] != "break" {
		t.Fatalf("event %s (%v)", got[1], err)
	}
}

func TestCSTACommandWatch(t *testing.T) {
	s, _ := startCSTACmdServer(t, csta.Auth{Mode: "none"})
	publish := func() {
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Monitors < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		s.Publish(csta.Event{Kind: csta.EventAgentReady, Device: "desk2", AgentID: "agent2"})
		s.Publish(csta.Event{Kind: csta.EventDoNotDisturb, Device: "desk1", DoNotDisturbOn: true})
	}

	// Ended by --for.
	go publish()
	r := runCSTACmd(t, "--addr", s.Addr().String(), "watch", "desk1", "desk2", "--for", "500ms")
	got := cstaLines(r.stdout)
	if r.code != 0 || len(got) != 3 || got[0] != "ok watching=desk1,desk2" ||
		!strings.HasPrefix(got[1], "AgentReadyEvent device=desk2 agent=agent2") || !strings.HasPrefix(got[2], "DoNotDisturbEvent device=desk1 on=true") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// Ended by a signal (the context), with the session stopped.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { publish(); time.Sleep(100 * time.Millisecond); cancel() }()
	var out, errOut bytes.Buffer
	code := cstaRun(ctx, []string{"--addr", s.Addr().String(), "watch", "desk1", "desk2"}, &out, &errOut)
	if code != 0 || len(cstaLines(out.String())) != 3 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}

	// A device the server refuses fails the watch.
	r = runCSTACmd(t, "--addr", s.Addr().String(), "watch", "desk1", "nosuch")
	if r.code != 1 || strings.TrimSpace(r.stdout) != "nosuch: operation/invalidDeviceID" {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The server going away ends the watch with exit 1.
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Monitors < 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	r = runCSTACmd(t, "--addr", s.Addr().String(), "watch", "desk1")
	if r.code != 1 || !strings.Contains(r.stdout, "ApplicationSessionTerminated") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func TestCSTACommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate", "desk1"},
		{"login", "agent1"},
		{"login", "agent1", "desk1", "extra"},
		{"notready", "agent1"},
		{"state"},
		{"forward", "desk1", "sideways", "on"},
		{"forward", "desk1", "busy", "maybe"},
		{"forward", "desk1", "noanswer", "on", "2000", "--rings", "500"},
		{"forward", "desk1", "--rings", "3"},
		{"dnd", "desk1", "perhaps"},
		{"watch"},
		{"--edition", "ed9", "state", "desk1"},
		{"--timeout", "0s", "state", "desk1"},
		{"--nosuchflag", "state", "desk1"},
		{"--rings", "3", "state", "desk1"},
		{"--for", "1s", "state", "desk1"},
	} {
		r := runCSTACmd(t, append([]string{"--addr", "127.0.0.1:1"}, args...)...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Usage: connector csta") {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCSTACmd(t, "--help"); r.code != 0 || !strings.Contains(r.stderr, "login AGENT DEVICE") {
		t.Errorf("--help: exit %d, stderr %s", r.code, r.stderr)
	}
}
