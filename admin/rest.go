package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	maxRequestBody = 1 << 10 // a POST carries at most a small JSON object
	// forceLogoutTimeout bounds the gateway path of a supervisor logout.
	forceLogoutTimeout = 15 * time.Second
	// journalTimeout bounds one journal query.
	journalTimeout = 10 * time.Second
)

// routes registers what admin itself serves. Everything but /healthz goes
// through requireToken first, so without the token not even a 404 or 405
// tells what exists under /api/v1/. The stream and the dashboard page (/ and
// /dashboard, dashboard.go) check the token themselves, taking it from the
// header or from ?token= since a browser cannot set a header there.
func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.Handle("/readyz", s.requireToken(s.counted("/readyz", getOnly(http.HandlerFunc(s.readyz)))))
	s.mux.Handle("/metrics", s.requireToken(s.counted("/metrics", getOnly(s.metrics.handler()))))
	s.mux.Handle("/api/v1/", s.requireToken(s.api))
	s.mux.Handle("/debug/pprof/", s.requireToken(s.counted("/debug/pprof/", pprofMux())))   // pprof.go
	s.mux.Handle("/api/v1/stream", s.requireTokenOrQuery(http.HandlerFunc(s.stream.serve))) // token from header or query
	s.mux.Handle("/{$}", s.dashboardHandler())                                              // the dashboard page; token from header or query
	s.mux.Handle("/dashboard", s.dashboardHandler())

	api := map[string]http.HandlerFunc{
		"GET /api/v1/agents":              s.listAgents,
		"GET /api/v1/agents/{id}":         s.getAgent,
		"POST /api/v1/agents/{id}/logout": s.forceLogout,
		"GET /api/v1/devices":             s.listDevices,
		"GET /api/v1/devices/{id}":        s.getDevice,
		"GET /api/v1/phones":              s.listPhones,
		"GET /api/v1/sessions":            s.listSessions,
		"GET /api/v1/links":               s.listLinks,
		"GET /api/v1/desks/free":          s.freeDesks,
		"GET /api/v1/journal/desk/{desk}": s.journalDesk,
		"GET /api/v1/journal/agent/{id}":  s.journalAgent,
		"GET /api/v1/history":             s.getHistory,
		"GET /api/v1/cluster":             s.listCluster,
	}
	for pattern, h := range api {
		s.api.Handle(pattern, s.counted(pattern, h))
	}
	s.api.HandleFunc("/", s.noRoute)
}

// noRoute answers what the API mux does not match: 405 when the path exists
// for another method (the catch-all would otherwise hide it), else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		other := r.Clone(r.Context())
		other.Method = method
		if _, pattern := s.api.Handler(other); pattern != "/" {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", "")
		return
	}
	writeError(w, http.StatusNotFound, "no such route", "")
}

func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readyz answers 200 "ok" or 503 with the reason, as text.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.ready != nil {
		if ok, reason := s.ready(); !ok {
			if reason == "" {
				reason = "not ready"
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, reason+"\n")
			return
		}
	}
	io.WriteString(w, "ok\n")
}

// apiError is the body of every API error. Parameter names the query or
// path parameter at fault, when one is.
type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

func writeError(w http.ResponseWriter, status int, message, parameter string) {
	writeJSON(w, status, apiError{Error: message, Parameter: parameter})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// withSource answers 503 when no Source is wired.
func (s *Server) withSource(w http.ResponseWriter) (Source, bool) {
	if s.source == nil {
		writeError(w, http.StatusServiceUnavailable, "no source configured", "")
		return nil, false
	}
	return s.source, true
}

// Lists are sorted by their key so clients (and tests) see a stable order,
// and are never null.

func sortedAgents(agents []Agent) []Agent {
	agents = nonNil(agents)
	slices.SortFunc(agents, func(a, b Agent) int { return cmp.Compare(a.AgentID, b.AgentID) })
	return agents
}

func sortedDevices(devices []Device) []Device {
	devices = nonNil(devices)
	for i := range devices {
		devices[i].Forwarding = nonNil(devices[i].Forwarding)
	}
	slices.SortFunc(devices, func(a, b Device) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	return devices
}

func sortedPhones(phones []Phone) []Phone {
	phones = nonNil(phones)
	for i := range phones {
		phones[i].Events = nonNil(phones[i].Events)
	}
	slices.SortFunc(phones, func(a, b Phone) int {
		return cmp.Or(cmp.Compare(a.DN, b.DN), cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	return phones
}

func sortedSessions(sessions []Session) []Session {
	sessions = nonNil(sessions)
	slices.SortFunc(sessions, func(a, b Session) int { return cmp.Compare(a.ID, b.ID) })
	return sessions
}

func sortedLinks(links []Link) []Link {
	links = nonNil(links)
	slices.SortFunc(links, func(a, b Link) int { return cmp.Compare(a.Server, b.Server) })
	return links
}

func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedAgents(src.Agents()))
	}
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	src, ok := s.withSource(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	for _, agent := range src.Agents() {
		if agent.AgentID == id {
			writeJSON(w, http.StatusOK, agent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "unknown agent", "id")
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedDevices(src.Devices()))
	}
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	src, ok := s.withSource(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	for _, device := range src.Devices() {
		if device.DeviceID == id {
			device.Forwarding = nonNil(device.Forwarding)
			writeJSON(w, http.StatusOK, device)
			return
		}
	}
	writeError(w, http.StatusNotFound, "unknown device", "id")
}

func (s *Server) listPhones(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedPhones(src.Phones()))
	}
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedSessions(src.Sessions()))
	}
}

func (s *Server) listLinks(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedLinks(src.Links()))
	}
}

// LogoutResult is the body of a successful forced logout.
type LogoutResult struct {
	AgentID string `json:"agentId"`
	Result  string `json:"result"` // "loggedOff"
}

// forceLogout is the supervisor's logout. The body is optional and ignored
// today but bounded; the agent's new state reaches the stream by the event
// path like any other logout.
func (s *Server) forceLogout(w http.ResponseWriter, r *http.Request) {
	src, ok := s.withSource(w)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large", "")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read the request body", "")
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), forceLogoutTimeout)
	defer cancel()
	err := src.ForceLogout(ctx, id)
	switch {
	case err == nil:
		s.logger.Info("admin: agent logged out by a supervisor", "agent", id, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, LogoutResult{AgentID: id, Result: "loggedOff"})
	case errors.Is(err, ErrUnknownAgent):
		writeError(w, http.StatusNotFound, "unknown agent", "id")
	case errors.Is(err, ErrNotLoggedOn):
		writeError(w, http.StatusConflict, "agent not logged on", "id")
	case errors.Is(err, context.DeadlineExceeded):
		s.logger.Warn("admin: forced logout timed out", "agent", id)
		writeError(w, http.StatusGatewayTimeout, "logout timed out", "")
	default:
		s.logger.Warn("admin: forced logout failed", "agent", id, "error", err)
		writeError(w, http.StatusBadGateway, err.Error(), "")
	}
}

func (s *Server) freeDesks(w http.ResponseWriter, r *http.Request) {
	if src, ok := s.withSource(w); ok {
		writeJSON(w, http.StatusOK, sortedDevices(FreeDesks(src.Devices(), src.Phones(), src.Agents(), time.Now())))
	}
}

func (s *Server) journalDesk(w http.ResponseWriter, r *http.Request) {
	if s.journal == nil {
		writeError(w, http.StatusNotImplemented, "no journal configured", "")
		return
	}
	if q := r.URL.Query(); !q.Has("at") && (q.Has("from") || q.Has("to")) {
		s.journalBetween(w, r, "desk", s.journal.DeskBetween)
		return
	}
	at, ok := timeParam(w, r, "at")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), journalTimeout)
	defer cancel()
	association, found, err := s.journal.AtDesk(ctx, r.PathValue("desk"), at)
	if err != nil {
		s.logger.Error("admin: journal query failed", "desk", r.PathValue("desk"), "error", err)
		writeError(w, http.StatusInternalServerError, "journal query failed", "")
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "no association at that desk at that time", "")
		return
	}
	writeJSON(w, http.StatusOK, association)
}

func (s *Server) journalAgent(w http.ResponseWriter, r *http.Request) {
	if s.journal == nil {
		writeError(w, http.StatusNotImplemented, "no journal configured", "")
		return
	}
	s.journalBetween(w, r, "id", s.journal.AgentBetween)
}

// journalBetween answers the associations of the agent or desk named by the
// path value key that overlap the query's from–to, oldest first.
func (s *Server) journalBetween(w http.ResponseWriter, r *http.Request, key string, between func(context.Context, string, time.Time, time.Time) ([]Association, error)) {
	from, ok := timeParam(w, r, "from")
	if !ok {
		return
	}
	to, ok := timeParam(w, r, "to")
	if !ok {
		return
	}
	if to.Before(from) {
		writeError(w, http.StatusBadRequest, "to is before from", "to")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), journalTimeout)
	defer cancel()
	associations, err := between(ctx, r.PathValue(key), from, to)
	if err != nil {
		s.logger.Error("admin: journal query failed", key, r.PathValue(key), "error", err)
		writeError(w, http.StatusInternalServerError, "journal query failed", "")
		return
	}
	writeJSON(w, http.StatusOK, nonNil(associations))
}

// timeParam is the required RFC 3339 query parameter name; on failure it has
// answered 400 naming the parameter.
func timeParam(w http.ResponseWriter, r *http.Request, name string) (time.Time, bool) {
	values, present := r.URL.Query()[name]
	if !present || len(values) != 1 || values[0] == "" {
		writeError(w, http.StatusBadRequest, name+" is required once, as an RFC 3339 time", name)
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, values[0])
	if err != nil {
		writeError(w, http.StatusBadRequest, name+" is not an RFC 3339 time", name)
		return time.Time{}, false
	}
	return t, true
}
