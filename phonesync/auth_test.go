package phonesync

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

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
// and without qop, stale and foreign nonces. Each case takes a nonce of its
// own (a nonce's counts are used up by the cases that pass).
func TestDigestVerify(t *testing.T) {
	a, clock := testDigestAuth(t, map[string]string{"479": "pw"})
	uri := "sip:479@192.0.2.1:5060"
	mk := func(qop []string, user, pw, n string, nc int, cnonce string) string {
		return digestHeader(t, qop, user, pw, n, uri, nc, cnonce)
	}
	other := newDigestAuth("BroadWorks", nil)
	for _, tc := range []struct {
		name    string
		header  func(nonce string) string
		advance time.Duration
		want    authVerdict
	}{
		{"qop auth", func(n string) string { return mk([]string{"auth"}, "479", "pw", n, 3, "583E4E76") }, 0, authOK},
		{"no qop", func(n string) string { return mk(nil, "479", "pw", n, 0, "") }, 0, authOK},
		{"wrong password", func(n string) string { return mk([]string{"auth"}, "479", "x", n, 1, "abc") }, 0, authForbidden},
		{"unknown user", func(n string) string { return mk([]string{"auth"}, "480", "pw", n, 1, "abc") }, 0, authForbidden},
		{"foreign nonce", func(string) string { return mk([]string{"auth"}, "479", "pw", other.nonce(), 1, "abc") }, 0, authChallenge},
		{"garbage nonce", func(string) string { return mk([]string{"auth"}, "479", "pw", "abc", 1, "abc") }, 0, authChallenge},
		{"stale nonce", func(n string) string { return mk([]string{"auth"}, "479", "pw", n, 1, "abc") }, digestNonceTTL + time.Nanosecond, authStale},
		{"at the end of its life", func(n string) string { return mk([]string{"auth"}, "479", "pw", n, 1, "abc") }, digestNonceTTL, authOK},
		{"other realm", func(n string) string {
			return strings.Replace(mk(nil, "479", "pw", n, 0, ""), `realm="BroadWorks"`, `realm="x"`, 1)
		}, 0, authChallenge},
		{"not digest", func(string) string { return "Basic Zm9vOmJhcg==" }, 0, authChallenge},
		{"sha-256", func(n string) string {
			return strings.Replace(mk(nil, "479", "pw", n, 0, ""), "algorithm=MD5", "algorithm=SHA-256", 1)
		}, 0, authChallenge},
		{"nonce with a line break", func(n string) string { return mk([]string{"auth"}, "479", "pw", n[:10]+"\n"+n[10:], 1, "abc") }, 0, authChallenge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Add(int64(time.Millisecond)) // a stamp of its own, not one ahead of the clock
			nonce := a.nonce()
			header := tc.header(nonce)
			clock.Add(int64(tc.advance))
			defer clock.Add(-int64(tc.advance))
			if _, got := a.verify(subscribeWith(header)); got != tc.want {
				t.Fatalf("verdict %d, want %d (%s)", got, tc.want, header)
			}
		})
	}
}

// testDigestAuth is a digestAuth on a clock the test moves (nanoseconds
// added to a fixed instant).
func testDigestAuth(t testing.TB, creds map[string]string) (*digestAuth, *atomic.Int64) {
	t.Helper()
	a := newDigestAuth("BroadWorks", creds)
	var clock atomic.Int64
	base := time.Unix(1_800_000_000, 0)
	a.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }
	a.epoch = base
	return a, &clock
}

func digestHeader(t testing.TB, qop []string, user, pw, nonce, uri string, nc int, cnonce string) string {
	t.Helper()
	c, err := digest.Digest(&digest.Challenge{Realm: "BroadWorks", Nonce: nonce, Algorithm: "MD5", QOP: qop},
		digest.Options{Method: "SUBSCRIBE", URI: uri, Username: user, Password: pw, Count: nc, Cnonce: cnonce})
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

func subscribeWith(authorization string) *sip.Request {
	req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "479", Host: "192.0.2.1", Port: 5060})
	req.AppendHeader(sip.NewHeader("Authorization", authorization))
	return req
}

// TestDigestNonceCount: with qop=auth a nonce's count must increase, the
// same header (or the same count written another way) is a replay; without
// qop a nonce is good once; a refused response uses nothing up.
func TestDigestNonceCount(t *testing.T) {
	a, clock := testDigestAuth(t, map[string]string{"479": "pw"})
	uri := "sip:479@192.0.2.1:5060"
	verify := func(h string) authVerdict {
		_, v := a.verify(subscribeWith(h))
		return v
	}
	auth := func(n string, nc int) string {
		return digestHeader(t, []string{"auth"}, "479", "pw", n, uri, nc, "0a4f113b")
	}

	n := a.nonce()
	steps := []struct {
		name   string
		header string
		want   authVerdict
	}{
		{"wrong password first", digestHeader(t, []string{"auth"}, "479", "nope", n, uri, 1, "0a4f113b"), authForbidden},
		{"unknown user", digestHeader(t, []string{"auth"}, "480", "pw", n, uri, 1, "0a4f113b"), authForbidden},
		{"nc 1", auth(n, 1), authOK},
		{"nc 1 again", auth(n, 1), authReplay},
		{"nc 1 written short", strings.Replace(auth(n, 1), "nc=00000001", "nc=1", 1), authReplay},
		{"nc 1 with a sign (not a token)", strings.Replace(auth(n, 1), "nc=00000001", "nc=+1", 1), authChallenge},
		{"nc 1 with leading zeros", strings.Replace(auth(n, 1), "nc=00000001", "nc=000000000001", 1), authReplay},
		{"nc 2", auth(n, 2), authOK},
		{"nc 2 again", auth(n, 2), authReplay},
		{"nc 1 after 2", auth(n, 1), authReplay},
		{"nc 5 (skipping is allowed)", auth(n, 5), authOK},
		{"nc 4 after 5", auth(n, 4), authReplay},
		{"no qop on a counted nonce", digestHeader(t, nil, "479", "pw", n, uri, 0, ""), authReplay},
		{"nc 6", auth(n, 6), authOK},
	}
	for _, st := range steps {
		if got := verify(st.header); got != st.want {
			t.Fatalf("%s: verdict %d, want %d", st.name, got, st.want)
		}
	}

	m := a.nonce()
	noQOP := digestHeader(t, nil, "479", "pw", m, uri, 0, "")
	for i, want := range []authVerdict{authOK, authReplay, authReplay} {
		if got := verify(noQOP); got != want {
			t.Fatalf("no qop, use %d: verdict %d, want %d", i+1, got, want)
		}
	}
	if got := verify(auth(m, 1)); got != authReplay {
		t.Fatalf("qop on a nonce used without: verdict %d, want replay", got)
	}

	// Refused requests leave nothing behind.
	if got := len(a.used.nc); got != 2 {
		t.Fatalf("%d nonces in the table, want 2", got)
	}

	// Past its lifetime a nonce is stale, whatever its count.
	clock.Add(int64(digestNonceTTL + time.Second))
	for _, h := range []string{auth(n, 7), auth(n, 6), noQOP} {
		if got := verify(h); got != authStale {
			t.Fatalf("expired: verdict %d, want stale", got)
		}
	}
}

// TestDigestNonceTableCap: a full table drops the oldest-issued nonce and
// raises its floor to it, so an evicted nonce is stale for every count and
// never opens a replay; expired entries go by age before anything is
// evicted.
func TestDigestNonceTableCap(t *testing.T) {
	const size = 16
	a, clock := testDigestAuth(t, map[string]string{"479": "pw"})
	a.used.max = size
	uri := "sip:479@192.0.2.1:5060"
	verify := func(n string, nc int) authVerdict {
		_, v := a.verify(subscribeWith(digestHeader(t, []string{"auth"}, "479", "pw", n, uri, nc, "cafe")))
		return v
	}

	unused := a.nonce() // issued first, never used
	var nonces []string
	for range size {
		clock.Add(int64(time.Millisecond))
		n := a.nonce()
		nonces = append(nonces, n)
	}
	// Used in reverse order of issue: eviction goes by issue, not by use.
	for i := len(nonces) - 1; i >= 0; i-- {
		if got := verify(nonces[i], 1); got != authOK {
			t.Fatalf("nonce %d: verdict %d", i, got)
		}
	}
	if len(a.used.nc) != size || a.used.floor != 0 {
		t.Fatalf("table %d entries, floor %d", len(a.used.nc), a.used.floor)
	}
	// Three more nonces into the full table: each takes the place of the
	// oldest-issued one there.
	const evicted = 3
	for range evicted {
		if got := verify(a.nonce(), 1); got != authOK {
			t.Fatalf("a nonce into the full table: verdict %d", got)
		}
	}
	if got := len(a.used.nc); got != size {
		t.Fatalf("%d entries after eviction, want %d", got, size)
	}
	for i, n := range append([]string{unused}, nonces[:evicted]...) {
		for _, nc := range []int{1, 2, 1000} {
			if got := verify(n, nc); got != authStale {
				t.Fatalf("evicted nonce %d, nc %d: verdict %d, want stale", i, nc, got)
			}
		}
	}
	for i, n := range nonces[evicted:] {
		if got := verify(n, 1); got != authReplay {
			t.Fatalf("kept nonce %d, nc 1: verdict %d, want replay", i, got)
		}
		if got := verify(n, 2); got != authOK {
			t.Fatalf("kept nonce %d, nc 2: verdict %d, want ok", i, got)
		}
	}

	// Once they are all past their lifetime, a new nonce drops them by
	// age instead of evicting, and the floor stays where it was.
	floor := a.used.floor
	clock.Add(int64(digestNonceTTL) + int64(time.Second))
	if got := verify(a.nonce(), 1); got != authOK {
		t.Fatalf("after expiry: verdict %d", got)
	}
	if len(a.used.nc) != 1 || len(a.used.byAge) != 1 || a.used.floor != floor {
		t.Fatalf("after expiry: %d entries, floor moved %d -> %d", len(a.used.nc), floor, a.used.floor)
	}
}

// TestDigestNonceTableNeverReopens drives a small table with many nonces
// and counts, in random order, against a model of what was accepted: no
// (nonce, count) at or below one accepted before is ever accepted again,
// however the table evicts and drops expired entries.
func TestDigestNonceTableNeverReopens(t *testing.T) {
	a, clock := testDigestAuth(t, map[string]string{"479": "pw"})
	a.used.max = 8
	uri := "sip:479@192.0.2.1:5060"
	rng := rand.New(rand.NewPCG(1, 2))
	var nonces []string
	highest := map[string]int{}
	for i := range 2000 {
		if len(nonces) == 0 || rng.IntN(4) == 0 {
			nonces = append(nonces, a.nonce())
		}
		clock.Add(int64(rng.IntN(int(5 * time.Second))))
		n := nonces[rng.IntN(len(nonces))]
		nc := 1 + rng.IntN(6)
		_, v := a.verify(subscribeWith(digestHeader(t, []string{"auth"}, "479", "pw", n, uri, nc, "cafe")))
		if v == authOK {
			if nc <= highest[n] {
				t.Fatalf("step %d: nc %d accepted after %d", i, nc, highest[n])
			}
			highest[n] = nc
		}
		if len(a.used.nc) > a.used.max || len(a.used.byAge) != len(a.used.nc) {
			t.Fatalf("step %d: %d entries over the cap %d", i, len(a.used.nc), a.used.max)
		}
	}
}

// BenchmarkDigestVerify: a correct qop=auth header, on a nonce re-used with
// the next count (the steady state of a phone), and on a new nonce each
// time, filling the table to its cap so that each evicts the oldest.
func BenchmarkDigestVerify(b *testing.B) {
	uri := "sip:479@192.0.2.1:5060"
	b.Run("next count", func(b *testing.B) {
		a, _ := testDigestAuth(b, map[string]string{"479": "pw"})
		n := a.nonce()
		headers := make([]*sip.Request, b.N)
		for i := range headers {
			headers[i] = subscribeWith(digestHeader(b, []string{"auth"}, "479", "pw", n, uri, i+1, "cafe"))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, v := a.verify(headers[i]); v != authOK {
				b.Fatalf("verdict %d", v)
			}
		}
	})
	b.Run("new nonce", func(b *testing.B) {
		a, clock := testDigestAuth(b, map[string]string{"479": "pw"})
		headers := make([]*sip.Request, b.N)
		for i := range headers {
			clock.Add(1)
			headers[i] = subscribeWith(digestHeader(b, []string{"auth"}, "479", "pw", a.nonce(), uri, 1, "cafe"))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, v := a.verify(headers[i]); v != authOK {
				b.Fatalf("verdict %d", v)
			}
		}
	})
}

// TestLogUserBounded: a user name from the wire reaches a log line cut to
// 64 bytes of valid UTF-8.
func TestLogUserBounded(t *testing.T) {
	for _, in := range []string{"1001", strings.Repeat("9", 64), strings.Repeat("ä", 4096), strings.Repeat("x", 63) + "\xff\xfe"} {
		out := logUser(in)
		if len(in) <= 64 && out != in {
			t.Errorf("logUser(%q) = %q", in, out)
		}
		if len(in) > 64 && (len(out) > 64+len("…") || !utf8.ValidString(out)) {
			t.Errorf("logUser(%d bytes) = %q (%d bytes)", len(in), out, len(out))
		}
	}
}
