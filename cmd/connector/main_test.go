package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/internal/testlog"
	"github.com/broadworks-connector/connector/internal/testtool"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// binary is the connector built once for all tests; they run it from the
// repository root, where config.example.yaml and testdata/ are.
var binary string

const repoRoot = "../.."

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "connector-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "connector")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building connector:", err)
		return 1
	}
	return m.Run()
}

type result struct {
	code           int
	stdout, stderr string
}

// runBinary runs the binary to completion in dir with extra environment.
func runBinary(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("connector %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// cleanEnv is the test's environment without CONNECTOR_* variables, so an
// operator's shell cannot change what the tests see.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNECTOR_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string
		stderrNone bool
	}{
		{name: "no command", args: nil, code: exitUsage, stderr: "Usage: connector <command>"},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "Usage: connector <command>", stderrNone: true},
		{name: "-h", args: []string{"-h"}, code: exitOK, stdout: "check-config --config FILE", stderrNone: true},
		{name: "unknown command", args: []string{"serve"}, code: exitUsage, stderr: `connector: unknown command "serve"`},
		{name: "unknown flag", args: []string{"check-config", "--listen", "x"}, code: exitUsage, stderr: "flag provided but not defined: -listen"},
		{name: "stray argument", args: []string{"version", "now"}, code: exitUsage, stderr: `unexpected argument "now"`},
		{name: "check-config without --config", args: []string{"check-config"}, code: exitUsage, stderr: "--config FILE is required"},
		{name: "check-config -h", args: []string{"check-config", "-h"}, code: exitOK, stderr: "Usage: connector check-config --config FILE"},
		{name: "xspsim -h", args: []string{"xspsim", "-h"}, code: exitOK, stderr: "Usage: connector xspsim --config FILE"},
		{name: "help lists xspsim", args: []string{"help"}, code: exitOK, stdout: "xspsim --config FILE", stderrNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, repoRoot, nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout = %q, want it to contain %q", r.stdout, tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.stderr)
			}
			if tt.stderrNone && r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runBinary(t, repoRoot, nil, "version")
	if r.code != exitOK {
		t.Fatalf("exit code = %d, stderr: %s", r.code, r.stderr)
	}
	for _, line := range []string{"connector ", "go        go1.", "revision ", "time ", "modified "} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("version output lacks %q:\n%s", line, r.stdout)
		}
	}
}

func TestVersionString(t *testing.T) {
	defer func(v string) { version = v }(version)
	tests := []struct {
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{"", nil, "devel"},
	}
	for _, tt := range tests {
		version = tt.linked
		if got := versionString(tt.info); got != tt.want {
			t.Errorf("versionString with -X %q and %+v = %q, want %q", tt.linked, tt.info, got, tt.want)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		env      []string
		contains []string // in stdout
		absent   []string // from stdout
	}{{
		name:   "example",
		config: "config.example.yaml",
		contains: []string{"  listen: 127.0.0.1:8800\n", "    max_frame_bytes: 65535\n", "    max_duration: 1h\n", "  listen: 127.0.0.1:8080\n",
			"  simulate: true\n", "  heartbeat_interval: 15s\n", "  listen: 127.0.0.1:8090\n"},
	}, {
		name:     "secrets masked",
		config:   "testdata/config/good.yaml",
		contains: []string{"password: '***'", "password_file: testdata/config/password.txt", "  servers: ['https://xsp1.example.com', "},
		absent:   []string{"inline-secret", "s3cret", "xsi-secret"},
	}, {
		name:   "environment applied",
		config: "config.example.yaml",
		env: []string{"CONNECTOR_CSTA_LISTEN=127.0.0.1:9800", "CONNECTOR_CSTA_LIMITS_MAX_CONNECTIONS=7",
			"CONNECTOR_XSI_SERVERS=http://127.0.0.1:19090,http://127.0.0.1:19091"},
		contains: []string{"  listen: 127.0.0.1:9800\n", "    max_connections: 7\n",
			"  servers: ['http://127.0.0.1:19090', 'http://127.0.0.1:19091']\n"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, repoRoot, tt.env, "check-config", "--config", tt.config)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("exit code = %d, stderr: %s", r.code, r.stderr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(r.stdout, s) {
					t.Errorf("output shows %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

func TestCheckConfigProblems(t *testing.T) {
	tests := []struct {
		name   string
		config string
		env    []string
		keys   []string // each must be named on its own stderr line
	}{{
		name:   "out of range",
		config: "testdata/config/out_of_range.yaml",
		keys: []string{"log.level", "log.format", "csta.listen", "csta.default_edition", "csta.session.default_duration",
			"csta.limits.max_connections", "csta.limits.max_frame_bytes", "csta.limits.max_xml_depth",
			"csta.limits.request_timeout", "admin.listen"},
	}, {
		name:   "unknown keys and wrong types",
		config: "testdata/config/unknown_key.yaml",
		keys:   []string{"csta.max_frame_bytes", "csta.limits.max_frames", "csta.tls", "xsi.servers"},
	}, {
		name:   "auth without require_session",
		config: "testdata/config/auth_without_session.yaml",
		keys:   []string{"csta.require_session"},
	}, {
		name:   "environment override",
		config: "config.example.yaml",
		env:    []string{"CONNECTOR_CSTA_LISTEN=bad"},
		keys:   []string{"csta.listen"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, repoRoot, tt.env, "check-config", "--config", tt.config)
			if r.code != exitUsage {
				t.Fatalf("exit code = %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != len(tt.keys) {
				t.Errorf("%d problem lines, want %d:\n%s", len(lines), len(tt.keys), r.stderr)
			}
			for _, key := range tt.keys {
				if !containsPrefix(lines, "config: "+key+": ") {
					t.Errorf("no line names %s:\n%s", key, r.stderr)
				}
			}
		})
	}
}

func TestCheckConfigUnreadable(t *testing.T) {
	r := runBinary(t, repoRoot, nil, "check-config", "--config", "testdata/config/no-such-file.yaml")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "config: read testdata/config/no-such-file.yaml") {
		t.Errorf("exit code = %d, stderr = %q", r.code, r.stderr)
	}
}

func containsPrefix(lines []string, prefix string) bool {
	for _, line := range lines {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func TestRunConfigRequired(t *testing.T) {
	r := runBinary(t, t.TempDir(), nil, "run")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--config FILE is required (there is no config.example.yaml in the current directory)") {
		t.Errorf("exit code = %d, stderr = %q", r.code, r.stderr)
	}
	r = runBinary(t, repoRoot, nil, "run", "--config", "testdata/config/out_of_range.yaml")
	if r.code != exitUsage || !strings.Contains(r.stderr, "config: csta.limits.max_frame_bytes: ") {
		t.Errorf("run with a bad config: exit code = %d, stderr = %q", r.code, r.stderr)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeConfig writes a run configuration; the embedded XSP simulator
// (xsi.simulate is true by default) listens on a free port, and the
// hoteling state file is next to the configuration.
func writeConfig(t *testing.T, path, cstaListen, adminListen, extra string) {
	t.Helper()
	content := fmt.Sprintf("csta:\n  listen: %s\n%sadmin:\n  listen: %s\n  token: "+testAdminToken+"\nsimulator:\n  listen: 127.0.0.1:0\nsip:\n  listen: 127.0.0.1:0\nhoteling:\n  state_file: %s\njournal:\n  path: %s\nstore:\n  path: %s\n",
		cstaListen, extra, adminListen, filepath.Join(filepath.Dir(path), "hoteling.json"), filepath.Join(filepath.Dir(path), "journal.db"), filepath.Join(filepath.Dir(path), "connector.db"))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until cond holds or 10 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 10*time.Second, what, cond)
}

func accepts(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// startProcess runs the connector binary with args; the process is killed
// at the end of the test if it is still running. exited closes when it ends.
func startProcess(t *testing.T, args ...string) (cmd *exec.Cmd, stderr *testlog.Buffer, exited chan struct{}) {
	t.Helper()
	return startCommand(t, exec.Command(binary, args...))
}

// startCommand is startProcess for a ready-made command.
func startCommand(t *testing.T, cmd *exec.Cmd) (_ *exec.Cmd, stderr *testlog.Buffer, exited chan struct{}) {
	t.Helper()
	stderr = new(testlog.Buffer)
	cmd.Env = append(cleanEnv(), cmd.Env...) // the test's own CONNECTOR_* overrides win
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	return cmd, stderr, exited
}

// terminate sends cmd (started by startProcess or startCommand) SIGTERM
// and returns its exit code once it has exited; no exit within 15 s fails
// the test.
func terminate(t *testing.T, cmd *exec.Cmd, stderr *testlog.Buffer, exited <-chan struct{}) int {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15 s after SIGTERM:\n%s", stderr.String())
	}
	return cmd.ProcessState.ExitCode()
}

func TestRunReloadAndShutdown(t *testing.T) {
	dir := t.TempDir()
	configPath := filepath.Join(dir, "connector.yaml")
	cstaAddr, adminAddr := freePort(t), freePort(t)
	writeConfig(t, configPath, cstaAddr, adminAddr, "")

	cmd, stderr, exited := startProcess(t, "run", "--config", configPath)

	running := `msg="connector running" csta=` + cstaAddr + " admin=" + adminAddr + " csta_websocket=ws://" + adminAddr + "/csta"
	waitFor(t, "the startup log", func() bool { return strings.Contains(stderr.String(), running) })
	if strings.Contains(stderr.String(), "no BroadWorks gateway built yet") {
		t.Errorf("log still warns of a missing gateway:\n%s", stderr.String())
	}
	if !accepts(cstaAddr) || !accepts(adminAddr) {
		t.Fatal("CSTA or admin port not accepting after startup")
	}

	// xsi.simulate is true: the embedded simulator starts and the XSI link
	// comes up on its URL.
	var simURL string
	waitFor(t, "the simulator's URL", func() bool {
		m := simulatorURL.FindStringSubmatch(stderr.String())
		if m != nil {
			simURL = m[1]
		}
		return m != nil
	})
	linkUp := `msg="xsi link" server=` + simURL + " state=up"
	waitFor(t, "the XSI link up", func() bool { return strings.Contains(stderr.String(), linkUp) })
	// Start-up recovery ran once the snapshots were in: nothing to repair.
	waitFor(t, "the start-up recovery", func() bool {
		return strings.Contains(stderr.String(), `msg="reconciler: start-up recovery done" repairs=0 failed=0`)
	})

	// The CSTA WebSocket is mounted on the admin server, behind the admin
	// token while csta.websocket.auth is none; it stays open until the
	// shutdown.
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+adminAddr+"/csta", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("CSTA WebSocket without the admin token: %v (%v), want 401", err, resp)
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+adminAddr+"/csta?token="+testAdminToken, nil)
	if err != nil {
		t.Fatalf("CSTA WebSocket: %v (%v)", err, resp)
	}
	defer ws.Close()
	// Both transports open real CSTA sessions.
	tcp, err := net.Dial("tcp", cstaAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcpFrames := csta.NewFrameReader(tcp, csta.MaxFrameSize)
	startSession, _ := csta.AppendFrame(nil, 1, []byte(startSessionXML))
	tcp.Write(startSession)
	tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := tcpFrames.ReadFrame(); err != nil || f.InvokeID != 1 || !strings.Contains(string(f.XML), "StartApplicationSessionPosResponse") {
		t.Fatalf("CSTA session over TCP: %v %s", err, f.XML)
	}
	ws.WriteMessage(websocket.BinaryMessage, startSession)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), "StartApplicationSessionPosResponse") {
		t.Fatalf("CSTA session over WebSocket: %v %s", err, msg)
	}
	ws.SetReadDeadline(time.Time{})
	// A Zultys MX client speaks text messages (csta.ParseTextFrame) and
	// is answered in them.
	zultys, _, err := websocket.DefaultDialer.Dial("ws://"+adminAddr+"/csta?token="+testAdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	zultysStart, _ := csta.AppendTextFrame(nil, startSession)
	zultys.WriteMessage(websocket.TextMessage, zultysStart)
	zultys.SetReadDeadline(time.Now().Add(5 * time.Second))
	if typ, msg, err := zultys.ReadMessage(); err != nil || typ != websocket.TextMessage {
		t.Fatalf("CSTA session over WebSocket, Zultys dialect: %v type %d %q", err, typ, msg)
	} else if f, err := csta.ParseTextFrame(msg, csta.MaxFrameSize); err != nil || f.InvokeID != 1 || !strings.Contains(string(f.XML), "StartApplicationSessionPosResponse") {
		t.Fatalf("CSTA session over WebSocket, Zultys dialect: %v %q", err, msg)
	}
	zultys.Close()

	// A hot-desk login and logout through the gateway and the simulator:
	// agent1 logs on at desk1, and the monitor on desk1 sees it.
	cti := &rawCTI{t: t, conn: tcp, fr: tcpFrames}
	cti.send(2, `<MonitorStart xmlns="`+ns6+`"><monitorObject><deviceObject>desk1</deviceObject></monitorObject></MonitorStart>`)
	cti.expect(2, "MonitorStartResponse")
	cti.send(3, `<SetAgentState xmlns="`+ns6+`"><device>desk1</device><requestedAgentState>loggedOn</requestedAgentState><agentID>agent1</agentID></SetAgentState>`)
	cti.expect(3, "SetAgentStateResponse")
	cti.expect(csta.EventInvokeID, "AgentLoggedOnEvent")
	// desk1's own forwarding (off) is remembered in the store (read after
	// the exit below: the running connector holds the file's lock).
	cti.send(4, `<SetAgentState xmlns="`+ns6+`"><device>desk1</device><requestedAgentState>loggedOff</requestedAgentState><agentID>agent1</agentID></SetAgentState>`)
	cti.expect(4, "SetAgentStateResponse")
	cti.expect(csta.EventInvokeID, "AgentLoggedOffEvent")

	wsClosed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				wsClosed <- err
				return
			}
		}
	}()

	// A live change is applied, a listen change refused by name.
	writeConfig(t, configPath, freePort(t), adminAddr, "  limits:\n    max_connections: 7\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(stderr.String(), "reload: applied") })
	logged := stderr.String()
	if !strings.Contains(logged, "key=csta.listen") || !strings.Contains(logged, "changed=[csta.limits.max_connections]") {
		t.Errorf("reload log should refuse csta.listen and apply max_connections:\n%s", logged)
	}

	// An invalid file keeps the running configuration.
	writeConfig(t, configPath, cstaAddr, adminAddr, "  limits:\n    max_frame_bytes: 70000\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload", func() bool { return strings.Contains(stderr.String(), "keeping the running one") })
	if !strings.Contains(stderr.String(), "key=csta.limits.max_frame_bytes") {
		t.Errorf("reload log should name csta.limits.max_frame_bytes:\n%s", stderr.String())
	}
	if !accepts(cstaAddr) {
		t.Error("CSTA port closed after a refused reload")
	}

	if code := terminate(t, cmd, stderr, exited); code != exitOK {
		t.Errorf("exit code = %d, want 0:\n%s", code, stderr.String())
	}
	// The store holds the login and logout: the journal has agent1's
	// association at desk1, ended by the logout, and desk1's remembered
	// forwarding, kept while agent1 sat there, is gone.
	st, err := store.Open(filepath.Join(dir, "connector.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := st.Remembered().Load(); err != nil || len(rs) != 0 {
		t.Errorf("remembered forwarding after the logout: %+v, %v", rs, err)
	}
	if as, err := st.Journal().AgentBetween(t.Context(), "agent1@example.com", time.Now().Add(-time.Hour), time.Now()); err != nil ||
		len(as) != 1 || as[0].DeviceID != "desk1" || as[0].EndedBy != journal.EndLogout {
		t.Errorf("journal of agent1: %+v, %v", as, err)
	}
	st.Close()
	// The CTI session was told before the connection closed (after the
	// last events of the logout, if any were still queued).
	tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := tcpFrames.ReadFrame()
		if err == nil && f.InvokeID == csta.EventInvokeID && !strings.Contains(string(f.XML), "ApplicationSessionTerminated") {
			continue
		}
		if err != nil || !strings.Contains(string(f.XML), "ApplicationSessionTerminated") {
			t.Errorf("on shutdown the TCP session got %v %s, want ApplicationSessionTerminated", err, f.XML)
		}
		break
	}
	if accepts(cstaAddr) {
		t.Error("CSTA port still open after exit")
	}
	// The XSI link went down before the process stopped.
	logged = stderr.String()
	linkDown := `msg="xsi link" server=` + simURL + " state=down"
	if down, stopped := strings.Index(logged, linkDown), strings.Index(logged, `msg="connector stopped"`); down < 0 || stopped < down {
		t.Errorf("XSI link not logged down before the exit:\n%s", logged)
	}
	if accepts(strings.TrimPrefix(simURL, "http://")) {
		t.Error("simulator port still open after exit")
	}
	select {
	case <-wsClosed:
	case <-time.After(5 * time.Second):
		t.Error("CSTA WebSocket still open after exit")
	}
}

const ns6 = "http://www.ecma-international.org/standards/ecma-323/csta/ed6"

// rawCTI is a CTI client over a raw TCP connection.
type rawCTI struct {
	t    *testing.T
	conn net.Conn
	fr   *csta.FrameReader
}

func (c *rawCTI) send(invokeID int, xml string) {
	c.t.Helper()
	b, err := csta.AppendFrame(nil, invokeID, []byte(xml))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads frames until one with root, skipping other events (agent
// state changes, system status); an unexpected answer fails the test.
func (c *rawCTI) expect(invokeID int, root string) string {
	c.t.Helper()
	for range 20 {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", root, err)
		}
		x := string(f.XML)
		if f.InvokeID == invokeID && strings.Contains(x, "<"+root) {
			c.conn.SetReadDeadline(time.Time{})
			return x
		}
		if f.InvokeID != csta.EventInvokeID {
			c.t.Fatalf("waiting for %s (%04d), got %04d: %s", root, invokeID, f.InvokeID, x)
		}
		c.t.Logf("skipped event: %s", x)
	}
	c.t.Fatalf("no %s", root)
	return ""
}

var simulatorURL = regexp.MustCompile(`msg="xsp simulator running[^"]*" url=(http://\S+)`)

const startSessionXML = `<StartApplicationSession xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session"><applicationInfo><applicationID>smoke</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed6</protocolVersion></requestedProtocolVersions></StartApplicationSession>`

func TestRunBindFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	configPath := filepath.Join(dir, "connector.yaml")

	for _, tt := range []struct{ name, cstaListen, adminListen string }{
		{"csta port taken", taken.Addr().String(), freePort(t)},
		{"admin port taken", freePort(t), taken.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeConfig(t, configPath, tt.cstaListen, tt.adminListen, "")
			r := runBinary(t, dir, nil, "run", "--config", configPath)
			if r.code != exitFailure || !strings.Contains(r.stderr, "address already in use") {
				t.Errorf("exit code = %d, want %d; stderr: %s", r.code, exitFailure, r.stderr)
			}
		})
	}
}
