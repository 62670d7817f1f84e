package cticlient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/beevik/etree"
	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/csta"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeService knows the devices it was given, records agent states and
// publishes the matching event after each successful change.
type fakeService struct {
	mu      sync.Mutex
	devices map[csta.DeviceID]bool
	agents  map[csta.DeviceID]csta.AgentState
	reasons map[csta.DeviceID]string
	dnd     map[csta.DeviceID]bool
	fwd     map[csta.DeviceID][]csta.ForwardListItem
	delay   map[csta.DeviceID]time.Duration // answer SetDoNotDisturb late for these
	publish func(csta.Event)
}

func newFakeService(devices ...csta.DeviceID) *fakeService {
	f := &fakeService{devices: map[csta.DeviceID]bool{}, agents: map[csta.DeviceID]csta.AgentState{},
		reasons: map[csta.DeviceID]string{}, dnd: map[csta.DeviceID]bool{},
		fwd: map[csta.DeviceID][]csta.ForwardListItem{}, delay: map[csta.DeviceID]time.Duration{}}
	for _, d := range devices {
		f.devices[d] = true
	}
	return f
}

func (f *fakeService) known(d csta.DeviceID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.devices[d] {
		return csta.ErrInvalidDeviceID
	}
	return nil
}

func (f *fakeService) emit(ev csta.Event) {
	f.mu.Lock()
	p := f.publish
	f.mu.Unlock()
	if p != nil {
		p(ev)
	}
}

func (f *fakeService) MonitorStart(_ context.Context, _ csta.Requester, r *csta.MonitorStart) error {
	return f.known(r.Device)
}

func (f *fakeService) SetAgentState(_ context.Context, _ csta.Requester, r *csta.SetAgentState) (*csta.SetAgentStateResponse, error) {
	if err := f.known(r.Device); err != nil {
		return nil, err
	}
	m := map[csta.ReqAgentState]struct {
		st csta.AgentState
		ev csta.EventKind
	}{
		csta.ReqLoggedOn: {csta.AgentNotReady, csta.EventAgentLoggedOn}, csta.ReqLoggedOff: {csta.AgentNull, csta.EventAgentLoggedOff},
		csta.ReqReady: {csta.AgentReady, csta.EventAgentReady}, csta.ReqNotReady: {csta.AgentNotReady, csta.EventAgentNotReady},
		csta.ReqWorkingAfterCall: {csta.AgentWorkingAfterCall, csta.EventAgentWorkingAfterCall},
	}[r.RequestedState]
	f.mu.Lock()
	f.agents[r.Device] = m.st
	f.reasons[r.Device] = r.ReasonCode
	f.mu.Unlock()
	f.emit(csta.Event{Kind: m.ev, Device: r.Device, AgentID: r.AgentID, ReasonCode: r.ReasonCode})
	return &csta.SetAgentStateResponse{}, nil
}

func (f *fakeService) GetAgentState(_ context.Context, _ csta.Requester, r *csta.GetAgentState) (*csta.GetAgentStateResponse, error) {
	if err := f.known(r.Device); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.agents[r.Device]
	if !ok {
		st = csta.AgentNull
	}
	return &csta.GetAgentStateResponse{
		AgentStateList: []csta.AgentStateEntry{{AgentID: "agent-" + string(r.Device), LoggedOnState: st != csta.AgentNull,
			AgentInfo: []csta.AgentInfoItem{{AgentState: st}}}},
		ReasonCode: f.reasons[r.Device],
	}, nil
}

func (f *fakeService) SetForwarding(_ context.Context, _ csta.Requester, r *csta.SetForwarding) error {
	if err := f.known(r.Device); err != nil {
		return err
	}
	f.mu.Lock()
	f.fwd[r.Device] = append(f.fwd[r.Device], csta.ForwardListItem{ForwardingType: r.ForwardingType,
		ForwardStatus: r.ActivateForward, ForwardDN: r.ForwardDN, RingCount: r.RingCount})
	f.mu.Unlock()
	f.emit(csta.Event{Kind: csta.EventForwarding, Device: r.Device, ForwardingType: r.ForwardingType,
		ForwardStatus: r.ActivateForward, ForwardTo: r.ForwardDN, RingCount: r.RingCount})
	return nil
}

func (f *fakeService) GetForwarding(_ context.Context, _ csta.Requester, r *csta.GetForwarding) (*csta.GetForwardingResponse, error) {
	if err := f.known(r.Device); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &csta.GetForwardingResponse{ForwardingList: append([]csta.ForwardListItem(nil), f.fwd[r.Device]...)}, nil
}

func (f *fakeService) SetDoNotDisturb(ctx context.Context, _ csta.Requester, r *csta.SetDoNotDisturb) error {
	if err := f.known(r.Device); err != nil {
		return err
	}
	f.mu.Lock()
	d := f.delay[r.Device]
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.dnd[r.Device] = r.DoNotDisturbOn
	f.mu.Unlock()
	f.emit(csta.Event{Kind: csta.EventDoNotDisturb, Device: r.Device, DoNotDisturbOn: r.DoNotDisturbOn})
	return nil
}

func (f *fakeService) GetDoNotDisturb(_ context.Context, _ csta.Requester, r *csta.GetDoNotDisturb) (*csta.GetDoNotDisturbResponse, error) {
	if err := f.known(r.Device); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &csta.GetDoNotDisturbResponse{DoNotDisturbOn: f.dnd[r.Device]}, nil
}

// startServer runs a csta.Server on an ephemeral loopback port.
func startServer(t *testing.T, cfg csta.Config, svc *fakeService) *csta.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s := csta.NewServer(cfg, svc, nil)
	svc.mu.Lock()
	svc.publish = s.Publish
	svc.mu.Unlock()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func dialT(t *testing.T, s *csta.Server, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func nextEvent(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed: %v", c.Err())
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return Event{}
}

func TestSessionRequestsAndEvents(t *testing.T) {
	svc := newFakeService("desk1")
	cfg := csta.DefaultConfig()
	cfg.TCPAuth = csta.Auth{Mode: "password", UserName: "op", Password: "secret"}
	cfg.RequireSession = true
	s := startServer(t, cfg, svc)
	c := dialT(t, s)
	ctx := context.Background()

	info, err := c.StartSession(ctx, "test", "op", "secret", csta.Edition6)
	if err != nil {
		t.Fatal(err)
	}
	if info.SessionID == "" || info.ProtocolVersion != csta.Edition6.Namespace() || info.Duration != 180*time.Second {
		t.Fatalf("session info %+v", info)
	}
	if c.SessionID() != info.SessionID {
		t.Fatal("SessionID not recorded")
	}
	ref, err := c.MonitorStart(ctx, "desk1")
	if err != nil || ref == "" {
		t.Fatalf("MonitorStart: %q %v", ref, err)
	}
	if _, err := c.SetAgentState(ctx, "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, c)
	if ev.Name != "AgentLoggedOnEvent" || ev.Device != "desk1" || ev.AgentID != "agent1" || ev.CrossRefID != ref {
		t.Fatalf("event %+v", ev)
	}
	if got := ev.String(); got != "AgentLoggedOnEvent device=desk1 agent=agent1 monitor="+ref {
		t.Fatalf("event line %q", got)
	}

	if _, err := c.SetAgentState(ctx, "desk1", csta.ReqNotReady, "agent1", "lunch & break"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Name != "AgentNotReadyEvent" || ev.ReasonCode != "lunch & break" {
		t.Fatalf("event %+v", ev)
	}
	st, err := c.GetAgentState(ctx, "desk1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.AgentStateList) != 1 || !st.AgentStateList[0].LoggedOnState || st.AgentStateList[0].AgentID != "agent-desk1" ||
		st.AgentStateList[0].AgentInfo[0].AgentState != csta.AgentNotReady || st.ReasonCode != "lunch & break" {
		t.Fatalf("GetAgentState %+v", st)
	}

	if err := c.SetForwarding(ctx, "desk1", csta.ForwardNoAns, true, "2000", 4); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Name != "ForwardingEvent" || ev.ForwardingType != "forwardNoAns" || !ev.ForwardStatus ||
		ev.ForwardTo != "2000" || ev.RingCount != 4 {
		t.Fatalf("event %+v", ev)
	}
	fw, err := c.GetForwarding(ctx, "desk1")
	if err != nil || len(fw.ForwardingList) != 1 || fw.ForwardingList[0] != (csta.ForwardListItem{ForwardingType: csta.ForwardNoAns, ForwardStatus: true, ForwardDN: "2000", RingCount: 4}) {
		t.Fatalf("GetForwarding %+v %v", fw, err)
	}

	if err := c.SetDoNotDisturb(ctx, "desk1", true); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Name != "DoNotDisturbEvent" || !ev.DoNotDisturbOn || ev.String() != "DoNotDisturbEvent device=desk1 on=true monitor="+ref {
		t.Fatalf("event %+v", ev)
	}
	if on, err := c.GetDoNotDisturb(ctx, "desk1"); err != nil || !on {
		t.Fatalf("GetDoNotDisturb %v %v", on, err)
	}
	if err := c.MonitorStop(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := c.StopSession(ctx); err != nil {
		t.Fatal(err)
	}
	if c.SessionID() != "" {
		t.Fatal("session still recorded after StopSession")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := <-c.Events(); open {
		t.Fatal("events channel open after Close")
	}
	if _, err := c.GetDoNotDisturb(ctx, "desk1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

func TestCSTAErrorAndSessionError(t *testing.T) {
	svc := newFakeService("desk1")
	cfg := csta.DefaultConfig()
	cfg.TCPAuth = csta.Auth{Mode: "password", UserName: "op", Password: "secret"}
	s := startServer(t, cfg, svc)
	c := dialT(t, s)
	ctx := context.Background()
	if _, err := c.MonitorStart(ctx, "desk1"); err == nil || err.Error() != "security/securityInfoViolated" {
		t.Fatalf("request before the session: %v", err)
	}
	if _, err := c.StartSession(ctx, "test", "op", "secret", csta.Edition3); err != nil {
		t.Fatal(err)
	}

	_, err := c.MonitorStart(ctx, "nosuch")
	var ce *Error
	if !errors.As(err, &ce) || err.Error() != "operation/invalidDeviceID" || !errors.Is(err, csta.ErrInvalidDeviceID) {
		t.Fatalf("MonitorStart on unknown device: %v", err)
	}
	if err := c.SetForwarding(ctx, "desk1", csta.ForwardNoAns, true, "2000", 500); err == nil || err.Error() != "operation/ringCountOutOfRange" {
		t.Fatalf("ring count 500: %v", err)
	}

	// Wrong password: a session error, and the server closes the connection.
	c = dialT(t, s)
	_, err = c.StartSession(ctx, "test", "op", "wrong", csta.Edition3)
	var se *SessionError
	if !errors.As(err, &se) || se.DefinedError != "invalidApplicationInfo" || err.Error() != "StartApplicationSession refused: invalidApplicationInfo" {
		t.Fatalf("bad credentials: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after refused session")
	}
	if err := c.Err(); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Err after server close: %v", err)
	}
	if _, err := c.GetDoNotDisturb(ctx, "desk1"); err == nil {
		t.Fatal("call on a dead connection succeeded")
	}
}

// Pipelined requests from many goroutines, some answered late, each get
// their own answer.
func TestPipelinedRequestsArePaired(t *testing.T) {
	var devices []csta.DeviceID
	for i := range 40 {
		devices = append(devices, csta.DeviceID(fmt.Sprintf("d%02d", i)))
	}
	svc := newFakeService(devices...)
	for i, d := range devices {
		svc.delay[d] = time.Duration((40-i)%7) * 15 * time.Millisecond // out-of-order completion
	}
	s := startServer(t, csta.DefaultConfig(), svc)
	c := dialT(t, s)
	ctx := context.Background()
	if _, err := c.StartSession(ctx, "test", "", "", csta.Edition3); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(devices)*3)
	for i, d := range devices {
		wg.Go(func() {
			on := i%2 == 0
			if err := c.SetDoNotDisturb(ctx, string(d), on); err != nil {
				errs <- fmt.Errorf("%s set: %w", d, err)
				return
			}
			got, err := c.GetDoNotDisturb(ctx, string(d))
			if err != nil || got != on {
				errs <- fmt.Errorf("%s: got %v %v, want %v", d, got, err, on)
			}
		})
		wg.Go(func() { // an error answer interleaved with the rest
			if _, err := c.GetAgentState(ctx, "x"+string(d)); !errors.Is(err, csta.ErrInvalidDeviceID) {
				errs <- fmt.Errorf("x%s: %v", d, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCallDeadline(t *testing.T) {
	svc := newFakeService("slow")
	svc.delay["slow"] = 2 * time.Second
	s := startServer(t, csta.DefaultConfig(), svc)
	c := dialT(t, s, WithTimeout(100*time.Millisecond))
	start := time.Now()
	err := c.SetDoNotDisturb(context.Background(), "slow", true)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("slow answer: %v after %v", err, time.Since(start))
	}
	// The late answer is discarded; the connection stays usable.
	if _, err := c.GetDoNotDisturb(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
}

func TestInvokeIDsWrapAndSkip9999(t *testing.T) {
	c := &Client{pending: map[int]chan *etree.Element{}}
	c.nextID = 9997
	var got []int
	for range 3 {
		id, _, err := c.allocID()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if fmt.Sprint(got) != "[9998 1 2]" {
		t.Fatalf("invoke IDs %v", got)
	}
	// IDs still outstanding are skipped.
	c.nextID = 0
	c.pending[3] = nil
	if id, _, _ := c.allocID(); id != 4 {
		// 1 and 2 are outstanding too
		t.Fatalf("got %d, want 4", id)
	}
}

// The keep-alive resets the session timer at half its duration, so the
// session outlives it many times over; without it the session expires.
func TestKeepAlive(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keepalive=", keep), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := csta.DefaultConfig()
				s := csta.NewServer(cfg, newFakeService("desk1"), nil)
				srvSide, cliSide := net.Pipe()
				s.ServeConn(srvSide)
				opts := []Option{WithSessionDuration(20 * time.Second)}
				if !keep {
					opts = append(opts, WithoutKeepAlive())
				}
				c := New(cliSide, opts...)
				defer c.Close()
				info, err := c.StartSession(context.Background(), "test", "", "", csta.Edition3)
				if err != nil {
					t.Fatal(err)
				}
				if info.Duration != 20*time.Second {
					t.Fatalf("granted %v", info.Duration)
				}
				time.Sleep(95 * time.Second)
				synctest.Wait()
				if !keep {
					ev := <-c.Events()
					if ev.Name != "ApplicationSessionTerminated" || ev.TermReason != "sessionTimerExpired" {
						t.Fatalf("got %+v", ev)
					}
					<-c.Done()
					return
				}
				if n := c.KeepAlives(); n < 8 {
					t.Fatalf("%d resets in 95 s of a 20 s session", n)
				}
				if on, err := c.GetDoNotDisturb(context.Background(), "desk1"); err != nil || on {
					t.Fatalf("after 95 s: %v %v", on, err)
				}
				if err := c.StopSession(context.Background()); err != nil {
					t.Fatal(err)
				}
				c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				s.Shutdown(ctx)
			})
		})
	}
}

// Events beyond the channel's capacity are dropped and counted, never
// blocking the answers behind them.
func TestEventOverflowDoesNotBlockAnswers(t *testing.T) {
	svc := newFakeService("desk1")
	s := startServer(t, csta.DefaultConfig(), svc)
	c := dialT(t, s, WithEventBuffer(2))
	ctx := context.Background()
	if _, err := c.MonitorStart(ctx, "desk1"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.SetDoNotDisturb(ctx, "desk1", i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	// The fifth answer arrived, so its event... may still be in flight; ask once more.
	if _, err := c.GetDoNotDisturb(ctx, "desk1"); err != nil {
		t.Fatal(err)
	}
	if c.DroppedEvents() != 3 || len(c.Events()) != 2 {
		t.Fatalf("dropped %d, queued %d", c.DroppedEvents(), len(c.Events()))
	}
}

func TestCloseIsIdempotentAndUnblocksCalls(t *testing.T) {
	svc := newFakeService("slow")
	svc.delay["slow"] = 5 * time.Second
	s := startServer(t, csta.DefaultConfig(), svc)
	c := dialT(t, s)
	done := make(chan error, 1)
	go func() { done <- c.SetDoNotDisturb(context.Background(), "slow", true) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock a pending call")
	}
}
