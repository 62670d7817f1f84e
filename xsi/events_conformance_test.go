package xsi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// xsiSchema returns the path of XSISchema.xsd (../shared/xsd/xsi from the
// repository root, found by walking up to go.mod) and of xmllint, or skips
// (fails on CI) when either is missing.
func xsiSchema(t *testing.T) (xsd, xmllint string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("conformance: %s missing", what)
		}
		t.Skipf("conformance: %s missing; install libxml2-utils / provide ../shared/xsd to run", what)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			missing("go.mod above the package")
		}
		dir = parent
	}
	xsd = filepath.Join(dir, "..", "shared", "xsd", "xsi", "XSISchema.xsd")
	if _, err := os.Stat(xsd); err != nil {
		missing(xsd)
	}
	xmllint, err = exec.LookPath("xmllint")
	if err != nil {
		missing("xmllint")
	}
	return xsd, xmllint
}

// TestEventsBodiesConform validates every body the channel manager sends
// (channel add and refresh, subscription add and refresh, EventResponse)
// against the XSI schema with xmllint.
func TestEventsBodiesConform(t *testing.T) {
	xsd, xmllint := xsiSchema(t)
	cfg := testEventsConfig("http://x")
	cfg.ChannelSetID = `set<&>"1'`
	bodies := map[string][]byte{
		"channel-add.xml":          evChannelAddBody(&cfg),
		"channel-refresh.xml":      evChannelRefreshBody(3600 * time.Second),
		"channel-refresh-max.xml":  evChannelRefreshBody(100 * 365 * 24 * time.Hour),
		"subscription-add.xml":     evSubscriptionAddBody(&cfg, "Call Center Agent"),
		"subscription-refresh.xml": evSubscriptionRefreshBody(86400 * time.Second),
		"event-response.xml":       evEventResponseBody("0b6a4f0e-91d2-4c1e-8f3e-5a1d2c3b4a59", 200, "OK"),
	}
	dir := t.TempDir()
	var files []string
	for name, b := range bodies {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	out, err := exec.Command(xmllint, append([]string{"--noout", "--schema", xsd}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}
	if strings.Count(string(out), " validates") != len(files) {
		t.Fatalf("xmllint output:\n%s", out)
	}
}
