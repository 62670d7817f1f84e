package main

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/internal/testlog"
)

// TestRunPairLosesTheDatabase: two `connector run` processes in
// active-standby on one PostgreSQL. The first is active and serves CSTA;
// the second stands by (CSTA port closed, /readyz 503 "standby"). When
// PostgreSQL dies the active cannot renew its lease: it is deposed before
// the lease could pass, stops serving CTI, logs it and exits 1 (systemd
// would start it again as a standby); the standby, which cannot take the
// lease either, stays one and stops cleanly on SIGTERM.
func TestRunPairLosesTheDatabase(t *testing.T) {
	pg := pgtest.Own(t)
	dsn := pg.NewDatabase(t)
	type instance struct {
		id, csta, admin string
		cmd             *exec.Cmd
		stderr          *testlog.Buffer
		exited          chan struct{}
	}
	var pair []*instance
	for _, id := range []string{"a", "b"} {
		dir := t.TempDir()
		in := &instance{id: id, csta: freePort(t), admin: freePort(t)}
		path := filepath.Join(dir, "connector.yaml")
		writeConfig(t, path, in.csta, in.admin, "ha:\n  mode: active-standby\n  instance_id: "+id+"\n  lease_ttl: 1s\n")
		cmd := exec.Command(binary, "run", "--config", path)
		cmd.Env = []string{"CONNECTOR_STORE_DRIVER=postgres", "CONNECTOR_STORE_POSTGRES_DSN=" + dsn}
		in.cmd, in.stderr, in.exited = startCommand(t, cmd)
		buf := in.stderr
		pair = append(pair, in)
		if id == "a" {
			waitFor(t, "a serving", func() bool {
				return strings.Contains(buf.String(), `msg="connector running" csta=`+in.csta) && accepts(in.csta)
			})
			if !strings.Contains(buf.String(), `msg="ha: became active"`) {
				t.Fatalf("a's log:\n%s", buf.String())
			}
		}
	}
	a, b := pair[0], pair[1]
	waitFor(t, "b standing by", func() bool {
		return strings.Contains(b.stderr.String(), `msg="ha: standing by"`) && strings.Contains(b.stderr.String(), "holder=a")
	})
	if accepts(b.csta) {
		t.Error("b's CSTA port accepts")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.admin+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("b's /readyz: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}

	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("a still runs 30 s after PostgreSQL died:\n%s", a.stderr.String())
	}
	if code := a.cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Errorf("a's exit status %d, want %d", code, exitFailure)
	}
	for _, line := range []string{`msg="ha: deposed"`, `msg="connector deposed: `} {
		if !strings.Contains(a.stderr.String(), line) {
			t.Errorf("a's log lacks %s:\n%s", line, a.stderr.String())
		}
	}
	if accepts(a.csta) {
		t.Error("a's CSTA port accepts after its deposition")
	}
	if strings.Contains(b.stderr.String(), `msg="ha: became active"`) {
		t.Errorf("b took a lease from a dead database:\n%s", b.stderr.String())
	}
	if code := terminate(t, b.cmd, b.stderr, b.exited); code != exitOK {
		t.Errorf("b's exit status after SIGTERM %d:\n%s", code, b.stderr.String())
	}
}
