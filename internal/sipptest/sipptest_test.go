package sipptest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/sipp from the builder")

// DemoPhone is the scenario the README runs against `connector run` with
// config.example.yaml: agent1's phone 4001 subscribes, turns DND on, waits
// for the confirmed change, turns it off again and unsubscribes.
func DemoPhone() *Phone {
	const ed3 = `xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"`
	return NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("DoNotDisturbEvent").
		Request(`<SetDoNotDisturb ` + ed3 + `><device>4001</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`).
		AwaitNotify("doNotDisturbOn>true").
		Request(`<SetDoNotDisturb ` + ed3 + `><device>4001</device><doNotDisturbOn>false</doNotDisturbOn></SetDoNotDisturb>`).
		AwaitNotify("doNotDisturbOn>false").
		Unsubscribe().
		Pause(200)
}

// TestDemoScenarioUpToDate keeps testdata/sipp/demo-phone-4001.xml what the
// builder makes (go test ./internal/sipptest -update rewrites it).
func TestDemoScenarioUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "sipp", "demo-phone-4001.xml")
	want := DemoPhone().XML()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not what the builder makes; run go test ./internal/sipptest -update", path)
	}
}
