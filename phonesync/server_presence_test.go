package phonesync

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestServerRoutesPresence runs the presence watcher inside the Server: it
// SUBSCRIBEs to a sipgo "PBX", whose presence NOTIFY reaches the Server's
// listener and becomes a gateway call with OriginPresence.
func TestServerRoutesPresence(t *testing.T) {
	leakCheck(t)
	pbxUA, err := sipgo.NewUA(sipgo.WithUserAgent("Cisco-CUCM7.0"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	pbxSrv, _ := sipgo.NewServer(pbxUA, sipgo.WithServerLogger(testLogger()))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pbxAddr := pc.LocalAddr().String()
	pbxClient, _ := sipgo.NewClient(pbxUA, sipgo.WithClientConnectionAddr(pbxAddr), sipgo.WithClientAddr(pbxAddr), sipgo.WithClientLogger(testLogger()))
	subscribes := make(chan *sip.Request, 10)
	pbxCtx, stopPBX := context.WithCancel(context.Background())
	pbxSrv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		subscribes <- req
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.To().Params.Add("tag", "cucm-tag")
		res.AppendHeader(sip.NewHeader("Expires", hdr(req, "Expires")))
		tx.Respond(res)
	})
	served := make(chan struct{})
	go func() { pbxSrv.ServeUDP(pc); close(served) }()
	t.Cleanup(func() {
		stopPBX()
		pc.Close()
		pbxUA.Close()
		<-served
	})

	svc := newFakeSvc("8001")
	cfg := testConfig()
	cfg.Presence = PresenceConfig{PBX: pbxAddr, DNs: []string{"8001"}, Expires: time.Minute}
	s := startServer(t, cfg, svc)

	var sub *sip.Request
	select {
	case sub = <-subscribes:
	case <-time.After(15 * time.Second):
		t.Fatal("no presence SUBSCRIBE")
	}
	if hdr(sub, "Event") != "presence" || sub.Contact() == nil || sub.Contact().Address.Port != mustPort(t, s.Addr()) {
		t.Fatalf("SUBSCRIBE Event %q Contact %v, want presence to our port %s", hdr(sub, "Event"), sub.Contact(), s.Addr())
	}
	notify := sip.NewRequest(sip.NOTIFY, sub.Contact().Address)
	from := &sip.FromHeader{Address: sub.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", "cucm-tag")
	to := &sip.ToHeader{Address: sub.From().Address, Params: sub.From().Params.Clone()}
	callID := *sub.CallID()
	notify.AppendHeader(from)
	notify.AppendHeader(to)
	notify.AppendHeader(&callID)
	notify.AppendHeader(&sip.CSeqHeader{SeqNo: 101, MethodName: sip.NOTIFY})
	notify.AppendHeader(sip.NewHeader("Event", "presence"))
	notify.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=60"))
	ct := sip.ContentTypeHeader("application/pidf+xml")
	notify.AppendHeader(&ct)
	notify.SetBody(readFixture(t, "pidf_cucm7_on_the_phone.xml"))
	notify.SetTransport("UDP")
	ctx, cancel := context.WithTimeout(pbxCtx, 10*time.Second)
	defer cancel()
	res, err := pbxClient.Do(ctx, notify)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("presence NOTIFY answered %d", res.StatusCode)
	}
	waitFor(t, "presence to reach the gateway", func() bool {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		for _, c := range svc.calls {
			if strings.HasPrefix(c, "agent 8001 ") && strings.HasSuffix(c, " 2") {
				return true
			}
		}
		return false
	})
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := sip.ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
