// Package testtool finds the Debian tools tests drive (sipp, chromium,
// promtool, systemd-analyze). The rule is the same for each: a missing tool
// fails the test when CI=true (scripts/test installs them all) and skips it
// with a clear message elsewhere.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Path is the path of command name, from Debian's package pkg.
func Path(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found; install Debian's " + pkg + " (scripts/test does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}
