// Package failover runs connector instances as real processes (`connector
// run`) on one PostgreSQL and one XSP simulator, for the tests and the
// benchmark of issue 18: a pair (ha.mode active-standby, one
// xsi.channel_set_id, two ha.instance_id) killed or cut from its database
// in the middle of a CTI login storm, and scope-sharded instances sharing
// one journal.
//
// The simulator (internal/stack, seeded with agent i and hot desk i) runs
// in the caller's process, outside every connector, so that it outlives
// them and the checks read BroadWorks directly. The CTI clients are the
// storm's (Storm): each has a primary link and a backup link (one instance
// each), and when its connection drops it dials the other and sends again
// what was not answered, as a contact center's CTI server does; each keeps
// per agent what its last answers promised (stack.Promise), checked with
// stack.AgentProblems.
package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/internal/testlog"
)

// Association is one entry of the journal as the admin API answers it.
type Association = admin.Association

// AdminToken is every instance's admin.token.
const AdminToken = "failover-admin-token-0123456789"

// BuildConnector builds cmd/connector into dir (the go tool must be on
// PATH, as for go test) and returns the binary's path.
func BuildConnector(dir string) (string, error) {
	bin := filepath.Join(dir, "connector")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/broadworks-connector/connector/cmd/connector").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("failover: building the connector: %w\n%s", err, out)
	}
	return bin, nil
}

// FreePort is a 127.0.0.1 address that was free a moment ago.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// InstanceConfig is one instance's configuration.
type InstanceConfig struct {
	ID         string   // ha.instance_id
	ChannelSet string   // xsi.channel_set_id (xsi.application_id connector-<ChannelSet>: one per channel set, as the XSP requires)
	Scope      []string // xsi.scope
	HA         bool     // ha.mode active-standby (else standalone)
	LeaseTTL   time.Duration
	DSN        string // store.postgres.dsn
	Desks      int    // desk0001.. listed as hot desks in the directory
	SimURL     string
}

// Instance is one `connector run` process.
type Instance struct {
	Cfg   InstanceConfig
	CSTA  string // csta.listen
	Admin string // admin.listen
	Dir   string

	cmd    *exec.Cmd
	log    *testlog.Buffer
	exited chan struct{}
}

// yaml is the instance's configuration file: the simulator's group(s) as
// the scope, BroadWorks as the directory (desks listed), no phone sync, no
// files: everything durable is in PostgreSQL.
func (c InstanceConfig) yaml(cstaAddr, adminAddr string) string {
	var b strings.Builder
	mode := "standalone"
	if c.HA {
		mode = "active-standby"
	}
	fmt.Fprintf(&b, `log:
  level: info
csta:
  listen: %s
  limits:
    max_connections: 4096
    max_connections_per_source: 4096
admin:
  listen: %s
  token: %s
xsi:
  simulate: false
  servers: [%s]
  username: admin@example.com
  password: secret
  channel_set_id: %s
  application_id: connector-%s
  scope: [%s]
  heartbeat_interval: 1s
  reconnect_min: 20ms
  reconnect_max: 200ms
  rate_limit: 100000
  rate_burst: 100000
directory:
  domain: %s
  agents: []
  reason_codes: []
  default_unavailable_code: ""
  idle_ttl: 0s
  devices: [`, cstaAddr, adminAddr, AdminToken, c.SimURL, c.ChannelSet, c.ChannelSet, strings.Join(c.Scope, ", "), stack.Domain)
	for i := 1; i <= c.Desks; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", stack.DeskID(i)+"="+stack.DeskUser(i)+",hotdesk")
	}
	fmt.Fprintf(&b, `]
gateway:
  conflict_window: 0s
sip:
  listen: ""
hoteling:
  state_file: ""
journal:
  path: ""
store:
  driver: postgres
  postgres:
    dsn: %q
ha:
  mode: %s
  instance_id: %s
  lease_ttl: %s
  heartbeat_interval: 500ms
`, c.DSN, mode, c.ID, c.LeaseTTL)
	return b.String()
}

// StartInstance writes cfg to a new folder under dir and starts `binary
// run` on free ports. It does not wait for anything: see AwaitAdmin,
// AwaitReady, AwaitStandby.
func StartInstance(binary, dir string, cfg InstanceConfig) (*Instance, error) {
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 3 * time.Second
	}
	in := &Instance{Cfg: cfg, Dir: filepath.Join(dir, cfg.ID), log: new(testlog.Buffer), exited: make(chan struct{})}
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if in.CSTA, err = FreePort(); err != nil {
		return nil, err
	}
	if in.Admin, err = FreePort(); err != nil {
		return nil, err
	}
	path := filepath.Join(in.Dir, "connector.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml(in.CSTA, in.Admin)), 0o600); err != nil {
		return nil, err
	}
	in.cmd = exec.Command(binary, "run", "--config", path)
	in.cmd.Dir = in.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNECTOR_") { // an operator's shell changes nothing
			in.cmd.Env = append(in.cmd.Env, kv)
		}
	}
	// The instance dies with this process, even killed (a test timing
	// out), rather than keep ports and the database busy.
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in.cmd.Stderr = in.log
	in.cmd.Stdout = in.log
	if err := in.cmd.Start(); err != nil {
		return nil, fmt.Errorf("failover: starting %s: %w", cfg.ID, err)
	}
	go func() {
		in.cmd.Wait()
		close(in.exited)
	}()
	return in, nil
}

// Log is everything the instance logged so far.
func (in *Instance) Log() string { return in.log.String() }

// Exited closes when the process has ended.
func (in *Instance) Exited() <-chan struct{} { return in.exited }

// ExitCode is the process's exit code once Exited is closed (-1 when a
// signal ended it).
func (in *Instance) ExitCode() int { return in.cmd.ProcessState.ExitCode() }

// Kill sends SIGKILL and returns when it was sent; it waits for the exit.
func (in *Instance) Kill() time.Time {
	at := time.Now()
	in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited
	return at
}

// Stop kills the process if it still runs (for cleanups).
func (in *Instance) Stop() {
	select {
	case <-in.exited:
	default:
		in.Kill()
	}
}

// AdminGet does GET path on the admin server with the token; it returns the
// status and the body.
func (in *Instance) AdminGet(ctx context.Context, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Admin+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	return res.StatusCode, body, err
}

// Readyz is /readyz's status and body ("" and 0 while the admin server
// does not answer).
func (in *Instance) Readyz(ctx context.Context) (int, string) {
	code, body, err := in.AdminGet(ctx, "/readyz")
	if err != nil {
		return 0, ""
	}
	return code, strings.TrimSpace(string(body))
}

// await polls cond every 20 ms until it holds, the process exits or
// timeout passes.
func (in *Instance) await(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-in.exited:
			return fmt.Errorf("failover: %s exited (%v) waiting for %s; its log:\n%s", in.Cfg.ID, in.cmd.ProcessState, what, tail(in.Log(), 40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("failover: %s: no %s within %v; its log:\n%s", in.Cfg.ID, what, timeout, tail(in.Log(), 40))
		}
	}
	return nil
}

// AwaitReady waits until /readyz answers 200 (serving: CSTA open, the XSI
// channel set up, the scope active).
func (in *Instance) AwaitReady(ctx context.Context, timeout time.Duration) error {
	return in.await("/readyz 200", timeout, func() bool {
		code, _ := in.Readyz(ctx)
		return code == http.StatusOK
	})
}

// AwaitStandby waits until /readyz answers 503 "standby" and checks that
// the CSTA port is closed.
func (in *Instance) AwaitStandby(ctx context.Context, timeout time.Duration) error {
	var last string
	err := in.await(`/readyz 503 "standby"`, timeout, func() bool {
		code, body := in.Readyz(ctx)
		last = fmt.Sprintf("%d %q", code, body)
		return code == http.StatusServiceUnavailable && body == "standby"
	})
	if err != nil {
		return fmt.Errorf("%w (last /readyz: %s)", err, last)
	}
	if Accepts(in.CSTA) {
		return fmt.Errorf("failover: %s stands by with its CSTA port %s open", in.Cfg.ID, in.CSTA)
	}
	return nil
}

// Accepts reports whether addr accepts a TCP connection now.
func Accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// JournalOfAgent is the instance's journal of agent agentID (a CSTA agent
// ID) between from and to (the admin API's journal route).
func (in *Instance) JournalOfAgent(ctx context.Context, agentID string, from, to time.Time) ([]admin.Association, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	return in.journal(ctx, "/api/v1/journal/agent/"+url.PathEscape(agentID)+"?"+q.Encode())
}

// JournalOfDesk is JournalOfAgent for a desk (a CSTA device ID).
func (in *Instance) JournalOfDesk(ctx context.Context, desk string, from, to time.Time) ([]admin.Association, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	return in.journal(ctx, "/api/v1/journal/desk/"+url.PathEscape(desk)+"?"+q.Encode())
}

func (in *Instance) journal(ctx context.Context, path string) ([]admin.Association, error) {
	code, body, err := in.AdminGet(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("failover: %s: GET %s: %w", in.Cfg.ID, path, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("failover: %s: GET %s: %d %s", in.Cfg.ID, path, code, body)
	}
	var as []admin.Association
	if err := json.Unmarshal(body, &as); err != nil {
		return nil, fmt.Errorf("failover: %s: GET %s: %w: %s", in.Cfg.ID, path, err, body)
	}
	return as, nil
}

// Cluster is the instance's /api/v1/cluster.
func (in *Instance) Cluster(ctx context.Context) ([]admin.ClusterInstance, error) {
	code, body, err := in.AdminGet(ctx, "/api/v1/cluster")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("failover: %s: /api/v1/cluster: %d %s", in.Cfg.ID, code, body)
	}
	var insts []admin.ClusterInstance
	if err := json.Unmarshal(body, &insts); err != nil {
		return nil, fmt.Errorf("failover: %s: /api/v1/cluster: %w: %s", in.Cfg.ID, err, body)
	}
	return insts, nil
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... (%d lines before)", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// Tail is the last lines of s, for failure messages.
func Tail(s string, lines int) string { return tail(s, lines) }

// errNoAnswer is a request that got no answer because its connection
// ended.
var errNoAnswer = errors.New("failover: no answer: the connection ended")

// procs is a set of instances stopped together.
type procs struct {
	mu  sync.Mutex
	all []*Instance
}

func (p *procs) add(in *Instance) {
	p.mu.Lock()
	p.all = append(p.all, in)
	p.mu.Unlock()
}

func (p *procs) stop() {
	p.mu.Lock()
	all := p.all
	p.all = nil
	p.mu.Unlock()
	for _, in := range all {
		in.Stop()
	}
}
