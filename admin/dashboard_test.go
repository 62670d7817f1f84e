package admin_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/admin"
)

// TestDashboardAuth: the page answers with the token in the header or the
// query, and 401 without detail otherwise, whatever the method.
func TestDashboardAuth(t *testing.T) {
	_, c := startAPI(t, admin.WithSource(demoSource()))
	for _, path := range []string{"/", "/dashboard"} {
		for _, tc := range []struct {
			name, method, query, header string
			want                        int
		}{
			{"no token", "GET", "", "", http.StatusUnauthorized},
			{"wrong query token", "GET", "?token=wrong", "", http.StatusUnauthorized},
			{"wrong header token", "GET", "", "wrong", http.StatusUnauthorized},
			{"token prefix", "GET", "?token=" + testToken[:4], "", http.StatusUnauthorized},
			{"POST without token", "POST", "", "", http.StatusUnauthorized},
			{"query token", "GET", "?token=" + testToken, "", http.StatusOK},
			{"header token", "GET", "", testToken, http.StatusOK},
			{"HEAD", "HEAD", "?token=" + testToken, "", http.StatusOK},
			{"POST with token", "POST", "?token=" + testToken, "", http.StatusMethodNotAllowed},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				resp, body := c.do(tc.method, path+tc.query, tc.header, "")
				if resp.StatusCode != tc.want {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusUnauthorized && body != "Unauthorized\n" {
					t.Errorf("body = %q, want no detail", body)
				}
			})
		}
	}
	t.Run("no other path answers", func(t *testing.T) {
		for _, path := range []string{"/index.html", "/dashboard/", "/dashboard.js"} {
			if resp, _ := c.do("GET", path+"?token="+testToken, "", ""); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
			}
		}
	})
	t.Run("the API still wants the header", func(t *testing.T) {
		if resp, _ := c.do("GET", "/api/v1/agents?token="+testToken, "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
	})
}

// TestDashboardPage: security headers, a CSP whose hashes are those of the
// inlined script and style, and nothing referenced outside the host.
func TestDashboardPage(t *testing.T) {
	s, c := startAPI(t, admin.WithSource(demoSource()))
	resp, body := c.do("GET", "/?token="+testToken, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}

	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	host := s.Addr().String()
	for name, want := range map[string]string{
		"default-src":     "'none'",
		"connect-src":     "'self' ws://" + host + " wss://" + host,
		"img-src":         "data:",
		"base-uri":        "'none'",
		"form-action":     "'none'",
		"frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("CSP %s = %q, want %q (CSP %q)", name, directives[name], want, csp)
		}
	}
	hashOf := func(element string) string {
		m := regexp.MustCompile(`(?s)<` + element + `>(.*?)</` + element + `>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no <%s> in the page", element)
		}
		sum := sha256.Sum256([]byte(m[1]))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	if got, want := directives["script-src"], hashOf("script"); got != want {
		t.Errorf("CSP script-src = %q, want the inline script's hash %q", got, want)
	}
	if got, want := directives["style-src"], hashOf("style"); got != want {
		t.Errorf("CSP style-src = %q, want the inline style's hash %q", got, want)
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("CSP too open: %q", csp)
	}

	// Nothing from outside: no absolute URL at all (the stream's URL is
	// built from location), no src= and only a data: icon.
	if m := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp)://[^\s'"]+`).FindString(body); m != "" {
		t.Errorf("the page references %q", m)
	}
	if m := regexp.MustCompile(`(?i)url\(|@import|\bimport\(|XMLHttpRequest|<iframe|<object|<embed`).FindString(body); m != "" {
		t.Errorf("the page has %q, which could fetch from elsewhere", m)
	}
	// Fetches: only through api(path), and only paths of this host's API
	// (the journal's history, the CTI sessions).
	for _, m := range regexp.MustCompile(`\bfetch\(([^,)]*)`).FindAllStringSubmatch(body, -1) {
		if m[1] != "path" || !strings.Contains(body, "function api(path) {") {
			t.Errorf("the page fetches %q, not through api(path)", m[1])
		}
	}
	calls := regexp.MustCompile(`\bapi\(([^)]*)`).FindAllStringSubmatch(body, -1)
	for _, m := range calls {
		if m[1] != "path" && !strings.HasPrefix(m[1], "'/api/v1/") {
			t.Errorf("the page reads %q, not a path of this host's API", m[1])
		}
	}
	if len(calls) < 3 {
		t.Errorf("api( found %d times, want its definition and its two uses", len(calls))
	}
	for _, m := range regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(body, -1) {
		if m[1] != "data:," {
			t.Errorf("the page loads %q", m[1])
		}
	}
	if strings.Contains(body, "innerHTML") || strings.Contains(body, "{{") {
		t.Error("the page uses innerHTML or has an unfilled placeholder")
	}
	for _, id := range []string{`id="agents"`, `id="desks"`, `id="links"`, `id="conn"`, `id="updated"`} {
		if !strings.Contains(body, id) {
			t.Errorf("the page lacks %s", id)
		}
	}
	if strings.Contains(body, testToken) {
		t.Error("the page echoes the token")
	}
}
