package csta

import (
	"container/list"
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/internal/logguard"
)

// Limits a flood from one peer cannot exceed (issue 13): connections per
// source, the pre-session deadline, the global monitor cap (Server) and the
// failed-login throttle (here).

// sourceOf is the address a peer is counted by, from "host:port": the IPv4
// address, or the IPv6 /64 prefix (one host or site usually holds a whole
// /64 and may pick any address in it). It is also the "source" attribute
// of the connection's log lines, which logguard rate limits by.
func sourceOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote // net.Pipe's "pipe", tests
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// wire quotes a value that came from the peer as a bounded, escaped excerpt
// for a log line (logguard bounds plain strings, but not named string types
// like DeviceID, nor slices).
func wire(s string) string { return logguard.Excerpt([]byte(s), logguard.WireExcerptBytes) }

// Why a login attempt is refused before its credentials are checked.
const (
	loginThrottled = "throttled"  // within the back-off after a failure
	loginLockedOut = "locked_out" // login_lockout_after failures reached
)

// loginThrottleEntries bounds each table of the throttle; when full, the
// record with the oldest failure is dropped. Spoofed sources and invented
// user names can push records out, but never grow memory.
const loginThrottleEntries = 10000

// loginBackoffBase is the first back-off after the free failures; each
// further failure doubles it, up to login_lockout.
const loginBackoffBase = time.Second

// loginThrottle counts failed StartApplicationSession attempts per source
// address and per user name (of a listener). An attempt is refused without
// looking at its password when either is throttled, so neither a farm of
// addresses guessing one user nor one address guessing many users gets far.
//
// A user name is tracked whether or not the listener has such a user, so the
// throttle's answers do not tell which names exist. A successful login
// clears its user's record, not its source's: an attacker holding one valid
// account must not be able to wipe its source's failures by logging in with
// it between guesses at other accounts.
//
// Past the free failures, attempts of one source or user are taken one at a
// time (inflight), so a burst of concurrent connections cannot all be
// checked before the first failure is recorded.
type loginThrottle struct {
	mu     sync.Mutex
	source attemptTable
	user   attemptTable
}

type loginPolicy struct {
	free      int           // failures before the back-off
	lockAfter int           // failures that lock out
	lockout   time.Duration // how long, and how long a record is remembered
}

func policyOf(cfg *Config) loginPolicy {
	return loginPolicy{free: cfg.LoginFailuresBeforeBackoff, lockAfter: cfg.LoginLockoutAfter, lockout: cfg.LoginLockout}
}

type attempts struct {
	key      string
	failures int
	inflight int
	last     time.Time // of the last failure
}

// attemptTable is a bounded map with its entries in order of last use
// (front: most recent), so the oldest is dropped in O(1).
type attemptTable struct {
	byKey map[string]*list.Element
	order list.List
}

func (t *attemptTable) get(key string) *attempts {
	if e := t.byKey[key]; e != nil {
		return e.Value.(*attempts)
	}
	return nil
}

func (t *attemptTable) getOrAdd(key string) *attempts {
	if e := t.byKey[key]; e != nil {
		t.order.MoveToFront(e)
		return e.Value.(*attempts)
	}
	if t.byKey == nil {
		t.byKey = make(map[string]*list.Element)
	}
	if len(t.byKey) >= loginThrottleEntries {
		oldest := t.order.Back()
		t.order.Remove(oldest)
		delete(t.byKey, oldest.Value.(*attempts).key)
	}
	a := &attempts{key: key}
	t.byKey[key] = t.order.PushFront(a)
	return a
}

func (t *attemptTable) remove(a *attempts) {
	if e := t.byKey[a.key]; e != nil && e.Value == a {
		t.order.Remove(e)
		delete(t.byKey, a.key)
	}
}

// expire forgets the failures of a record quiet for lockout.
func (p loginPolicy) expire(a *attempts, now time.Time) {
	if a.failures > 0 && a.inflight == 0 && now.Sub(a.last) >= p.lockout {
		a.failures = 0
	}
}

// verdict is "" when an attempt may be checked, else why not.
func (p loginPolicy) verdict(a *attempts, now time.Time) string {
	if a == nil {
		return ""
	}
	p.expire(a, now)
	switch {
	case a.failures >= p.lockAfter:
		return loginLockedOut // expire lifts it lockout after the last failure
	case a.failures+a.inflight < p.free:
		return ""
	case a.inflight > 0:
		return loginThrottled // one at a time past the free failures
	case a.failures < p.free:
		return ""
	}
	if now.Before(a.last.Add(p.backoff(a.failures))) {
		return loginThrottled
	}
	return ""
}

// backoff after n failures (n ≥ free): 1 s, 2 s, 4 s, … at most lockout.
func (p loginPolicy) backoff(n int) time.Duration {
	shift := n - p.free
	if shift >= 30 {
		return p.lockout
	}
	return min(loginBackoffBase<<shift, p.lockout)
}

// loginAttempt is one attempt let through to the password check; done
// records its outcome.
type loginAttempt struct {
	t            *loginThrottle
	source, user string
}

// userKey names a user of one listener; hashed so a long name sent by a
// client costs the table 32 bytes.
func userKey(listener, name string) string {
	h := sha256.Sum256([]byte(listener + "\x00" + name))
	return string(h[:])
}

// begin asks whether an attempt from source as user (key from userKey, ""
// for none) may be checked. When it may not, the reason is returned and
// nothing is recorded: a refused attempt neither extends nor shortens the
// back-off.
func (t *loginThrottle) begin(p loginPolicy, source, user string, now time.Time) (*loginAttempt, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.source.get(source)
	var u *attempts
	if user != "" {
		u = t.user.get(user)
	}
	// The lockout wins over the back-off when both apply.
	vs, vu := p.verdict(s, now), p.verdict(u, now)
	switch {
	case vs == loginLockedOut || vu == loginLockedOut:
		return nil, loginLockedOut
	case vs != "" || vu != "":
		return nil, loginThrottled
	}
	t.source.getOrAdd(source).inflight++
	if user != "" {
		t.user.getOrAdd(user).inflight++
	}
	return &loginAttempt{t: t, source: source, user: user}, ""
}

// done records the attempt's outcome.
func (a *loginAttempt) done(ok bool, now time.Time) {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	finish := func(tab *attemptTable, key string, clear bool) {
		r := tab.get(key)
		if r == nil { // evicted meanwhile
			if ok {
				return
			}
			r = tab.getOrAdd(key)
		} else if r.inflight > 0 {
			r.inflight--
		}
		switch {
		case clear:
			r.failures = 0
		case !ok:
			r.failures++
			r.last = now
			tab.getOrAdd(key) // most recent
		}
		if r.failures == 0 && r.inflight == 0 {
			tab.remove(r)
		}
	}
	finish(&t.source, a.source, false)
	if a.user != "" {
		finish(&t.user, a.user, ok)
	}
}

// size is the number of records per table, for tests.
func (t *loginThrottle) size() (sources, users int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.source.byKey), len(t.user.byKey)
}
