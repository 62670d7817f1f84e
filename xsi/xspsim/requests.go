package xspsim

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// defaultRequestLogSize is Config.RequestLogSize's default.
const defaultRequestLogSize = 10_000

// requestLogBodyMax bounds the body kept per logged request (Actions and
// Events bodies are well under it), so the log is at most about
// RequestLogSize × 4 KiB.
const requestLogBodyMax = 4 << 10

// Request is one request the simulator received (after authentication),
// for tests that check what a client sent and in which order.
type Request struct {
	Time          time.Time
	XSP           int    // index of the XSP it arrived on
	Method        string // GET, PUT, POST, DELETE
	Path          string // URL path, e.g. /com.broadsoft.xsi-actions/v2.0/user/a@x/services/CallCenter
	Query         string // raw query, "" when none
	Body          []byte // the first 4 KiB of the body
	BodyTruncated bool
	// Status is the answer's HTTP status; 0 while it is not written yet.
	Status int

	seq uint64
}

// requestLog is a ring of the newest requests (guarded by Server.mu).
// Request number seq is at ring[seq%cap]; the ring grows to cap first.
type requestLog struct {
	ring []Request
	n    uint64 // sequence number of the next request
	size int    // cap(ring), fixed by init: read without the lock
}

func (l *requestLog) init(size int) {
	if size > 0 {
		l.ring = make([]Request, 0, size)
		l.size = size
	}
}

// add logs r and returns its sequence number.
func (l *requestLog) add(r Request) uint64 {
	if cap(l.ring) == 0 {
		return 0
	}
	seq := l.n
	r.seq = seq
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, r)
	} else {
		l.ring[seq%uint64(cap(l.ring))] = r
	}
	l.n++
	return seq
}

func (l *requestLog) setStatus(seq uint64, status int) {
	c := uint64(cap(l.ring))
	if c == 0 {
		return
	}
	if i := seq % c; i < uint64(len(l.ring)) && l.ring[i].seq == seq { // else overwritten or cleared since
		l.ring[i].Status = status
	}
}

// Requests returns the logged requests, oldest first: the newest
// Config.RequestLogSize ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.reqLog
	out := make([]Request, 0, len(l.ring))
	if len(l.ring) < cap(l.ring) || cap(l.ring) == 0 {
		out = append(out, l.ring...)
	} else {
		i := int(l.n % uint64(cap(l.ring)))
		out = append(append(out, l.ring[i:]...), l.ring[:i]...)
	}
	for i := range out {
		out[i].Body = bytes.Clone(out[i].Body)
	}
	return out
}

// ClearRequests empties the request log.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	l := &s.reqLog
	if c := uint64(cap(l.ring)); c > 0 {
		l.ring = l.ring[:0]
		l.n = (l.n + c - 1) / c * c // keeps ring[seq%cap]
	}
	s.mu.Unlock()
}

// logRequest reads r's body (at most maxBody+1 bytes: what the handlers
// read at most; they see the same bytes, and the same error) and logs the
// request. It returns the writer to use, which records the status.
func (s *Server) logRequest(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		body = b
		var rest io.Reader = bytes.NewReader(b)
		if err != nil {
			rest = io.MultiReader(rest, errReader{err})
		}
		r.Body = io.NopCloser(rest)
	}
	if s.reqLog.size == 0 {
		return w
	}
	req := Request{Time: time.Now(), XSP: xspOf(r), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	if len(body) > requestLogBodyMax {
		req.Body, req.BodyTruncated = bytes.Clone(body[:requestLogBodyMax]), true
	} else if len(body) > 0 {
		req.Body = body // not modified by anyone: the handlers read a copy's reader
	}
	s.mu.Lock()
	seq := s.reqLog.add(req)
	s.mu.Unlock()
	return &statusWriter{ResponseWriter: w, s: s, seq: seq}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// statusWriter records the status of a logged request. Unwrap keeps
// http.ResponseController (deadlines, flush) working on the stream.
type statusWriter struct {
	http.ResponseWriter
	s     *Server
	seq   uint64
	wrote bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.s.mu.Lock()
		w.s.reqLog.setStatus(w.seq, status)
		w.s.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Change says what r asks when it is an Xsi-Actions service PUT, as
// "<userId> <service> <what>", for tests that check the order of a
// client's changes: what is the body's hostUserId ("nil" when it is
// xsi:nil: the association ends), else its agentACDState, else its active
// (followed by forwardToPhoneNumber when there is one); nothing when the
// body has none of them or is not XML. userId and service are as in the
// path. Anything else (a GET, an Events request, a PUT elsewhere) is "".
func (r Request) Change() string {
	if r.Method != http.MethodPut {
		return ""
	}
	rest, ok := strings.CutPrefix(r.Path, ActionsPrefix+"/user/")
	if !ok {
		return ""
	}
	user, service, ok := strings.Cut(rest, "/services/")
	if !ok || user == "" || service == "" || strings.Contains(service, "/") {
		return ""
	}
	change := user + " " + service
	doc := etree.NewDocument()
	doc.ReadSettings.CharsetReader = charsetReader
	if doc.ReadFromBytes(r.Body) != nil || doc.Root() == nil {
		return change
	}
	root := doc.Root()
	if e := child(root, "hostUserId"); e != nil {
		if isNil, _ := isNil(e); isNil {
			return change + " nil"
		}
		return change + " " + strings.TrimSpace(e.Text())
	}
	if e := child(root, "agentACDState"); e != nil {
		return change + " " + strings.TrimSpace(e.Text())
	}
	if e := child(root, "active"); e != nil {
		change += " " + strings.TrimSpace(e.Text())
		if n := child(root, "forwardToPhoneNumber"); n != nil {
			change += " " + strings.TrimSpace(n.Text())
		}
	}
	return change
}

// Changes is the Change of each of reqs that is one, in order.
func Changes(reqs []Request) []string {
	var out []string
	for _, r := range reqs {
		if c := r.Change(); c != "" {
			out = append(out, c)
		}
	}
	return out
}
