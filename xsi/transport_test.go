package xsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// actLeakCheck verifies, after every other cleanup of t (servers, clients)
// has run, that no goroutine was left behind. Call it first in a test.
// Goroutines alive before the test (e.g. other tests') are ignored.
func actLeakCheck(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// actTestConfig is a Config for tests against servers: generous limits unless
// the test narrows them.
func actTestConfig(servers ...string) Config {
	cfg := DefaultConfig()
	cfg.Servers = servers
	cfg.Username = "admin@example.com"
	cfg.Password = "s3cret"
	cfg.ProtocolVersion = "22.0"
	cfg.RequestTimeout = 5 * time.Second
	cfg.MaxInFlight = 8
	cfg.RateLimit = 10000
	cfg.RateBurst = 1000
	cfg.MaxRetries = 2
	return cfg
}

// actServer is an httptest server on 127.0.0.1 closed at test end.
func actServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func actTestXSP(t testing.TB, base string, cfg *Config) *xsp {
	t.Helper()
	x, err := newXSP(base, cfg, nil)
	if err != nil {
		t.Fatalf("newXSP: %v", err)
	}
	t.Cleanup(func() {
		x.close()
		if n := len(x.inflight); n != 0 {
			t.Errorf("%d in-flight slots still held at test end", n)
		}
	})
	return x
}

func TestXSPRequestHeadersAndCookie(t *testing.T) {
	actLeakCheck(t)
	type seen struct {
		method, path, auth, version, ctype, cookie, body string
	}
	var mu sync.Mutex
	var got []seen
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c, _ := r.Cookie("JSESSIONID")
		s := seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("X-BroadWorks-Protocol-Version"), r.Header.Get("Content-Type"), "", string(b)}
		if c != nil {
			s.cookie = c.Value
		}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "abc123", Path: "/com.broadsoft.xsi-actions"})
		fmt.Fprint(w, "<ok/>")
	}))
	cfg := actTestConfig(srv.URL)
	x := actTestXSP(t, srv.URL+"/", &cfg)
	if x.baseURL() != srv.URL {
		t.Fatalf("baseURL = %q, want %q", x.baseURL(), srv.URL)
	}
	ctx := context.Background()
	if b, err := x.do(ctx, http.MethodGet, "/com.broadsoft.xsi-actions/v2.0/user/a%40b/services/DoNotDisturb", nil); err != nil || string(b) != "<ok/>" {
		t.Fatalf("GET: %q, %v", b, err)
	}
	if _, err := x.do(ctx, http.MethodPut, "/com.broadsoft.xsi-actions/v2.0/user/a%40b/services/DoNotDisturb", []byte("<x/>")); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	wantAuth := "Basic YWRtaW5AZXhhbXBsZS5jb206czNjcmV0" // admin@example.com:s3cret
	if len(got) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(got))
	}
	for i, s := range got {
		if s.auth != wantAuth || s.version != "22.0" {
			t.Errorf("request %d: auth %q version %q", i, s.auth, s.version)
		}
		if s.path != "/com.broadsoft.xsi-actions/v2.0/user/a%40b/services/DoNotDisturb" {
			t.Errorf("request %d: path %q", i, s.path)
		}
	}
	if got[0].cookie != "" || got[1].cookie != "abc123" {
		t.Errorf("cookies = %q, %q; want none then abc123", got[0].cookie, got[1].cookie)
	}
	if got[1].method != http.MethodPut || got[1].body != "<x/>" || got[1].ctype != "application/xml; charset=UTF-8" {
		t.Errorf("PUT seen as %+v", got[1])
	}
}

func TestNewXSPRejects(t *testing.T) {
	cfg := actTestConfig()
	for _, u := range []string{"", "ftp://h", "http://", "http://u:p@h", "http://h?x=1", "::"} {
		if _, err := newXSP(u, &cfg, nil); err == nil {
			t.Errorf("newXSP(%q) accepted", u)
		}
	}
	bad := cfg
	bad.MaxInFlight = 0
	if _, err := newXSP("http://127.0.0.1:1", &bad, nil); err == nil {
		t.Error("MaxInFlight 0 accepted")
	}
}

func TestXSPRetryPolicy(t *testing.T) {
	actLeakCheck(t)
	tests := []struct {
		name       string
		method     string
		statuses   []int // answered in turn, then 200
		retryAfter string
		wantCalls  int
		wantStatus int // 0: success
		wantWait   time.Duration
	}{
		{"GET 503 Retry-After honoured", http.MethodGet, []int{503}, "1", 2, 0, time.Second},
		{"PUT 429 retried", http.MethodPut, []int{429}, "0", 2, 0, 0},
		{"GET 502 then 504 retried", http.MethodGet, []int{502, 504}, "", 3, 0, -1},
		{"GET gives up after MaxRetries", http.MethodGet, []int{503, 503, 503, 503}, "0", 3, 503, 0},
		{"POST 503 never retried", http.MethodPost, []int{503}, "0", 1, 503, -1},
		{"DELETE 502 never retried", http.MethodDelete, []int{502}, "", 1, 502, -1},
		{"GET 500 not retried", http.MethodGet, []int{500}, "", 1, 500, -1},
		{"GET 404 not retried", http.MethodGet, []int{404}, "", 1, 404, -1},
		{"GET Retry-After beyond deadline not waited", http.MethodGet, []int{503}, "20", 1, 503, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				if n <= len(tc.statuses) {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.statuses[n-1])
					return
				}
				fmt.Fprint(w, "<done/>")
			}))
			cfg := actTestConfig(srv.URL)
			cfg.RequestTimeout = 4 * time.Second
			x := actTestXSP(t, srv.URL, &cfg)
			var waits []time.Duration
			x.onBackoff = func(d time.Duration) { waits = append(waits, d) }
			start := time.Now()
			_, err := x.do(context.Background(), tc.method, "/p", []byte("<b/>"))
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("server saw %d calls, want %d", calls.Load(), tc.wantCalls)
			}
			if tc.wantStatus == 0 && err != nil {
				t.Fatalf("do: %v", err)
			}
			if tc.wantStatus != 0 {
				var xe *Error
				if !errors.As(err, &xe) || xe.Status != tc.wantStatus {
					t.Fatalf("err = %v, want *Error status %d", err, tc.wantStatus)
				}
			}
			if tc.wantWait >= 0 && len(waits) > 0 {
				if waits[0] != tc.wantWait {
					t.Errorf("first wait %v, want %v (Retry-After)", waits[0], tc.wantWait)
				}
				if time.Since(start) < tc.wantWait {
					t.Errorf("returned after %v, before the Retry-After wait", time.Since(start))
				}
			}
		})
	}
}

func TestXSPRetriesConnectionErrorsOnlyForGetPut(t *testing.T) {
	actLeakCheck(t)
	// A server that drops the first connection of each request kind.
	var calls atomic.Int32
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return
		}
		fmt.Fprint(w, "<ok/>")
	}))
	cfg := actTestConfig(srv.URL)
	x := actTestXSP(t, srv.URL, &cfg)
	if _, err := x.do(context.Background(), http.MethodGet, "/p", nil); err != nil {
		t.Fatalf("GET after dropped connection: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("GET: %d calls, want 2", calls.Load())
	}
	calls.Store(0)
	_, err := x.do(context.Background(), http.MethodPost, "/p", []byte("<b/>"))
	if err == nil || calls.Load() != 1 {
		t.Fatalf("POST: err %v after %d calls; want an error after 1", err, calls.Load())
	}
	if !isConnError(err) {
		t.Errorf("isConnError(%v) = false", err)
	}
}

func TestXSPInFlightBound(t *testing.T) {
	actLeakCheck(t)
	const bound, total = 3, 20
	var cur, peak atomic.Int32
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		cur.Add(-1)
		fmt.Fprint(w, "<ok/>")
	}))
	cfg := actTestConfig(srv.URL)
	cfg.MaxInFlight = bound
	x := actTestXSP(t, srv.URL, &cfg)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for range total {
		wg.Go(func() {
			if _, err := x.do(context.Background(), http.MethodGet, "/p", nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p > bound || p < 1 {
		t.Fatalf("peak concurrent requests at the server = %d, want 1..%d", p, bound)
	}
}

func TestXSPInFlightWaitHonoursContext(t *testing.T) {
	actLeakCheck(t)
	release := make(chan struct{})
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer close(release)
	cfg := actTestConfig(srv.URL)
	cfg.MaxInFlight = 1
	x := actTestXSP(t, srv.URL, &cfg)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := x.do(context.Background(), http.MethodGet, "/slow", nil)
		done <- err
	}()
	<-started
	// Wait until the first request holds the slot.
	for len(x.inflight) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.do(ctx, http.MethodGet, "/p", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("first request: %v", err)
	}
}

func TestXSPRateLimit(t *testing.T) {
	actLeakCheck(t)
	var calls atomic.Int32
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, "<ok/>")
	}))
	cfg := actTestConfig(srv.URL)
	cfg.RateLimit = 0.001 // one token every ~17 minutes
	cfg.RateBurst = 3
	cfg.RequestTimeout = time.Second
	x := actTestXSP(t, srv.URL, &cfg)
	passed := 0
	for range 6 {
		_, err := x.do(context.Background(), http.MethodGet, "/p", nil)
		if err == nil {
			passed++
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded from the rate limiter", err)
		}
	}
	if passed != 3 || calls.Load() != 3 {
		t.Fatalf("%d passed, server saw %d; want the burst of 3", passed, calls.Load())
	}
}

func TestXSPDeadline(t *testing.T) {
	actLeakCheck(t)
	release := make(chan struct{})
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	cfg := actTestConfig(srv.URL)
	cfg.RequestTimeout = 50 * time.Millisecond
	x := actTestXSP(t, srv.URL, &cfg)
	if _, err := x.do(context.Background(), http.MethodGet, "/p", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RequestTimeout: err = %v, want DeadlineExceeded", err)
	}
	// An earlier ctx deadline wins over a long RequestTimeout.
	cfg2 := actTestConfig(srv.URL)
	cfg2.RequestTimeout = time.Hour
	x2 := actTestXSP(t, srv.URL, &cfg2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := x2.do(ctx, http.MethodPut, "/p", []byte("<b/>")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: err = %v, want DeadlineExceeded", err)
	}
}

func TestXSPBodyBounded(t *testing.T) {
	actLeakCheck(t)
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, maxResponseBody+10))
	}))
	cfg := actTestConfig(srv.URL)
	x := actTestXSP(t, srv.URL, &cfg)
	if _, err := x.do(context.Background(), http.MethodGet, "/p", nil); err == nil {
		t.Fatal("oversized body accepted")
	}
}

func TestRetryAfter(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		status int
		header string
		want   time.Duration
		ok     bool
	}{
		{503, "2", 2 * time.Second, true},
		{429, "0", 0, true},
		{503, "3600", maxRetryAfter, true},
		{503, future, maxRetryAfter, true},
		{503, past, 0, true},
		{503, "-1", 0, false},
		{503, "soon", 0, false},
		{503, "", 0, false},
		{502, "2", 0, false},
	}
	for _, tc := range tests {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
		if tc.header != "" {
			resp.Header.Set("Retry-After", tc.header)
		}
		got, ok := retryAfter(resp)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%d, %q) = %v, %v; want %v, %v", tc.status, tc.header, got, ok, tc.want, tc.ok)
		}
	}
}
