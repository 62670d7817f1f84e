package phonesync

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sourceLimiter is a token bucket per source IP for SUBSCRIBEs
// (sip.limits.subscribe_rate / subscribe_burst). The map is bounded: when
// full, buckets idle long enough to have refilled are dropped (forgetting
// them changes nothing), and if that is not enough an eighth of the rest.
type sourceLimiter struct {
	limit   rate.Limit
	burst   int
	max     int
	refill  time.Duration // time for an empty bucket to fill
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// newSourceLimiter returns nil (no limit) when perSecond <= 0.
func newSourceLimiter(perSecond float64, burst, max int) *sourceLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst = max1(burst)
	return &sourceLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		max:     max1(max),
		refill:  time.Duration(float64(burst) / perSecond * float64(time.Second)),
		buckets: make(map[string]*bucket),
	}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// allow takes a token for source; when there is none it says how many
// seconds to put in Retry-After.
func (l *sourceLimiter) allow(source string, now time.Time) (ok bool, retryAfter int) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[source]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[source] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, max(1, int(math.Ceil(1/float64(l.limit))))
}

func (l *sourceLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.refill {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	n := len(l.buckets)/8 + 1
	for k := range l.buckets { // map order is random enough to spread the loss
		delete(l.buckets, k)
		if n--; n == 0 {
			return
		}
	}
}

func (l *sourceLimiter) size() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// setRate changes the rate and burst; every source starts again with a
// full bucket at the new values.
func (l *sourceLimiter) setRate(perSecond float64, burst int) {
	burst = max1(burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.burst = rate.Limit(perSecond), burst
	l.refill = time.Duration(float64(burst) / perSecond * float64(time.Second))
	clear(l.buckets)
}
