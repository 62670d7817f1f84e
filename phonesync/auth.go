package phonesync

import (
	"container/heap"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Digest authentication of phones' SUBSCRIBEs (RFC 3261 §22.4 with RFC
// 2617 MD5, qop=auth or none; BroadWorks' realm is "BroadWorks", sip.md
// "What matters most" 5). The digest arithmetic is github.com/icholy/digest,
// the library sipgo's own client uses.
//
// Nonces are issued statelessly (an issue stamp and an HMAC of it under a
// key made at start), so a flood of unauthenticated SUBSCRIBEs costs no
// memory. A response proves knowledge of the password for one nonce and
// nonce count only, and covers neither the body nor the dialog, so without
// more an Authorization header seen once could be sent again with another
// body (issue 13 #5). State is therefore kept for every nonce that has
// passed full verification: the highest nonce count accepted with it (RFC
// 2617 §3.2.2 and RFC 7616 §3.4, "nc": a count seen twice is a replay; so
// with qop=auth it must increase, and without qop a nonce is good for one
// request, RFC 7616 §5.5 "Replay Attacks"). That table only grows by
// requests with a correct response for a known user, and is bounded
// (maxDigestNonces): when full, the entry of the oldest-issued nonce goes
// and a floor rises to it, every nonce issued at or before the floor being
// stale from then on, so dropping an entry can never make a used nonce
// count usable again; the entries of expired nonces go by age.

const (
	digestNonceTTL = 5 * time.Minute
	// maxDigestNonces bounds the nonce-count table: about 3 MB when full,
	// and above what honest phones use in a nonce's lifetime even when
	// sip.limits.max_subscriptions (default 50,000) phones all subscribe
	// again at once, each taking one nonce and re-using it.
	maxDigestNonces = 65536
)

type digestAuth struct {
	realm string
	creds map[string]string
	key   [32]byte
	ttl   time.Duration
	now   func() time.Time
	// epoch: issue stamps are nanoseconds since it on the monotonic clock,
	// so a step of the wall clock neither expires nonces early nor lets
	// them live longer. They mean nothing after a restart, nor need to:
	// the key is new then.
	epoch time.Time
	last  atomic.Int64 // the stamp of the last nonce issued: stamps are unique
	used  nonceCounts
}

func newDigestAuth(realm string, creds map[string]string) *digestAuth {
	a := &digestAuth{realm: realm, creds: creds, ttl: digestNonceTTL, now: time.Now}
	a.epoch = a.now()
	a.used.max = maxDigestNonces
	_, _ = rand.Read(a.key[:])
	return a
}

// clock is the stamp clock: nanoseconds since epoch.
func (a *digestAuth) clock() int64 { return int64(a.now().Sub(a.epoch)) }

// nonce is base64url(stamp || HMAC-SHA256(key, stamp)[:16]), the stamp a
// big-endian int64 unique to this nonce (two phones challenged in the same
// nanosecond must not share nonce counts).
func (a *digestAuth) nonce() string {
	stamp := a.clock()
	for {
		last := a.last.Load()
		if stamp <= last {
			stamp = last + 1
		}
		if a.last.CompareAndSwap(last, stamp) {
			break
		}
	}
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(stamp))
	copy(b[8:], a.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *digestAuth) mac(stamp []byte) []byte {
	m := hmac.New(sha256.New, a.key[:])
	m.Write(stamp)
	return m.Sum(nil)[:16]
}

// nonceLen is the length of our nonces: 24 bytes in unpadded base64.
const nonceLen = 32

// nonceStamp says whether we made nonce, and when.
func (a *digestAuth) nonceStamp(nonce string) (stamp int64, ours bool) {
	// The length first: the decoder skips CR and LF, so only this makes
	// the text of a nonce one-to-one with its bytes.
	if len(nonce) != nonceLen {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return 0, false
	}
	if !hmac.Equal(b[8:], a.mac(b[:8])) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[:8])), true
}

// fresh says whether a nonce issued at stamp is still within its lifetime
// at now (both stamp clock). A stamp ahead of the clock is fresh: only the
// tie-break in nonce puts it there (the HMAC says we issued it).
func (a *digestAuth) fresh(stamp, now int64) bool {
	return now-stamp <= int64(a.ttl)
}

func (a *digestAuth) challenge(stale bool) string {
	c := digest.Challenge{Realm: a.realm, Nonce: a.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

type authVerdict int

const (
	authOK        authVerdict = iota
	authChallenge             // no usable Authorization: 401
	authStale                 // our nonce, expired or below the floor: 401 stale=true
	authReplay                // correct response, nonce count already used: 401 stale=true
	authForbidden             // well-formed, wrong user or response: 403
)

// verify checks the request's Authorization header and, when it is good,
// uses up its nonce count.
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
	nc := usedOnce // without qop a nonce is good for one request (RFC 2617 §3.2.2)
	switch strings.ToLower(cred.QOP) {
	case "":
	case "auth":
		qop = []string{"auth"}
		if cred.Cnonce == "" || cred.Nc <= 0 {
			return "", authChallenge
		}
		nc = cred.Nc
	default:
		return "", authChallenge
	}
	stamp, ours := a.nonceStamp(cred.Nonce)
	if !ours {
		return "", authChallenge
	}
	// Stale before the response is checked (no MD5 for a nonce that cannot
	// pass); use checks again under its lock.
	if !a.fresh(stamp, a.clock()) || a.used.belowFloor(stamp) {
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
	// Only now, with a correct response for a known user, may the request
	// take a place in the table.
	return cred.Username, a.used.use(stamp, nc, a)
}

// usedOnce is the count recorded for a nonce used without qop: above any
// nc (a 32-bit hex number), so the nonce is spent.
const usedOnce = math.MaxInt

// nonceCounts is the bounded table nonce stamp -> highest nc accepted.
type nonceCounts struct {
	mu    sync.Mutex
	max   int
	nc    map[int64]int
	byAge stampHeap // the stamps in nc, the oldest-issued on top
	floor int64     // nonces issued at or before it are stale (their entries may be gone)
}

func (t *nonceCounts) belowFloor(stamp int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return stamp <= t.floor
}

// use records nc for the nonce issued at stamp if it is a new, higher count
// (authOK), and refuses it otherwise (authReplay). A nonce that expired or
// fell below the floor since verify looked is authStale.
//
// Why a replay gets stale=true, like an expired nonce: its response was
// correct, so whoever sent it either knows the password (an honest phone
// that re-used a nonce count: after a reboot, or requests overtaking each
// other over UDP), and stale=true lets it retry with a fresh nonce at once
// instead of taking the 401 as a wrong password (RFC 7616 §3.3, "stale");
// or it is an attacker with a captured header, which learns nothing it did
// not know and cannot answer the new nonce without the password. Nothing of
// the request is applied in either case.
func (t *nonceCounts) use(stamp int64, nc int, a *digestAuth) authVerdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := a.clock()
	if stamp <= t.floor || !a.fresh(stamp, now) {
		return authStale
	}
	if seen, ok := t.nc[stamp]; ok {
		if nc == usedOnce || nc <= seen {
			return authReplay
		}
		t.nc[stamp] = nc
		return authOK
	}
	if t.nc == nil {
		t.nc = make(map[int64]int)
	}
	// Expired entries go by age: they are the oldest, on top, and are
	// refused by age anyway, so the table need not remember them.
	for len(t.byAge) > 0 && !a.fresh(t.byAge[0], now) {
		delete(t.nc, heap.Pop(&t.byAge).(int64))
	}
	if len(t.nc) >= t.max {
		// Full of live nonces: the oldest-issued goes and the floor
		// rises to it, so that nonce (and any older) is stale from now
		// on rather than usable again with a count already seen.
		oldest := heap.Pop(&t.byAge).(int64)
		delete(t.nc, oldest)
		t.floor = max(t.floor, oldest)
		if stamp <= t.floor {
			return authStale // older than the one evicted: refused like it
		}
	}
	t.nc[stamp] = nc
	heap.Push(&t.byAge, stamp)
	return authOK
}

// stampHeap is a min-heap of nonce stamps (container/heap).
type stampHeap []int64

func (h stampHeap) Len() int           { return len(h) }
func (h stampHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h stampHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *stampHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *stampHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// authorize answers 401 or 403 itself and reports whether the request may
// go on. Nothing of the Authorization header but the user name is logged.
func (s *Server) authorize(req *sip.Request, tx sip.ServerTransaction, dn string) bool {
	user, v := s.auth.verify(req)
	switch v {
	case authOK:
		if user == dn {
			return true
		}
		// Right credentials, but for another phone: a phone may only
		// subscribe to (and change) its own line.
		s.log.Info("SUBSCRIBE for another phone's DN", "user", logUser(user), "dn", logUser(dn), "source", req.Source())
		s.metrics.forbidden.Inc()
		respond(tx, sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return false
	case authForbidden:
		s.log.Info("SUBSCRIBE with wrong credentials", "user", logUser(user), "source", req.Source())
		s.metrics.forbidden.Inc()
		respond(tx, sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return false
	case authReplay:
		s.log.Info("SUBSCRIBE with a nonce count already used (replay?)", "user", logUser(user), "source", req.Source())
		s.metrics.replayed.Inc()
	case authStale:
		s.metrics.stale.Inc()
	default:
		s.metrics.challenged.Inc()
	}
	res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", s.auth.challenge(v == authStale || v == authReplay)))
	respond(tx, res)
	return false
}

// logUser bounds a user name from the wire (digest user, From user) for a
// log line: a known one is short, an unknown one is whatever the peer sent.
func logUser(user string) string {
	const maxLen = 64
	if len(user) <= maxLen {
		return user
	}
	return strings.ToValidUTF8(user[:maxLen], "") + "…"
}
