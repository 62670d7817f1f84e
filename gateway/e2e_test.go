package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

const ns3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"

// cstaClient is a raw CTI client over TCP.
type cstaClient struct {
	t    testing.TB
	conn net.Conn
	fr   *csta.FrameReader
}

func (c *cstaClient) send(invokeID int, xml string) {
	c.t.Helper()
	b, err := csta.AppendFrame(nil, invokeID, []byte(xml))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next frame's invoke ID and XML.
func (c *cstaClient) read() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f.InvokeID, string(f.XML)
}

// readUntil skips frames (e.g. SystemStatus) until one contains root.
func (c *cstaClient) readUntil(root string) (int, string) {
	c.t.Helper()
	for range 20 {
		id, x := c.read()
		if strings.Contains(x, "<"+root) {
			return id, x
		}
		c.t.Logf("skipped frame %04d: %s", id, x)
	}
	c.t.Fatalf("no %s", root)
	return 0, ""
}

// TestEndToEnd: a CTI client over real TCP, the real csta front end, the
// gateway, the real xsi client and event channel, and the XSP simulator.
// The client monitors a device, sets DND, gets the answer and then the
// DoNotDisturbEvent; a portal change reaches the same monitor.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	const user = "agent1@example.com"
	sim := xspsim.New(xspsim.Config{
		Users:    []xspsim.User{{ID: user, FirstName: "A", LastName: "One", CallCenter: true}},
		Username: "admin@example.com",
		Password: "secret",
	}, logger)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	}()

	xcfg := xsi.DefaultConfig()
	xcfg.Servers = []string{sim.URL()}
	xcfg.Username, xcfg.Password = "admin@example.com", "secret"
	xcfg.RequestTimeout = 5 * time.Second
	xcfg.HeartbeatInterval = time.Second
	xcfg.ReconnectMin, xcfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	xcfg.Targets = []xsi.Target{{Kind: "user", ID: user}}
	client, err := xsi.NewClient(xcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	events, err := xsi.NewEvents(xcfg, logger)
	if err != nil {
		t.Fatal(err)
	}

	gw := New(Config{Domain: "example.com", RequestTimeout: 5 * time.Second}, Deps{Actions: client}, logger)
	ccfg := csta.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	srv := csta.NewServer(ccfg, gw, logger)
	gw.deps.Publisher = srv // set before Run starts: no race
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		gw.Run(ctx, events.Events(), events.LinkChanges(), events.LinkState)
	}()
	defer func() { cancel(); <-runDone }()
	if err := events.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		events.Stop(sctx)
	}()
	// Wait for the link and the initial DND snapshot.
	deadline := time.Now().Add(10 * time.Second)
	snapshot := func() bool {
		gw.mu.Lock()
		defer gw.mu.Unlock()
		u := gw.users[user]
		// Every initial event: a forwarding one arriving after the
		// MonitorStart is published first (1 run in many under load).
		return u != nil && u.agentSeen && u.dndSeen && u.hotelSeen && u.fwd[0].seen && u.fwd[1].seen && u.fwd[2].seen
	}
	for !gw.LinkUp() || !snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("link up %v, view %+v", gw.LinkUp(), gw.User(user))
		}
		time.Sleep(10 * time.Millisecond)
	}

	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &cstaClient{t: t, conn: nc, fr: csta.NewFrameReader(nc, 65535)}

	c.send(1, fmt.Sprintf(`<MonitorStart xmlns="%s"><monitorObject><deviceObject>agent1</deviceObject></monitorObject></MonitorStart>`, ns3))
	if id, x := c.readUntil("MonitorStartResponse"); id != 1 {
		t.Fatalf("MonitorStart answer %04d: %s", id, x)
	}

	c.send(2, fmt.Sprintf(`<SetDoNotDisturb xmlns="%s"><device>agent1</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`, ns3))
	id, x := c.read()
	if id != 2 || !strings.Contains(x, "SetDoNotDisturbResponse") {
		t.Fatalf("first frame after SetDoNotDisturb is %04d %s; want the answer first", id, x)
	}
	id, x = c.readUntil("DoNotDisturbEvent")
	if id != 9999 || !strings.Contains(x, ">true<") || !strings.Contains(x, "agent1") {
		t.Fatalf("event %04d: %s", id, x)
	}

	if err := sim.PortalSetDND(user, false); err != nil {
		t.Fatal(err)
	}
	id, x = c.readUntil("DoNotDisturbEvent")
	if id != 9999 || !strings.Contains(x, ">false<") {
		t.Fatalf("portal event %04d: %s", id, x)
	}

	// Agent: loggedOn at its own device (Sign-In; the XSP lands in
	// Available), then Unavailable; the answer precedes the events.
	c.send(4, fmt.Sprintf(`<SetAgentState xmlns="%s"><device>agent1</device><requestedAgentState>loggedOn</requestedAgentState><agentID>agent1</agentID></SetAgentState>`, ns3))
	if id, x := c.read(); id != 4 || !strings.Contains(x, "SetAgentStateResponse") {
		t.Fatalf("first frame after SetAgentState is %04d %s; want the answer first", id, x)
	}
	for _, root := range []string{"AgentLoggedOnEvent", "AgentReadyEvent", "AgentNotReadyEvent"} {
		if id, x := c.read(); id != 9999 || !strings.Contains(x, "<"+root) {
			t.Fatalf("want %s, got %04d %s", root, id, x)
		}
	}
	c.send(5, fmt.Sprintf(`<SetAgentState xmlns="%s"><device>agent1</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`, ns3))
	if id, x := c.read(); id != 5 || !strings.Contains(x, "SetAgentStateResponse") {
		t.Fatalf("answer %04d %s", id, x)
	}
	if id, x := c.read(); id != 9999 || !strings.Contains(x, "<AgentReadyEvent") {
		t.Fatalf("want AgentReadyEvent, got %04d %s", id, x)
	}

	c.send(3, fmt.Sprintf(`<GetDoNotDisturb xmlns="%s"><device>agent1</device></GetDoNotDisturb>`, ns3))
	if id, x := c.readUntil("GetDoNotDisturbResponse"); id != 3 || !strings.Contains(x, ">false<") {
		t.Fatalf("GetDoNotDisturb %04d: %s", id, x)
	}

	// Link loss: SystemStatus disabled, requests refused, the monitor stays;
	// back up: normal, and portal changes reach the monitor again.
	sim.Kill()
	if _, x := c.readUntil("SystemStatus"); !strings.Contains(x, "disabled") {
		t.Fatalf("status %s", x)
	}
	c.send(6, fmt.Sprintf(`<GetDoNotDisturb xmlns="%s"><device>agent1</device></GetDoNotDisturb>`, ns3))
	if id, x := c.readUntil("CSTAErrorCode"); id != 6 || !strings.Contains(x, "resourceOutOfService") {
		t.Fatalf("while down %04d: %s", id, x)
	}
	if err := sim.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, x := c.readUntil("SystemStatus"); !strings.Contains(x, "normal") {
		t.Fatalf("status %s", x)
	}
	if err := sim.PortalSetDND(user, true); err != nil {
		t.Fatal(err)
	}
	if id, x := c.readUntil("DoNotDisturbEvent"); id != 9999 || !strings.Contains(x, ">true<") {
		t.Fatalf("portal event after restart %04d: %s", id, x)
	}
}
