package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorized reports whether presented is the configured token. Both sides
// are hashed first so the comparison takes the same time whatever the
// lengths; an unset token matches nothing.
func (s *Server) authorized(presented string) bool {
	if len(s.token) == 0 || presented == "" {
		return false
	}
	want := sha256.Sum256(s.token)
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// bearer is the token of an "Authorization: Bearer <token>" header, "" when
// there is none. The scheme is case-insensitive (RFC 6750 section 2.1, RFC
// 9110 section 11.1).
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// unauthorized answers 401 without saying what was wrong (RFC 6750 section 3:
// no error attribute when no credentials came, and we do not tell a wrong
// token from a missing one).
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="connector"`)
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	s.metrics.unauthorized.Inc()
	s.logger.Debug("admin: unauthorized", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	unauthorized(w)
}

// requireToken lets through requests with the right bearer token.
// requireTokenOrQuery is requireToken that also takes the token as
// ?token= (browsers cannot set headers on a WebSocket or a page they are
// sent to); the header, when present, decides.
func (s *Server) requireTokenOrQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" {
			token = r.URL.Query().Get("token")
		}
		if !s.authorized(token) {
			s.unauthorized(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(bearer(r)) {
			s.unauthorized(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
