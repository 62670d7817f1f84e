package xsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

// Wire limits of one Actions request.
const (
	maxResponseBody = 1 << 20          // bytes of a 2xx body read at most
	maxRetryAfter   = 30 * time.Second // cap on an XSP's Retry-After
	retryWaitMin    = 100 * time.Millisecond
	retryWaitMax    = 2 * time.Second
)

// xsp is one XSP: its base URL and the HTTP machinery every Actions request
// uses — Basic auth, the JSESSIONID cookie jar, the per-XSP in-flight bound
// and token bucket, the request deadline and the retry policy.
//
// Paths given to do are absolute from the XSP root, e.g.
// "/com.broadsoft.xsi-actions/v2.0/user/alice@example.com/services/DoNotDisturb",
// so the Events channel can use the same XSP (and cookie) for its short
// requests: subscriptions, heartbeats, event responses. The long-lived
// streaming POST must not go through do (it bounds the body and the time).
type xsp struct {
	base     string // scheme://host[:port], no trailing slash
	cfg      *Config
	logger   *slog.Logger
	jar      http.CookieJar
	inflight chan struct{} // semaphore, cap MaxInFlight
	waiting  atomic.Int64  // attempts waiting for an in-flight slot
	limiter  *rate.Limiter
	rt       *http.Transport
	client   *retryablehttp.Client

	// onBackoff, when set (tests), sees every wait the retry policy picks.
	onBackoff func(time.Duration)
}

// retryKey marks, in a request's context, whether the request may be retried
// (GET and PUT); CheckRetry cannot otherwise see the method when the
// connection failed and there is no response.
type retryKey struct{}

// newXSP builds the machinery for one XSP. cfg must outlive the xsp and is
// not changed by it.
func newXSP(baseURL string, cfg *Config, logger *slog.Logger) (*xsp, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("xsi: XSP URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("xsi: XSP URL %q: want http(s)://host[:port]", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("xsi: XSP URL %q: no credentials, query or fragment allowed", u.Redacted())
	}
	if cfg.MaxInFlight <= 0 || cfg.RateLimit <= 0 || cfg.RateBurst <= 0 || cfg.RequestTimeout <= 0 || cfg.MaxRetries < 0 {
		return nil, errors.New("xsi: MaxInFlight, RateLimit, RateBurst and RequestTimeout must be positive, MaxRetries not negative")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("xsi: cookie jar: %w", err)
	}
	x := &xsp{
		base:     u.String(),
		cfg:      cfg,
		logger:   logger.With("xsp", u.Redacted()),
		jar:      jar,
		inflight: make(chan struct{}, cfg.MaxInFlight),
		limiter:  rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst),
	}

	// Our own transport: the default one keeps only 2 idle connections per
	// host, so MaxInFlight concurrent calls would keep opening new ones.
	x.rt = http.DefaultTransport.(*http.Transport).Clone()
	x.rt.MaxIdleConns = cfg.MaxInFlight
	x.rt.MaxIdleConnsPerHost = cfg.MaxInFlight
	x.rt.MaxConnsPerHost = cfg.MaxInFlight

	x.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: &boundedTransport{x: x},
			Jar:       jar,
			// Xsi does not redirect; never follow one with credentials.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Logger:       nil, // we log retries ourselves, at debug level
		RetryWaitMin: retryWaitMin,
		RetryWaitMax: retryWaitMax,
		RetryMax:     cfg.MaxRetries,
		CheckRetry:   x.checkRetry,
		Backoff:      x.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return x, nil
}

// baseURL is the XSP's base URL, scheme://host[:port].
func (x *xsp) baseURL() string { return x.base }

// close drops the idle connections (their goroutines end).
func (x *xsp) close() { x.rt.CloseIdleConnections() }

// setHeaders puts what every Xsi request carries: Basic auth (required on
// every request even with a session cookie, research/xsi.md §2.2), the
// optional protocol version, and the body's content type.
func (x *xsp) setHeaders(h http.Header, hasBody bool) {
	h.Set("Authorization", "Basic "+basicAuth(x.cfg.Username, x.cfg.Password))
	if x.cfg.ProtocolVersion != "" {
		h.Set("X-BroadWorks-Protocol-Version", x.cfg.ProtocolVersion)
	}
	if hasBody {
		h.Set("Content-Type", "application/xml; charset=UTF-8")
	}
	h.Set("Accept", "application/xml")
}

func basicAuth(user, pass string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// do sends one request to path (absolute from the XSP root, may carry a
// query) and returns the 2xx body. The whole call, retries included, ends at
// cfg.RequestTimeout unless ctx ends earlier. GET and PUT are retried on
// connection errors, 429, 502, 503 and 504; POST and DELETE never are.
// A non-2xx answer is an *Error; a ctx end is returned wrapped (errors.Is
// finds context.DeadlineExceeded / context.Canceled).
func (x *xsp) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("xsi: path %q must start with /", path)
	}
	ctx, cancel := context.WithTimeout(ctx, x.cfg.RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, retryKey{}, method == http.MethodGet || method == http.MethodPut)
	// Whether the XSP got the request in full (any attempt): then a
	// deadline passing means it may still be working on it.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}})

	var raw any
	if body != nil {
		raw = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, x.base+path, raw)
	if err != nil {
		return nil, fmt.Errorf("xsi: %s %s: %w", method, path, err)
	}
	x.setHeaders(req.Header, body != nil)

	resp, err := x.client.Do(req)
	if err != nil {
		if resp != nil {
			// PassthroughErrorHandler hands back the last response with
			// the policy's error (ctx ended): close it, freeing the slot.
			resp.Body.Close()
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if ctx.Err() != nil && wrote.Load() {
			err = fmt.Errorf("%w: %w", errSentNoAnswer, err)
		}
		var lw *localWaitError
		if !wrote.Load() && errors.As(err, &lw) {
			err = fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return nil, fmt.Errorf("xsi: %s %s%s: %w", method, x.base, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := errorFromResponse(resp)
		x.logger.Debug("xsi request refused", "method", method, "path", path, "status", resp.StatusCode, "errorCode", e.ErrorCode)
		return nil, e
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("xsi: %s %s%s: reading body: %w", method, x.base, path, err)
	}
	if len(data) > maxResponseBody {
		return nil, fmt.Errorf("xsi: %s %s%s: body larger than %d bytes", method, x.base, path, maxResponseBody)
	}
	return data, nil
}

// checkRetry is the retry policy: only requests marked retryable (GET, PUT),
// only on connection errors and 429/502/503/504, and not when the wait the
// XSP asks for would outlast the deadline (then its answer is returned).
func (x *xsp) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		if err != nil {
			// The attempt's own error (it wraps the context's): whether
			// the request left at all (localWaitError) must survive.
			return false, err
		}
		return false, ctx.Err()
	}
	if ok, _ := ctx.Value(retryKey{}).(bool); !ok {
		return false, nil
	}
	if err != nil {
		// Connection errors; DefaultRetryPolicy refuses certificate,
		// scheme and redirect errors.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := retryAfter(resp); ok {
			if dl, has := ctx.Deadline(); has && time.Until(dl) < d {
				return false, nil
			}
		}
		return true, nil
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}

// backoff waits what Retry-After says (capped) on 429/503, else an
// exponential backoff with jitter.
func (x *xsp) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	d, ok := retryAfter(resp)
	if !ok {
		d = lo << min(attempt, 16)
		if d > hi || d <= 0 {
			d = hi
		}
		d = d/2 + rand.N(d/2+1)
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	x.logger.Debug("xsi request retry", "attempt", attempt+1, "status", status, "wait", d)
	if x.onBackoff != nil {
		x.onBackoff(d)
	}
	return d
}

// retryAfter reads Retry-After (seconds or HTTP date) of a 429/503, capped
// at maxRetryAfter.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(time.Until(t), 0)
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// boundedTransport admits each attempt (retries too) through the XSP's
// in-flight bound and token bucket, both waits ending with the request's
// context, then sends it on the XSP's own http.Transport.
type boundedTransport struct{ x *xsp }

func (b *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	x := b.x
	select {
	case x.inflight <- struct{}{}:
	default:
		x.waiting.Add(1)
		select {
		case x.inflight <- struct{}{}:
			x.waiting.Add(-1)
		case <-ctx.Done():
			x.waiting.Add(-1)
			closeBody(req)
			return nil, &localWaitError{what: "an in-flight slot", err: ctx.Err()}
		}
	}
	if err := x.limiter.Wait(ctx); err != nil {
		<-x.inflight
		closeBody(req)
		if ctx.Err() == nil {
			// The bucket would only have a token after the deadline.
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		} else {
			err = ctx.Err()
		}
		return nil, &localWaitError{what: "the rate limit", err: err}
	}
	MarkSent(ctx) // a send deadline (WithSendTimeout) starts now
	resp, err := x.rt.RoundTrip(req)
	if err != nil {
		<-x.inflight
		return nil, err
	}
	// The slot is held until the body is closed: the connection is busy
	// until then.
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { <-x.inflight }}
	return resp, nil
}

// localWaitError is a request that never left: the XSP's own in-flight
// bound or token bucket had no room before the deadline. It unwraps to the
// context error; it is not a sign that the XSP is down.
type localWaitError struct {
	what string
	err  error
}

func (e *localWaitError) Error() string { return "xsi: waiting for " + e.what + ": " + e.err.Error() }
func (e *localWaitError) Unwrap() error { return e.err }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// releaseBody frees the in-flight slot once, on Close.
type releaseBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (r *releaseBody) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

// isConnError reports whether err is a failure to reach the XSP at all (as
// opposed to an answer, or the caller's context ending): the case for
// failing over to the next XSP.
// errSentNoAnswer marks a request the XSP received in full but had not
// answered when the deadline passed: it may still apply it, later.
var errSentNoAnswer = errors.New("sent, no answer in time")

func isConnError(err error) bool {
	if err == nil {
		return false
	}
	var xe *Error
	if errors.As(err, &xe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
