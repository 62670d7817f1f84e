package phonesync

import (
	"crypto/tls"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/broadworks-connector/connector/internal/testcert"
)

func TestSubscribeOverTLS(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.TLSListen = "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile, _ = testcert.Write(t)
	s := startServer(t, cfg, newFakeSvc("1001"))
	if s.tlsAddr() == "" {
		t.Fatal("no TLS listener")
	}
	p := newPhone(t, "1001", "TLS", s.tlsAddr())
	// The phone's UA needs to trust the test certificate.
	p.ua.Close()
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"), sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(testLogger()))
	srv.OnNotify(p.track(func(req *sip.Request, tx sip.ServerTransaction) {
		p.notifies <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}))
	p.ua = ua
	p.cli, _ = sipgo.NewClient(ua, sipgo.WithClientLogger(testLogger()))

	res := p.subscribe(subOpts{})
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE over TLS: %d", res.StatusCode)
	}
	if tp, _ := res.Contact().Address.UriParams.Get("transport"); tp != "tls" {
		t.Fatalf("Contact %s", res.Contact().Value())
	}
	n := p.nextNotify()
	checkDialogNotify(t, p, n, eventFeature)
	if n.Transport() != "TLS" {
		t.Fatalf("NOTIFY over %s", n.Transport())
	}
	if ph := s.Phones(); len(ph) != 1 || ph[0].Transport != "TLS" {
		t.Fatalf("Phones() = %+v", ph)
	}
}
