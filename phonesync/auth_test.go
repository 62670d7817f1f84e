package phonesync

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func TestDigestAuth(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.RequireAuth = true
	cfg.Credentials = map[string]string{"1001": "pw1001", "1002": "pw1002"}
	s := startServer(t, cfg, svc)

	for _, tc := range []struct {
		name, user, password string
		want                 int
	}{
		{"missing", "", "", 401},
		{"wrong password", "1001", "nope", 403},
		{"unknown user", "4711", "pw1001", 403},
		{"another phone's credentials", "1002", "pw1002", 403},
		{"right", "1001", "pw1001", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPhone(t, "1001", "UDP", s.Addr())
			p.user, p.password = tc.user, tc.password
			res := p.subscribe(subOpts{})
			if res.StatusCode != tc.want {
				t.Fatalf("%d, want %d", res.StatusCode, tc.want)
			}
			if tc.want == 401 {
				chal, err := digest.ParseChallenge(hdr(res, "WWW-Authenticate"))
				if err != nil {
					t.Fatal(err)
				}
				if chal.Realm != "BroadWorks" || chal.Algorithm != "MD5" || !chal.SupportsQOP("auth") || chal.Nonce == "" {
					t.Fatalf("challenge %+v", chal)
				}
			}
			if tc.want == 200 {
				p.nextNotify()
				// In-dialog change, authenticated again with the next nc.
				if res := p.subscribe(subOpts{body: dndBody("1001", true)}); res.StatusCode != 200 {
					t.Fatalf("authenticated change: %d", res.StatusCode)
				}
				s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}) // as the gateway does once confirmed
				if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<doNotDisturbOn>true</doNotDisturbOn>") {
					t.Fatalf("NOTIFY %s", n.Body())
				}
			}
		})
	}
	if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != "dnd 1001 true 1" {
		t.Fatalf("service calls %q", calls)
	}
}

func TestChangeNeedsAuthEvenWhenNotRequired(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.RequireAuth = false
	cfg.Credentials = map[string]string{"1001": "pw1001"}
	s := startServer(t, cfg, svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	p.user = ""
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("unauthenticated SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	if res := p.subscribe(subOpts{body: dndBody("1001", true)}); res.StatusCode != 401 {
		t.Fatalf("unauthenticated change: %d, want 401", res.StatusCode)
	}
	p.noNotify(100 * time.Millisecond)
	if calls := svc.takeCalls(); len(calls) != 0 {
		t.Fatalf("service calls %q", calls)
	}
	p.user, p.password = "1001", "pw1001"
	if res := p.subscribe(subOpts{body: dndBody("1001", true)}); res.StatusCode != 200 {
		t.Fatalf("authenticated change: %d", res.StatusCode)
	}
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}) // as the gateway does once confirmed
	p.nextNotify()
	if calls := svc.awaitCalls(t, 1); len(calls) != 1 {
		t.Fatalf("service calls %q", calls)
	}
}

// TestDigestVerify covers the arithmetic without a network: RFC 2617 with
// and without qop, stale and foreign nonces.
func TestDigestVerify(t *testing.T) {
	a := newDigestAuth("BroadWorks", map[string]string{"479": "pw"})
	now := time.Unix(1_800_000_000, 0)
	a.now = func() time.Time { return now }
	nonce := a.nonce()
	uri := "sip:479@192.0.2.1:5060"
	mk := func(qop []string, user, pw, n string, nc int, cnonce string) string {
		c, err := digest.Digest(&digest.Challenge{Realm: "BroadWorks", Nonce: n, Algorithm: "MD5", QOP: qop},
			digest.Options{Method: "SUBSCRIBE", URI: uri, Username: user, Password: pw, Count: nc, Cnonce: cnonce})
		if err != nil {
			t.Fatal(err)
		}
		return c.String()
	}
	other := newDigestAuth("BroadWorks", nil)
	for _, tc := range []struct {
		name    string
		header  string
		advance time.Duration
		want    authVerdict
	}{
		{"qop auth", mk([]string{"auth"}, "479", "pw", nonce, 3, "583E4E76"), 0, authOK},
		{"no qop", mk(nil, "479", "pw", nonce, 0, ""), 0, authOK},
		{"wrong password", mk([]string{"auth"}, "479", "x", nonce, 1, "abc"), 0, authForbidden},
		{"unknown user", mk([]string{"auth"}, "480", "pw", nonce, 1, "abc"), 0, authForbidden},
		{"foreign nonce", mk([]string{"auth"}, "479", "pw", other.nonce(), 1, "abc"), 0, authChallenge},
		{"garbage nonce", mk([]string{"auth"}, "479", "pw", "abc", 1, "abc"), 0, authChallenge},
		{"stale nonce", mk([]string{"auth"}, "479", "pw", nonce, 1, "abc"), digestNonceTTL + time.Second, authStale},
		{"other realm", strings.Replace(mk(nil, "479", "pw", nonce, 0, ""), `realm="BroadWorks"`, `realm="x"`, 1), 0, authChallenge},
		{"not digest", "Basic Zm9vOmJhcg==", 0, authChallenge},
		{"sha-256", strings.Replace(mk(nil, "479", "pw", nonce, 0, ""), "algorithm=MD5", "algorithm=SHA-256", 1), 0, authChallenge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0).Add(tc.advance)
			req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "479", Host: "192.0.2.1", Port: 5060})
			req.AppendHeader(sip.NewHeader("Authorization", tc.header))
			if _, got := a.verify(req); got != tc.want {
				t.Fatalf("verdict %d, want %d (%s)", got, tc.want, tc.header)
			}
		})
	}
}
