package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
)

// TestPprofBehindToken: the runtime's profiles are served on the admin port
// to the admin token only, like the API: 401 without it, with a wrong one,
// as ?token=, and on a server without a token.
func TestPprofBehindToken(t *testing.T) {
	_, withToken := startAPI(t)
	withoutToken := newClient(t, startServer(t))
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1",
		"/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"}
	for _, path := range paths {
		for _, tc := range []struct {
			name   string
			client *client
			path   string
			token  string
		}{
			{"no token", withToken, path, ""},
			{"wrong token", withToken, path, "wrong"},
			{"token in the query", withToken, path + sep(path) + "token=" + testToken, ""},
			{"server without a token", withoutToken, path, testToken},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				resp, body := tc.client.do("GET", tc.path, tc.token, "")
				if resp.StatusCode != http.StatusUnauthorized || body != "Unauthorized\n" {
					t.Errorf("= %d %q, want 401 with no detail", resp.StatusCode, body)
				}
			})
		}
	}

	for _, tc := range []struct {
		path, contentType, want string
	}{
		{"/debug/pprof/", "text/html", "heap"},
		{"/debug/pprof/heap?debug=1", "text/plain", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "text/plain", "goroutine profile:"},
		{"/debug/pprof/cmdline", "text/plain", ""},
		{"/debug/pprof/profile?seconds=1", "application/octet-stream", ""},
	} {
		t.Run(tc.path+"/right token", func(t *testing.T) {
			resp, body := withToken.do("GET", tc.path, testToken, "")
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(body, tc.want) {
				t.Fatalf("= %d %s, %d bytes: %.200q", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), body)
			}
			if len(body) == 0 && tc.path != "/debug/pprof/cmdline" {
				t.Error("empty profile")
			}
		})
	}
	t.Run("a profile longer than the write timeout is allowed, unbounded ones are not", func(t *testing.T) {
		limits := admin.DefaultLimits()
		limits.WriteTimeout = 500 * time.Millisecond
		_, c := startAPI(t, admin.WithLimits(limits))
		if resp, body := c.do("GET", "/debug/pprof/profile?seconds=1", testToken, ""); resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("1 s profile with a 0.5 s write timeout = %d %.200q", resp.StatusCode, body)
		}
		for _, bad := range []string{"0", "-1", "121", "x"} {
			if resp, _ := c.do("GET", "/debug/pprof/profile?seconds="+bad, testToken, ""); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("seconds=%s = %d, want 400", bad, resp.StatusCode)
			}
		}
	})
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}
