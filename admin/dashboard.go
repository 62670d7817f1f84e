package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
)

// The dashboard is one HTML page, GET / and GET /dashboard, with its CSS and
// JavaScript inlined (dashboard/*, embedded at build time): nothing is
// fetched from anywhere but the stream on the same host. Like the stream, the
// page takes the token as "Authorization: Bearer" or as ?token=, because a
// browser opening a link cannot set a header; the page's script then takes
// the token out of the address bar and uses it for the stream. Every other
// route still wants the header.
//
// The Content-Security-Policy allows the inlined script and style by their
// SHA-256 hashes only (no 'unsafe-inline'), WebSocket and fetch connections
// to the page's own host, and nothing else; the page is never cached (its URL
// carries the token) and never sends a Referer.

//go:embed dashboard/index.html dashboard/dashboard.css dashboard/dashboard.js
var dashboardFiles embed.FS

type dashboardPage struct {
	html []byte
	csp  string // without connect-src, which names the request's host
}

var dashboard = buildDashboard()

func buildDashboard() dashboardPage {
	read := func(name string) []byte {
		b, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			panic("admin: dashboard: " + err.Error())
		}
		return b
	}
	page, style, script := read("index.html"), read("dashboard.css"), read("dashboard.js")
	if bytes.Contains(bytes.ToLower(script), []byte("</script")) || bytes.Contains(bytes.ToLower(style), []byte("</style")) {
		panic("admin: dashboard: inlined code closes its own element")
	}
	page = bytes.Replace(page, []byte("{{style}}"), style, 1)
	page = bytes.Replace(page, []byte("{{script}}"), script, 1)
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return dashboardPage{
		html: page,
		csp: "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
			"; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
}

// plainHost is a Host header safe to repeat in a header value.
var plainHost = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// dashboardHandler checks the token (header or query) before anything else,
// so without it not even the method is told apart.
func (s *Server) dashboardHandler() http.Handler {
	return s.requireTokenOrQuery(s.counted("/dashboard", getOnly(http.HandlerFunc(serveDashboard))))
}

func serveDashboard(w http.ResponseWriter, r *http.Request) {
	// 'self' covers ws: and wss: to the same host in CSP Level 3; the
	// explicit origins are for browsers that predate it.
	connect := "connect-src 'self'"
	if plainHost.MatchString(r.Host) {
		host := strings.ToLower(r.Host)
		connect += " ws://" + host + " wss://" + host
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboard.csp+"; "+connect)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.Write(dashboard.html)
}
