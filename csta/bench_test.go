package csta

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// setAgentState600 is a BroadWorks-style SetAgentState of 600 bytes: ISO-8859-1
// declaration, extensions in the middle, reason code private data.
var setAgentState600 = func() []byte {
	doc := `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetAgentState xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>agent-desk-4711@example.com</device>
<requestedAgentState>notReady</requestedAgentState>
<extensions>
<privateData>
<private xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData">
<pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue>
</private>
</privateData>
</extensions>
<agentID>agent-4711</agentID>
<password>31323334</password>
<group>sales-queue@example.com</group>
</SetAgentState>`
	for len(doc) < 600 {
		doc += " "
	}
	return []byte(doc)
}()

func BenchmarkDecodeSetAgentState600(b *testing.B) {
	if len(setAgentState600) != 600 {
		b.Fatalf("document is %d bytes", len(setAgentState600))
	}
	b.SetBytes(int64(len(setAgentState600)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decode(setAgentState600, 32)
		if err != nil || d.Message.(SetAgentState).ReasonCode != "3" {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGetAgentStateResponse(b *testing.B) {
	msg := GetAgentStateResponse{AgentStateList: []AgentStateEntry{{AgentID: "agent-4711", LoggedOnState: true,
		AgentInfo: []AgentInfoItem{{ACDGroup: "sales", AgentState: AgentNotReady}}}}, ReasonCode: "3"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEncode(buf[:0], msg, Edition3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeAgentNotReadyEvent(b *testing.B) {
	ev := Event{Kind: EventAgentNotReady, Device: "4711", AgentID: "agent-4711", ReasonCode: "3"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEvent(buf[:0], &ev, "17", Edition6); err != nil {
			b.Fatal(err)
		}
	}
}

// noopService answers every request at once: the benchmark measures the
// front end alone.
type noopService struct{}

func (noopService) MonitorStart(context.Context, Requester, *MonitorStart) error { return nil }
func (noopService) SetAgentState(context.Context, Requester, *SetAgentState) (*SetAgentStateResponse, error) {
	return &SetAgentStateResponse{}, nil
}
func (noopService) GetAgentState(context.Context, Requester, *GetAgentState) (*GetAgentStateResponse, error) {
	return &GetAgentStateResponse{}, nil
}
func (noopService) SetForwarding(context.Context, Requester, *SetForwarding) error { return nil }
func (noopService) GetForwarding(context.Context, Requester, *GetForwarding) (*GetForwardingResponse, error) {
	return &GetForwardingResponse{}, nil
}
func (noopService) SetDoNotDisturb(context.Context, Requester, *SetDoNotDisturb) error { return nil }
func (noopService) GetDoNotDisturb(context.Context, Requester, *GetDoNotDisturb) (*GetDoNotDisturbResponse, error) {
	return &GetDoNotDisturbResponse{}, nil
}

// BenchmarkRoundTripPipelined sends SetAgentState requests over one loopback
// TCP connection with up to `window` outstanding, and reads every answer.
// req/s is the figure BENCHMARKS.md records; run with -cpu 1 for per-core.
func BenchmarkRoundTripPipelined(b *testing.B) {
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxOutstandingRequests = window
			s := startServer(b, cfg, noopService{})
			nc, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			frames := make([][]byte, 10000)
			for i := range frames {
				frames[i], _ = AppendFrame(nil, i, setAgentState600)
			}
			fr := NewFrameReader(nc, MaxFrameSize)
			credits := make(chan struct{}, window)
			for range window {
				credits <- struct{}{}
			}
			errc := make(chan error, 1)
			n := b.N
			b.ResetTimer()
			go func() {
				for i := 0; i < n; i++ {
					<-credits
					if _, err := nc.Write(frames[i%len(frames)]); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i := 0; i < n; i++ {
				f, err := fr.ReadFrame()
				if err != nil {
					b.Fatal(err)
				}
				if f.XML[len(f.XML)-3] == 'e' && len(f.XML) < 40 {
					b.Fatalf("unexpected answer %s", f.XML)
				}
				credits <- struct{}{}
			}
			b.StopTimer()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
