package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestReadyzScope: an xsi.scope the XSP does not know (404) keeps /readyz
// at 503 with the scope and the reason, while the channel is up and the
// other scope active; the metric counts the scopes by state.
func TestReadyzScope(t *testing.T) {
	addrs := startRun(t, "", "", "xsi:\n  scope: [group:grp1@ent1, group:grp9@ent1]\n")
	const want = "xsi scope group:grp9@ent1: not found (404)"
	var code int
	var body []byte
	waitFor(t, "/readyz naming the unknown group", func() bool {
		code, body = adminGet(t, addrs.admin, "/readyz", testAdminToken)
		return strings.Contains(string(body), want)
	})
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d %s, want 503", code, body)
	}
	waitFor(t, "metrics of the scopes", func() bool {
		_, m := adminGet(t, addrs.admin, "/metrics", testAdminToken)
		return strings.Contains(string(m), `connector_xsi_scopes{state="active"} 1`) &&
			strings.Contains(string(m), `connector_xsi_scopes{state="not_found"} 1`)
	})
	n := 0
	for _, line := range strings.Split(addrs.stderr.String(), "\n") {
		if strings.Contains(line, `msg="xsi: scope not subscribed; retrying with backoff"`) && strings.Contains(line, "scope=group:grp9@ent1 state=not_found") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the 404 was logged %d times, want once", n)
	}
}
