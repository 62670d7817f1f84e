// Package testtool holds what tests of several packages share: WaitFor,
// and Path, which finds the Debian tools tests drive (sipp, chromium,
// promtool, systemd-analyze). The rule is the same for each: a missing tool
// fails the test when CI=true (scripts/test installs them all) and skips it
// with a clear message elsewhere.
package testtool

import (
	"os"
	"os/exec"
	"testing"
	"time"
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

// WaitFor polls cond until it holds, and fails the test naming what it
// waited for once timeout has passed. It polls every 5 ms at first, then
// less often (up to every 20 ms), so that a long wait on a busy machine
// does not take a core from what it waits for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := 5 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
