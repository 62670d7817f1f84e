package csta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// testLogger logs to the test output only when -v is set, keeping failures readable.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeService is an in-memory device model used only by tests: it answers
// from its maps, refuses unknown devices, and can be told to stall.
type fakeService struct {
	mu       sync.Mutex
	devices  map[DeviceID]bool
	dnd      map[DeviceID]bool
	forwards map[DeviceID][]ForwardListItem
	agents   map[DeviceID]AgentState
	reasons  map[DeviceID]string
	stall    chan struct{} // when set, requests on device "stall" wait for it or ctx
	requests []Message
	publish  func(Event) // events emitted after a successful Set*
	// seats is where agents sit (agent ID → device): like the gateway,
	// SetAgentState refuses a named agent sitting at a device outside the
	// requester's limit (Requester.Devices).
	seats map[string]DeviceID
}

func newFakeService(devices ...DeviceID) *fakeService {
	f := &fakeService{devices: map[DeviceID]bool{}, dnd: map[DeviceID]bool{},
		forwards: map[DeviceID][]ForwardListItem{}, agents: map[DeviceID]AgentState{}, reasons: map[DeviceID]string{}}
	for _, d := range devices {
		f.devices[d] = true
	}
	return f
}

func (f *fakeService) check(ctx context.Context, d DeviceID, req Message) error {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	known := f.devices[d]
	stall := f.stall
	f.mu.Unlock()
	if d == "stall" && stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	if !known {
		return ErrInvalidDeviceID
	}
	return nil
}

func (f *fakeService) emit(ev Event) {
	if f.publish != nil {
		f.publish(ev)
	}
}

func (f *fakeService) MonitorStart(ctx context.Context, _ Requester, r *MonitorStart) error {
	return f.check(ctx, r.Device, *r)
}

func (f *fakeService) SetAgentState(ctx context.Context, who Requester, r *SetAgentState) (*SetAgentStateResponse, error) {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return nil, err
	}
	if seat, ok := f.seats[r.AgentID]; ok && !who.Devices.Allows(seat) {
		return nil, ErrPrivilegeViolationSpecifiedDevice
	}
	kinds := map[ReqAgentState]struct {
		st AgentState
		ev EventKind
	}{
		ReqLoggedOn: {AgentNotReady, EventAgentLoggedOn}, ReqLoggedOff: {AgentNull, EventAgentLoggedOff},
		ReqReady: {AgentReady, EventAgentReady}, ReqNotReady: {AgentNotReady, EventAgentNotReady},
		ReqWorkingAfterCall: {AgentWorkingAfterCall, EventAgentWorkingAfterCall},
	}
	k := kinds[r.RequestedState]
	f.mu.Lock()
	f.agents[r.Device] = k.st
	f.reasons[r.Device] = r.ReasonCode
	f.mu.Unlock()
	f.emit(Event{Kind: k.ev, Device: r.Device, AgentID: r.AgentID, ReasonCode: r.ReasonCode})
	return &SetAgentStateResponse{}, nil
}

func (f *fakeService) GetAgentState(ctx context.Context, _ Requester, r *GetAgentState) (*GetAgentStateResponse, error) {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.agents[r.Device]
	if !ok {
		st = AgentNull
	}
	return &GetAgentStateResponse{
		AgentStateList: []AgentStateEntry{{AgentID: string(r.Device), LoggedOnState: st != AgentNull,
			AgentInfo: []AgentInfoItem{{AgentState: st}}}},
		ReasonCode: f.reasons[r.Device],
	}, nil
}

func (f *fakeService) SetForwarding(ctx context.Context, _ Requester, r *SetForwarding) error {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return err
	}
	f.mu.Lock()
	f.forwards[r.Device] = append(f.forwards[r.Device], ForwardListItem{ForwardingType: r.ForwardingType,
		ForwardStatus: r.ActivateForward, ForwardDN: r.ForwardDN, RingCount: r.RingCount})
	f.mu.Unlock()
	f.emit(Event{Kind: EventForwarding, Device: r.Device, ForwardingType: r.ForwardingType,
		ForwardStatus: r.ActivateForward, ForwardTo: r.ForwardDN, RingCount: r.RingCount})
	return nil
}

func (f *fakeService) GetForwarding(ctx context.Context, _ Requester, r *GetForwarding) (*GetForwardingResponse, error) {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &GetForwardingResponse{ForwardingList: append([]ForwardListItem(nil), f.forwards[r.Device]...)}, nil
}

func (f *fakeService) SetDoNotDisturb(ctx context.Context, _ Requester, r *SetDoNotDisturb) error {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return err
	}
	f.mu.Lock()
	f.dnd[r.Device] = r.DoNotDisturbOn
	f.mu.Unlock()
	f.emit(Event{Kind: EventDoNotDisturb, Device: r.Device, DoNotDisturbOn: r.DoNotDisturbOn})
	return nil
}

func (f *fakeService) GetDoNotDisturb(ctx context.Context, _ Requester, r *GetDoNotDisturb) (*GetDoNotDisturbResponse, error) {
	if err := f.check(ctx, r.Device, *r); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &GetDoNotDisturbResponse{DoNotDisturbOn: f.dnd[r.Device]}, nil
}

// testConfig is DefaultConfig on an ephemeral loopback port.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

// startServer runs a server for one test and shuts it down afterwards.
func startServer(t testing.TB, cfg Config, svc Service) *Server {
	t.Helper()
	return startServerWith(t, NewServer(cfg, svc, testLogger(t)))
}

// startServerWith starts s (built and adjusted by the test) and shuts it
// down after the test.
func startServerWith(t testing.TB, s *Server) *Server {
	t.Helper()
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

// client is a raw CSTA-over-TCP test client.
type client struct {
	t  testing.TB
	nc net.Conn
	fr *FrameReader
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, fr: NewFrameReader(nc, MaxFrameSize)}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(invokeID int, xml string) {
	c.t.Helper()
	b, err := AppendFrame(nil, invokeID, []byte(xml))
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

// read returns the next frame, failing the test after 5 s.
func (c *client) read() Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClosed waits for the server to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := c.fr.ReadFrame()
		if err == nil {
			continue
		}
		if err == io.EOF || isConnReset(err) {
			return
		}
		c.t.Fatalf("expected the server to close the connection, got %v", err)
	}
}

func isConnReset(err error) bool {
	ne, ok := err.(*net.OpError)
	return ok && !ne.Timeout()
}

// request sends one request and returns the answer's root name and document.
func (c *client) request(invokeID int, xml string) (string, *etree.Element) {
	c.t.Helper()
	c.send(invokeID, xml)
	f := c.read()
	if f.InvokeID != invokeID {
		c.t.Fatalf("answer invoke ID %04d, want %04d: %s", f.InvokeID, invokeID, f.XML)
	}
	root := parseRoot(c.t, f.XML)
	return root.Tag, root
}

func parseRoot(t testing.TB, xml []byte) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	d.ReadSettings = readSettings
	if err := d.ReadFromBytes(xml); err != nil {
		t.Fatalf("answer is not XML: %v: %s", err, xml)
	}
	return d.Root()
}

// errorOf returns "class/value" of a CSTAErrorCode document, "" otherwise.
func errorOf(root *etree.Element) string {
	if root.Tag != "CSTAErrorCode" || len(root.ChildElements()) != 1 {
		return ""
	}
	c := root.ChildElements()[0]
	return fmt.Sprintf("%s/%s", c.Tag, bytes.TrimSpace([]byte(c.Text())))
}
