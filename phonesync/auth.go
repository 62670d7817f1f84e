package phonesync

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Digest authentication of phones' SUBSCRIBEs (RFC 3261 §22.4 with RFC
// 2617 MD5, qop=auth or none; BroadWorks' realm is "BroadWorks", sip.md
// "What matters most" 5). Nonces are stateless: a timestamp and an HMAC of
// it under a key made at start, so they cost no memory and expire on their
// own. The digest arithmetic is github.com/icholy/digest, the library
// sipgo's own client uses.

const digestNonceTTL = 5 * time.Minute

type digestAuth struct {
	realm string
	creds map[string]string
	key   [32]byte
	ttl   time.Duration
	now   func() time.Time
}

func newDigestAuth(realm string, creds map[string]string) *digestAuth {
	a := &digestAuth{realm: realm, creds: creds, ttl: digestNonceTTL, now: time.Now}
	_, _ = rand.Read(a.key[:])
	return a
}

// nonce is base64url(unix-nanos || HMAC-SHA256(key, unix-nanos)[:16]).
func (a *digestAuth) nonce() string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().UnixNano()))
	copy(b[8:], a.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *digestAuth) mac(ts []byte) []byte {
	m := hmac.New(sha256.New, a.key[:])
	m.Write(ts)
	return m.Sum(nil)[:16]
}

// checkNonce says whether we made nonce and whether it is still fresh.
func (a *digestAuth) checkNonce(nonce string) (ours, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false, false
	}
	if !hmac.Equal(b[8:], a.mac(b[:8])) {
		return false, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	age := a.now().Sub(issued)
	return true, age >= 0 && age <= a.ttl
}

func (a *digestAuth) challenge(stale bool) string {
	c := digest.Challenge{Realm: a.realm, Nonce: a.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

type authVerdict int

const (
	authOK        authVerdict = iota
	authChallenge             // no usable Authorization: 401
	authStale                 // our nonce, expired: 401 stale=true
	authForbidden             // well-formed, wrong user or response: 403
)

// verify checks the request's Authorization header.
func (a *digestAuth) verify(req *sip.Request) (user string, v authVerdict) {
	h := req.GetHeader("Authorization")
	if h == nil {
		return "", authChallenge
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username == "" || cred.Response == "" || cred.URI == "" {
		return "", authChallenge
	}
	if cred.Realm != a.realm {
		return "", authChallenge
	}
	if alg := strings.ToUpper(cred.Algorithm); alg != "" && alg != "MD5" {
		return "", authChallenge
	}
	var qop []string
	switch strings.ToLower(cred.QOP) {
	case "":
	case "auth":
		qop = []string{"auth"}
		if cred.Cnonce == "" || cred.Nc <= 0 {
			return "", authChallenge
		}
	default:
		return "", authChallenge
	}
	ours, fresh := a.checkNonce(cred.Nonce)
	switch {
	case !ours:
		return "", authChallenge
	case !fresh:
		return "", authStale
	}
	password, known := a.creds[cred.Username]
	if !known {
		return cred.Username, authForbidden
	}
	want, err := digest.Digest(&digest.Challenge{Realm: a.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: qop}, digest.Options{
		Method:   string(req.Method),
		URI:      cred.URI,
		Username: cred.Username,
		Password: password,
		Cnonce:   cred.Cnonce,
		Count:    cred.Nc,
	})
	if err != nil {
		return cred.Username, authForbidden
	}
	if subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(cred.Response))) != 1 {
		return cred.Username, authForbidden
	}
	return cred.Username, authOK
}

// authorize answers 401 or 403 itself and reports whether the request may
// go on.
func (s *Server) authorize(req *sip.Request, tx sip.ServerTransaction, dn string) bool {
	user, v := s.auth.verify(req)
	switch v {
	case authOK:
		if user == dn {
			return true
		}
		// Right credentials, but for another phone: a phone may only
		// subscribe to (and change) its own line.
		s.log.Info("SUBSCRIBE for another phone's DN", "user", user, "dn", dn, "source", req.Source())
		s.metrics.forbidden.Inc()
		respond(tx, sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
	case authForbidden:
		s.log.Info("SUBSCRIBE with wrong credentials", "user", user, "source", req.Source())
		s.metrics.forbidden.Inc()
		respond(tx, sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
	default:
		s.metrics.challenged.Inc()
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", s.auth.challenge(v == authStale)))
		respond(tx, res)
	}
	return false
}
