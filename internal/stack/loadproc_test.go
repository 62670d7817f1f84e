package stack

import (
	"bufio"
	"encoding/json"
	"io"
	"testing"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestServeLoad drives the load process's side over pipes, as the parent
// does over the child's stdin and stdout.
func TestServeLoad(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeLoad(inR, outW); outW.Close() }()
	out := bufio.NewReader(outR)
	call := func(req LoadRequest) LoadResponse {
		t.Helper()
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inW.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var resp LoadResponse
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	tests := []struct {
		name    string
		req     LoadRequest
		wantErr bool
		check   func(t *testing.T, r LoadResponse)
	}{
		{"snapshots before start", LoadRequest{Op: "snapshots", IDs: []string{AgentUser(1)}}, true, nil},
		{"start", LoadRequest{Op: "start", Users: []xspsim.User{{ID: AgentUser(1), CallCenter: true}, {ID: DeskUser(1), HotelingHost: true}},
			Username: simUser, Password: simPass, CFA: map[string]string{DeskUser(1): DeskOwnNumber(1)}}, false,
			func(t *testing.T, r LoadResponse) {
				if r.URL == "" {
					t.Error("no URL")
				}
			}},
		{"latency", LoadRequest{Op: "latency", Latency: xspsim.Latency{Min: 1, Max: 1}}, false, nil},
		{"snapshots", LoadRequest{Op: "snapshots", IDs: []string{AgentUser(1), DeskUser(1)}}, false,
			func(t *testing.T, r LoadResponse) {
				if d := r.Snapshots[DeskUser(1)]; !d.CFAActive || d.CFANumber != DeskOwnNumber(1) {
					t.Errorf("desk %+v, want its own CFA", d)
				}
				if a := r.Snapshots[AgentUser(1)]; a.AgentState != xspsim.StateSignOut {
					t.Errorf("agent %+v", a)
				}
			}},
		{"unknown user", LoadRequest{Op: "snapshots", IDs: []string{"nobody@" + Domain}}, true, nil},
		{"storm without clients", LoadRequest{Op: "storm", Agents: []string{AgentID(1)}, Devices: []string{DeskID(1)}}, true, nil},
		{"unknown op", LoadRequest{Op: "dance"}, true, nil},
		{"stop", LoadRequest{Op: "stop"}, false, nil},
	}
	for _, tt := range tests {
		r := call(tt.req)
		if (r.Err != "") != tt.wantErr {
			t.Errorf("%s: err %q, want error %v", tt.name, r.Err, tt.wantErr)
		}
		if tt.check != nil {
			tt.check(t, r)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("ServeLoad: %v", err)
	}
}
