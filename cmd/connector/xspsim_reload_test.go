package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestXSPSimulatorCommandReload: SIGHUP makes `connector xspsim` add the
// users that appeared in simulator.users, with their roles; a group
// subscription made before gets their events at once. Removed users stay
// and other simulator changes wait for a restart (both logged); an invalid
// file changes nothing.
func TestXSPSimulatorCommandReload(t *testing.T) {
	dir := t.TempDir()
	configPath := filepath.Join(dir, "xspsim.yaml")
	listen := freePort(t)
	// xsi.simulate false: the default directory names users this simulator
	// does not have, which is checked only when simulating.
	write := func(simulator string) {
		t.Helper()
		content := fmt.Sprintf("xsi:\n  simulate: false\n  username: %s\n  password: %s\nsimulator:\n  listen: %s\n%s", simUser, simPassword, listen, simulator)
		if err := os.WriteFile(configPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  users: [a1@example.com, desk1@example.com]\n  call_center_agents: [a1@example.com]\n  hoteling_hosts: [desk1@example.com]\n")
	cmd, stderr, exited := startProcess(t, "xspsim", "--config", configPath)
	base := "http://" + listen
	waitFor(t, "the simulator", func() bool {
		return strings.Contains(stderr.String(), `msg="xsp simulator running" url=`+base) && accepts(listen)
	})
	events := "/com.broadsoft.xsi-events/v2.0"
	actions := base + "/com.broadsoft.xsi-actions/v2.0/user/"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := xsiRequest(t, ctx, http.MethodPost, base+"/com.broadsoft.async"+events+"/channel",
		xsiBody("Channel", "<channelSetId>reload</channelSetId><priority>1</priority><weight>100</weight><expires>3600</expires><applicationId>reload</applicationId>"))
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("open channel: %d", stream.StatusCode)
	}
	docs := make(chan []byte, 100)
	go func() {
		defer stream.Body.Close()
		_ = splitDocuments(stream.Body, docs)
	}()
	next := func(want string) []byte {
		t.Helper()
		select {
		case d := <-docs:
			if !strings.Contains(string(d), want) {
				t.Fatalf("stream: want %s, got %s", want, d)
			}
			return d
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %s", want)
		}
		return nil
	}
	next("<Channel ")
	xsiCall(t, http.MethodPost, base+events+"/enterprise/ent1/group/grp1",
		xsiBody("Subscription", "<eventPackageList><event>Do Not Disturb</event><event>Call Center Agent</event></eventPackageList><expires>3600</expires><channelSetId>reload</channelSetId><applicationId>reload</applicationId>"))
	status := func(method, url, body string) int {
		t.Helper()
		resp := xsiRequest(t, ctx, method, url, body)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status(http.MethodGet, actions+"new1@example.com/services/CallCenter", ""); st != http.StatusNotFound {
		t.Fatalf("a user not yet added: %d", st)
	}

	// new1 (a signed-in agent) and desk2 (a host) appear, desk1 goes, the
	// group changes.
	write("  users: [a1@example.com, new1@example.com, desk2@example.com]\n  call_center_agents: [a1@example.com, new1@example.com]\n" +
		"  signed_in_agents: [new1@example.com]\n  hoteling_hosts: [desk2@example.com]\n  group_id: other\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the users added", func() bool {
		return strings.Contains(stderr.String(), `msg="reload: xsp simulator users added" added=2 users=4`)
	})
	for _, want := range []string{
		`msg="reload: users not in simulator.users stay in the simulator until a restart" users=1`,
		`msg="reload: change needs a restart of the simulator, not applied" key=simulator.group_id`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
	}
	if b := xsiCall(t, http.MethodGet, actions+"new1@example.com/services/CallCenter", ""); !strings.Contains(string(b), "<agentACDState>Available<") {
		t.Errorf("added agent not signed in: %s", b)
	}
	xsiCall(t, http.MethodGet, actions+"desk2@example.com/services/HotelingHost", "")
	xsiCall(t, http.MethodGet, actions+"desk1@example.com/services/HotelingHost", "") // stays
	xsiCall(t, http.MethodPut, actions+"new1@example.com/services/DoNotDisturb", xsiBody("DoNotDisturb", "<active>true</active>"))
	if ev := next("DoNotDisturbEvent"); !strings.Contains(string(ev), "new1@example.com") {
		t.Errorf("event of the added user: %s", ev)
	}

	// An invalid file changes nothing.
	write("  users: [a1@example.com]\n  hoteling_hosts: [nobody@example.com]\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refusal", func() bool {
		return strings.Contains(stderr.String(), `msg="reload: configuration invalid, keeping the running one"`)
	})
	xsiCall(t, http.MethodGet, actions+"new1@example.com/services/CallCenter", "")

	cancel()
	if code := terminate(t, cmd, stderr, exited); code != exitOK {
		t.Errorf("exit code %d:\n%s", code, stderr.String())
	}
}
