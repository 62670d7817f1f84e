package phonesync

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/broadworks-connector/connector/internal/testlog"
)

// challengeOf is the digest challenge of a 401, failing the test on
// anything else.
func challengeOf(t *testing.T, res *sip.Response) *digest.Challenge {
	t.Helper()
	if res.StatusCode != 401 {
		t.Fatalf("%d %s, want 401", res.StatusCode, res.Reason)
	}
	chal, err := digest.ParseChallenge(hdr(res, "WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	return chal
}

// TestDigestReplayRefused is issue 13 #5 over real sockets: the
// Authorization header of an accepted SetDoNotDisturb, sent again in a new
// dialog (new Call-ID, tags and branch) or in the same one, is refused 401
// stale=true and nothing of its body reaches the gateway; the phone's own
// next request with the next nonce count is accepted, and that count is
// good once.
func TestDigestReplayRefused(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			cfg := testConfig()
			cfg.RequireAuth = true
			s := startServer(t, cfg, svc)
			p := newPhone(t, "1001", transport, s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 { // nc 1 of its nonce
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			p.nextNotify()

			// The phone's change, authenticated with nc 2: the captured header.
			captured := p.authorization()
			if res := p.send(subOpts{body: dndBody("1001", true)}, captured); res.StatusCode != 200 {
				t.Fatalf("the phone's change: %d", res.StatusCode)
			}
			if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != "dnd 1001 true 1" {
				t.Fatalf("service calls %q", calls)
			}

			// The attacker: another UA, a new dialog, the captured header,
			// another body.
			attacker := newPhone(t, "1001", transport, s.Addr())
			attacker.user = ""
			if chal := challengeOf(t, attacker.send(subOpts{body: dndBody("1001", false)}, captured)); !chal.Stale {
				t.Fatalf("replay in a new dialog: challenge %+v, want stale=true", chal)
			}
			// The same header again in the phone's own dialog.
			if chal := challengeOf(t, p.send(subOpts{body: dndBody("1001", false)}, captured)); !chal.Stale {
				t.Fatalf("replay in the dialog: challenge %+v, want stale=true", chal)
			}
			waitSample(t, s, `connector_sip_subscribes_refused_total{reason="auth_replay"}`, 2)

			// The phone goes on with nc 3 on the same nonce: accepted, and
			// the only change the gateway sees since the first.
			next := p.authorization()
			if res := p.send(subOpts{body: dndBody("1001", false)}, next); res.StatusCode != 200 {
				t.Fatalf("the phone's next count: %d", res.StatusCode)
			}
			if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != "dnd 1001 false 1" {
				t.Fatalf("service calls %q (a replay applied?)", calls)
			}
			// nc 3 again, even from the phone itself, is a replay.
			challengeOf(t, p.send(subOpts{body: dndBody("1001", true)}, next))
			waitSample(t, s, `connector_sip_subscribes_refused_total{reason="auth_replay"}`, 3)

			// A phone that answers the stale challenge is served at once.
			if res := p.subscribe(subOpts{body: dndBody("1001", true)}); res.StatusCode != 200 {
				t.Fatalf("after the replays: %d", res.StatusCode)
			}
			if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != "dnd 1001 true 1" {
				t.Fatalf("service calls %q", calls)
			}
		})
	}
}

// TestDigestStaleNonce: a nonce of ours past its lifetime is answered 401
// stale=true, and the phone's retry with the new nonce is accepted.
func TestDigestStaleNonce(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.RequireAuth = true
	var skew atomic.Int64 // added to the server's digest clock
	s := startServer(t, cfg, svc, func(s *Server) {
		s.auth.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	skew.Store(int64(digestNonceTTL + time.Second))
	chal := challengeOf(t, p.send(subOpts{body: dndBody("1001", true)}, p.authorization()))
	if !chal.Stale || chal.Realm != "BroadWorks" || !chal.SupportsQOP("auth") {
		t.Fatalf("expired nonce: challenge %+v, want stale=true", chal)
	}
	waitSample(t, s, `connector_sip_subscribes_refused_total{reason="auth_stale"}`, 1)
	if calls := svc.takeCalls(); len(calls) != 0 {
		t.Fatalf("service calls %q", calls)
	}
	p.challenge, p.nc = chal, 0
	if res := p.send(subOpts{body: dndBody("1001", true)}, p.authorization()); res.StatusCode != 200 {
		t.Fatalf("retry with the new nonce: %d", res.StatusCode)
	}
	if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != "dnd 1001 true 1" {
		t.Fatalf("service calls %q", calls)
	}
}

// TestDigestSecretsNotLogged: accepted, wrong, replayed and stale
// Authorization headers leave no nonce, cnonce, response or header in the
// log, even at debug level; the user name and the
// source are there.
func TestDigestSecretsNotLogged(t *testing.T) {
	leakCheck(t)
	var logs testlog.Buffer
	svc := newFakeSvc("1001", "1002")
	cfg := testConfig()
	cfg.RequireAuth = true
	s, err := NewServer(cfg, svc, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); testServers.CompareAndDelete(t, s) })
	testServers.Store(t, s)

	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	var sent []string
	good := p.authorization()
	sent = append(sent, good)
	if res := p.send(subOpts{body: dndBody("1001", true)}, good); res.StatusCode != 200 {
		t.Fatalf("change: %d", res.StatusCode)
	}
	challengeOf(t, p.send(subOpts{body: dndBody("1001", false)}, good)) // replay
	p.password = "wrong"
	wrong := p.authorization()
	sent = append(sent, wrong)
	if res := p.send(subOpts{}, wrong); res.StatusCode != 403 {
		t.Fatalf("wrong password: %d", res.StatusCode)
	}
	other := newPhone(t, "1002", "UDP", s.Addr())
	if res := other.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE 1002: %d", res.StatusCode)
	}
	other.nextNotify() // answered before the test ends, not while the phone closes
	other.dn = "1001"  // 1002's credentials for 1001's line
	foreign := other.authorization()
	sent = append(sent, foreign)
	if res := other.send(subOpts{newCall: true}, foreign); res.StatusCode != 403 {
		t.Fatalf("another phone's line: %d", res.StatusCode)
	}

	out := logs.String()
	if !strings.Contains(out, "user=1001") || !strings.Contains(out, "replay") {
		t.Fatalf("the refusals are not logged with their user:\n%s", out)
	}
	for _, h := range sent {
		cred, err := digest.ParseCredentials(h)
		if err != nil {
			t.Fatal(err)
		}
		for what, secret := range map[string]string{"nonce": cred.Nonce, "cnonce": cred.Cnonce, "response": cred.Response} {
			if strings.Contains(out, secret) {
				t.Errorf("the log holds a %s:\n%s", what, out)
			}
		}
	}
	if low := strings.ToLower(out); strings.Contains(low, "digest username") || strings.Contains(low, "authorization:") {
		t.Errorf("the log holds an Authorization header:\n%s", out)
	}
}
