package xspsim

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Latency is a uniform latency distribution in [Min, Max] added to every
// Xsi-Actions request; with probability SpikeProb, Spike is added on top.
type Latency struct {
	Min, Max  time.Duration
	SpikeProb float64
	Spike     time.Duration
}

type errorRule struct {
	pathContains string // lower-case
	rate         float64
	status       int
}

// killRule arms KillAfter.
type killRule struct {
	method, pathContains string // pathContains lower-case
	killed               chan struct{}
}

type faultState struct {
	killAfter        *killRule
	latency          Latency
	errorRules       []errorRule
	overloadLeft     int // requests still answered 503; <0 = until cleared
	retryAfter       time.Duration
	ignoreHeartbeats bool
}

// SetActionsLatency sets the latency distribution of Xsi-Actions requests.
func (s *Server) SetActionsLatency(l Latency) {
	s.mu.Lock()
	s.faults.latency = l
	s.mu.Unlock()
}

// SetErrorRate makes requests whose URL path contains pathContains
// (case-insensitive; "" = every path) fail with status at the given rate
// (0..1) with an ErrorInfo body. A 503 also carries Retry-After: 1. The
// streaming channel POST is affected too. Rules accumulate; the first
// matching rule that fires wins.
func (s *Server) SetErrorRate(pathContains string, rate float64, status int) {
	s.mu.Lock()
	s.faults.errorRules = append(s.faults.errorRules, errorRule{strings.ToLower(pathContains), rate, status})
	s.mu.Unlock()
}

// SetOverload answers the next n requests (any path) with 503 and
// Retry-After (whole seconds, at least 1); n < 0 means until ClearFaults.
func (s *Server) SetOverload(n int, retryAfter time.Duration) {
	s.mu.Lock()
	s.faults.overloadLeft, s.faults.retryAfter = n, retryAfter
	s.mu.Unlock()
}

// KillAfter arms a crash: the next request with method whose URL path
// contains pathContains (case-insensitive) is applied, and every XSP dies
// (Kill) as it is about to answer: the client gets no answer to a change
// that was made. Restart brings them back. The channel is closed once they
// are killed. Arming again replaces the rule; a rule no request matched
// stays armed until ClearFaults.
func (s *Server) KillAfter(method, pathContains string) <-chan struct{} {
	k := &killRule{method: method, pathContains: strings.ToLower(pathContains), killed: make(chan struct{})}
	s.mu.Lock()
	s.faults.killAfter = k
	s.mu.Unlock()
	return k.killed
}

// IgnoreHeartbeats makes heartbeat PUTs answer 200 without echoing
// ChannelHeartBeat on the stream and without counting as a heartbeat for
// HeartbeatTimeout.
func (s *Server) IgnoreHeartbeats(ignore bool) {
	s.mu.Lock()
	s.faults.ignoreHeartbeats = ignore
	s.mu.Unlock()
}

// ClearFaults removes every injected fault (latency, error rates, overload,
// ignored heartbeats).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = faultState{}
	s.mu.Unlock()
}

// CutChannel writes the first half of a ChannelHeartBeat document on the
// channel's stream, flushes it and drops the connection without the final
// chunk (the client sees a truncated document and an unexpected EOF). The
// channel is forgotten; its subscriptions survive.
func (s *Server) CutChannel(channelID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channelID]
	if ch == nil {
		return errf(http.StatusNotFound, ErrCodeNotFound, "channel %s not found", channelID)
	}
	s.removeLocked(ch)
	select {
	case ch.q <- streamItem{data: heartbeatDoc(), cut: true}:
	default:
		close(ch.done)
	}
	return nil
}

// TerminateChannel ends a channel with a ChannelTerminatedEvent carrying
// reason (e.g. ReasonUserDeleted), as an administrator action would.
func (s *Server) TerminateChannel(channelID, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channelID]
	if ch == nil {
		return errf(http.StatusNotFound, ErrCodeNotFound, "channel %s not found", channelID)
	}
	s.terminateLocked(ch, reason)
	return nil
}

// middleware: authentication, overload, injected errors, latency.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.RequestReadTimeout))
		if s.cfg.Username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="BroadWorks"`)
				s.writeError(w, errf(http.StatusUnauthorized, ErrCodeUnauthorized, "Authentication failed"))
				return
			}
		}
		w = s.logRequest(w, r)
		path := strings.ToLower(r.URL.Path)
		s.mu.Lock()
		f := &s.faults
		if f.overloadLeft != 0 {
			if f.overloadLeft > 0 {
				f.overloadLeft--
			}
			ra := max(int((f.retryAfter+time.Second-1)/time.Second), 1)
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(ra))
			s.writeError(w, errf(http.StatusServiceUnavailable, ErrCodeOverload, "Server overloaded, retry later"))
			return
		}
		for _, rule := range f.errorRules {
			if strings.Contains(path, rule.pathContains) && s.rng.Float64() < rule.rate {
				s.mu.Unlock()
				if rule.status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				s.writeError(w, errf(rule.status, ErrCodeInjected, "Injected fault on %s", r.URL.Path))
				return
			}
		}
		var kill *killRule
		if k := f.killAfter; k != nil && r.Method == k.method && strings.Contains(path, k.pathContains) {
			kill, f.killAfter = k, nil
			w = &killWriter{ResponseWriter: w, kill: func() { s.Kill(); close(kill.killed) }}
		}
		var delay time.Duration
		if strings.HasPrefix(r.URL.Path, ActionsPrefix) {
			l := f.latency
			if l.Max > l.Min {
				delay = l.Min + time.Duration(s.rng.Int64N(int64(l.Max-l.Min)+1))
			} else {
				delay = l.Min
			}
			if l.SpikeProb > 0 && s.rng.Float64() < l.SpikeProb {
				delay += l.Spike
			}
		}
		s.mu.Unlock()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.quit:
				t.Stop()
				return
			}
		}
		next.ServeHTTP(w, r)
		if kw, ok := w.(*killWriter); ok {
			kw.once.Do(kw.kill) // a handler that wrote nothing dies too
		}
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	a, e := ActionsPrefix, EventsPrefix
	mux.HandleFunc("GET "+a+"/user/{userId}/services/{service}", s.handleService)
	mux.HandleFunc("PUT "+a+"/user/{userId}/services/{service}", s.handleService)
	mux.HandleFunc("GET "+a+"/user/{userId}/directories/{dir}", s.handleDirectory)
	mux.HandleFunc("GET "+a+"/user/{userId}/profile", s.handleProfile)
	mux.HandleFunc("GET "+a+"/group/{groupId}/services/{svc}/{sub}", s.handleGroupService)

	mux.HandleFunc("POST "+AsyncEventsPrefix+"/channel", s.handleChannelAdd)
	mux.HandleFunc("PUT "+e+"/channel/{id}/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("PUT "+e+"/channel/{id}", s.handleChannel)
	mux.HandleFunc("DELETE "+e+"/channel/{id}", s.handleChannel)
	mux.HandleFunc("POST "+e+"/channel/eventresponse", s.handleEventResponse)
	mux.HandleFunc("GET "+e+"/channelset/{id}", s.handleChannelSet)

	mux.HandleFunc("POST "+e+"/user/{userId}", s.handleSubscribe)
	mux.HandleFunc("POST "+e+"/user/{userId}/subscription", s.handleSubscribe)
	for _, kind := range []string{"enterprise", "serviceprovider"} {
		mux.HandleFunc("POST "+e+"/"+kind+"/{entId}", s.handleSubscribe)
		mux.HandleFunc("POST "+e+"/"+kind+"/{entId}/group/{groupId}", s.handleSubscribe)
	}
	mux.HandleFunc("GET "+e+"/subscription", s.handleSubscriptionQuery)
	mux.HandleFunc("GET "+e+"/subscription/{id}", s.handleSubscription)
	mux.HandleFunc("PUT "+e+"/subscription/{id}", s.handleSubscription)
	mux.HandleFunc("DELETE "+e+"/subscription/{id}", s.handleSubscription)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "Resource not found: %s %s", r.Method, r.URL.Path))
	})
	return s.middleware(mux)
}

// killWriter kills the simulator instead of writing the answer (KillAfter).
type killWriter struct {
	http.ResponseWriter
	kill func()
	once sync.Once
}

func (w *killWriter) WriteHeader(int) { w.once.Do(w.kill) }
func (w *killWriter) Write(b []byte) (int, error) {
	w.once.Do(w.kill)
	return 0, http.ErrHandlerTimeout
}
