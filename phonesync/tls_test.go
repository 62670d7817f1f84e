package phonesync

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1.
func writeTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "sip.crt"), filepath.Join(dir, "sip.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestSubscribeOverTLS(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.TLSListen = "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = writeTestCert(t)
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
