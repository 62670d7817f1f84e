// Package kamailiotest runs Kamailio (Debian kamailio), a real SIP proxy,
// in tests: a config template with the test's ports filled in, started in
// the foreground on loopback, ready once its routing script answers, and
// stopped when the test ends. A missing kamailio fails the test when
// CI=true (the test command installs it) and skips it elsewhere, like
// internal/sipptest.
package kamailiotest

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/broadworks-connector/connector/internal/sipptest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/testlog"
)

// Path is kamailio's path.
func Path(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"kamailio", "/usr/sbin/kamailio"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "kamailiotest: kamailio not found; install Debian's kamailio (scripts/test does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Proxy is a running Kamailio.
type Proxy struct {
	Addr string          // host:port it listens on (UDP)
	Log  *testlog.Buffer // its log (stderr)
}

var placeholder = regexp.MustCompile(`@[A-Z_]+@`)

// readyWait bounds the wait for Kamailio to answer; reaching it is a
// failure (it did not start), not a timing assertion.
const readyWait = 30 * time.Second

// Start writes the config template at tmpl into a temporary directory,
// replacing @DIR@ (that directory), @PROXY_PORT@ (a free UDP port on
// 127.0.0.1) and each key of vars, starts kamailio on it in the foreground
// and returns once it answers SIP. It is stopped when the test ends, and
// its log shown if the test failed.
func Start(t testing.TB, tmpl string, vars map[string]string) *Proxy {
	t.Helper()
	kamailio := Path(t)
	raw, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := sipptest.FreeUDPPort(t)
	cfg := strings.ReplaceAll(string(raw), "@DIR@", dir)
	cfg = strings.ReplaceAll(cfg, "@PROXY_PORT@", strconv.Itoa(port))
	for k, v := range vars {
		cfg = strings.ReplaceAll(cfg, "@"+k+"@", v)
	}
	if m := placeholder.FindString(cfg); m != "" {
		t.Fatalf("kamailiotest: %s: %s not filled in", tmpl, m)
	}
	file := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// -DD: stay in the foreground (its worker processes are its children,
	// in its process group); -E: log to stderr; small memory pools.
	cmd := exec.Command(kamailio, "-f", file, "-DD", "-E", "-m", "32", "-M", "4", "-P", filepath.Join(dir, "kamailio.pid"))
	cmd.Dir = dir
	// Its own process group, so the cleanup reaches the workers too; and
	// SIGTERM (on which it stops its workers) should the test binary die
	// without cleaning up (a go test timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	log := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("kamailiotest: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The process group of the kamailio this test started, by its id.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(readyWait):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("kamailio log:\n%s", log.String())
		}
	})
	p := &Proxy{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Log: log}
	if err := p.awaitReady(exited); err != nil {
		t.Fatalf("kamailiotest: %v\n%s", err, log.String())
	}
	return p
}

// awaitReady sends an in-dialog OPTIONS without a Route until Kamailio's
// script answers it (any response: the stock rule says 404).
func (p *Proxy) awaitReady(exited <-chan struct{}) error {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer c.Close()
	dst, err := net.ResolveUDPAddr("udp", p.Addr)
	if err != nil {
		return err
	}
	local := c.LocalAddr().String()
	probe := []byte(strings.Join([]string{
		"OPTIONS sip:probe@" + p.Addr + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-kamailiotest-ready",
		"Max-Forwards: 70",
		"From: <sip:probe@" + local + ">;tag=kt1",
		"To: <sip:probe@" + p.Addr + ">;tag=kt2",
		"Call-ID: kamailiotest-ready",
		"CSeq: 1 OPTIONS",
		"Content-Length: 0", "", ""}, "\r\n"))
	deadline := time.Now().Add(readyWait)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("kamailio exited during start-up")
		default:
		}
		if _, err := c.WriteTo(probe, dst); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 ")) {
			return nil
		}
	}
	return fmt.Errorf("kamailio did not answer on %s within %v", p.Addr, readyWait)
}

// RefusedInDialog is how many in-dialog requests the proxy refused (its
// stock rule: no Route it recognises, "404 Not here"), its own readiness
// probe, refused on purpose, aside.
func (p *Proxy) RefusedInDialog() int {
	log := p.Log.String()
	return strings.Count(log, "refused in-dialog") - strings.Count(log, "refused in-dialog OPTIONS sip:probe@")
}
