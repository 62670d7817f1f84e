package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/broadworks-connector/connector/csta"
)

// The edges against a hostile network (issue 13), on the real process.

// startRunWithNoFile is startRunConfig for a process whose descriptor limit
// (soft and hard) is nofile, as `ulimit -n` sets it.
func startRunWithNoFile(t *testing.T, nofile int) runAddrs {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "connector.yaml")
	if err := os.WriteFile(path, []byte(runConfig(dir, "", "", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRunCommand(t, exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), binary, "run", "--config", path))
}

// sipOptions sends one OPTIONS over conn (a TCP or UDP connection to the
// SIP listener) and returns the status line of the answer.
func sipOptions(conn net.Conn, transport string) (string, error) {
	local := conn.LocalAddr().String()
	branch := fmt.Sprintf("z9hG4bK-%d", time.Now().UnixNano())
	req := "OPTIONS sip:" + conn.RemoteAddr().String() + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + transport + " " + local + ";branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@127.0.0.1>;tag=" + branch + "\r\n" +
		"To: <sip:" + conn.RemoteAddr().String() + ">\r\n" +
		"Call-ID: " + branch + "@127.0.0.1\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Content-Length: 0\r\n\r\n"
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		return "", err
	}
	if transport == "UDP" {
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		return line, nil
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func sipOptionsOver(addr, network string) (string, error) {
	conn, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return sipOptions(conn, strings.ToUpper(network))
}

func adminStatus(addr, path string) int {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer test-admin-token-0123456789")
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func cstaAnswers(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	fr := csta.NewFrameReader(conn, csta.MaxFrameSize)
	b, err := csta.AppendFrame(nil, 1, []byte(`<RequestSystemStatus xmlns="`+ns6+`"/>`))
	if err != nil {
		return false
	}
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write(b); err != nil {
		return false
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return false
		}
		if f.InvokeID == 1 {
			return bytes.Contains(f.XML, []byte("RequestSystemStatusResponse"))
		}
	}
}

// A flood of idle SIP/TCP connections far beyond the process's descriptor
// limit: while it lasts, CSTA and the admin API still answer (the flood is
// held to its listener's share of the descriptor budget); once it closes,
// SIP over TCP answers again, without a restart, and /readyz is green.
func TestSIPTCPFloodLeavesEveryListenerServing(t *testing.T) {
	const nofile = 256
	a := startRunWithNoFile(t, nofile)
	if line, err := sipOptionsOver(a.sip, "tcp"); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("SIP/TCP before the flood: %q, %v", line, err)
	}
	logBefore := len(a.stderr.String())

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 4 * nofile {
		c, err := net.DialTimeout("tcp", a.sip, time.Second)
		if err != nil {
			continue // the listen queue is full: that is the flood's point
		}
		// Closed with a reset, not a FIN: a thousand client ports left in
		// TIME_WAIT would be taken from the ephemeral range the next
		// tests' listeners bind port 0 in.
		c.(*net.TCPConn).SetLinger(0)
		flood = append(flood, c)
	}
	t.Logf("flood: %d SIP/TCP connections opened against a limit of %d descriptors", len(flood), nofile)

	if !cstaAnswers(a.csta) {
		t.Error("CSTA does not answer during the SIP/TCP flood")
	}
	if code := adminStatus(a.admin, "/healthz"); code != http.StatusOK {
		t.Errorf("admin /healthz during the flood: %d", code)
	}

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	waitFor(t, "SIP/TCP to answer again after the flood", func() bool {
		line, err := sipOptionsOver(a.sip, "tcp")
		return err == nil && strings.HasPrefix(line, "SIP/2.0 200")
	})
	if line, err := sipOptionsOver(a.sip, "udp"); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Errorf("SIP/UDP after the flood: %q, %v", line, err)
	}
	if !cstaAnswers(a.csta) {
		t.Error("CSTA does not answer after the flood")
	}
	waitFor(t, "/readyz 200 after the flood", func() bool { return adminStatus(a.admin, "/readyz") == http.StatusOK })
	if grown := len(a.stderr.String()) - logBefore; grown > 256<<10 {
		t.Errorf("the flood grew the log by %d bytes", grown)
	} else {
		t.Logf("the flood grew the log by %d bytes", grown)
	}

	// The budget kept descriptors in reserve. Now take the reserve away
	// too: lower the running process's limit to what it has open plus a
	// few, so the same flood exhausts its descriptors for real (accept
	// fails with EMFILE on every listener), then close the flood.
	pid := a.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	tight := uint64(len(fds) + 8)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: tight, Max: nofile}, nil); err != nil {
		t.Fatalf("lowering the connector's descriptor limit: %v", err)
	}
	logBefore = len(a.stderr.String())
	for range 4 * nofile {
		c, err := net.DialTimeout("tcp", a.sip, time.Second)
		if err != nil {
			continue
		}
		c.(*net.TCPConn).SetLinger(0)
		flood = append(flood, c)
	}
	waitFor(t, "the connector to run out of descriptors", func() bool {
		return strings.Contains(a.stderr.String()[logBefore:], "EMFILE")
	})
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: nofile, Max: nofile}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIP/TCP to answer again after the descriptors came back", func() bool {
		line, err := sipOptionsOver(a.sip, "tcp")
		return err == nil && strings.HasPrefix(line, "SIP/2.0 200")
	})
	if !cstaAnswers(a.csta) {
		t.Error("CSTA does not answer after descriptors were exhausted")
	}
	waitFor(t, "/readyz 200 after descriptors were exhausted", func() bool { return adminStatus(a.admin, "/readyz") == http.StatusOK })
	t.Logf("exhausting descriptors grew the log by %d bytes", len(a.stderr.String())-logBefore)
}

// 200 malformed 30 KB datagrams (and 200 malformed requests carrying a
// digest Authorization header) grow the log by a bounded amount, leak no
// credential, and the next phone is still answered.
func TestMalformedSIPDatagramsDoNotFloodTheLog(t *testing.T) {
	a := startRun(t, "", "", "")
	conn, err := net.Dial("udp", a.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logBefore := len(a.stderr.String())
	junk := bytes.Repeat([]byte{0xff}, 30<<10)
	const secret = "6629fae49393a05397450978507c4ef1"
	bad := "SUBSCRIBE sip:4001@127.0.0.1 SIP/2.0\r\nVia: broken\r\nAuthorization: Digest username=\"4001\", realm=\"BroadWorks\", nonce=\"x\", uri=\"sip:4001@127.0.0.1\", response=\"" + secret + "\"\r\nContent-Length: 99999\r\n\r\n"
	for i := range 200 {
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(bad)); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond) // let the listener drain its socket buffer: datagrams dropped by the kernel prove nothing
		}
	}
	// Datagrams are read in order: once this OPTIONS is answered, the
	// flood before it has been read and logged (or not).
	line, err := sipOptions(conn, "UDP")
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after the flood: %q, %v", line, err)
	}
	logged := a.stderr.String()[logBefore:]
	t.Logf("400 malformed datagrams (6 MB) grew the log by %d bytes", len(logged))
	if len(logged) > 128<<10 {
		t.Errorf("the log grew by %d bytes, want well under 1 MB (at most 128 KB)", len(logged))
	}
	if strings.Contains(logged, secret) {
		t.Errorf("a digest response reached the log:\n%s", logged)
	}
}
