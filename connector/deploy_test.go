package connector

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/memcluster"
	"github.com/broadworks-connector/connector/internal/testtool"
)

// The operator's kit in deploy/ (README "Running in production") against
// the connector it is for: every metric the Grafana dashboard and the alert
// rules read is one the connector exports, promtool accepts the rules and
// their unit tests pass, and systemd accepts the unit and rates its
// hardening.

// deployDir is the repository's deploy/ folder.
const deployDir = "../deploy"

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// exportedMetrics are the metric families a running connector exports,
// vectors with no series yet included.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	c := start(t, testConfig(t.TempDir()))
	awaitReady(t, c)
	names := map[string]bool{}
	fams, err := adminView{c}.metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	// A vector with no series yet is not gathered: its description is. An
	// instance of an active/standby pair adds the lease's (ha).
	e, err := ha.New(ha.Config{Cluster: memcluster.New().Connect(), LeaseName: "connector-1", InstanceID: "a", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cs := append(adminView{c}.partCollectors(), c.phones.Load().Collectors()...)
	cs = append(cs, e.Collectors()...)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, col := range cs {
		ch := make(chan *prometheus.Desc)
		go func() { col.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = true
			}
		}
	}
	return names
}

// metricNames are the connector's, the Go runtime's and the process's
// metric names an expression reads (a histogram's series by family).
func metricNames(expr string) []string {
	var out []string
	for _, n := range regexp.MustCompile(`\b(?:connector|go|process)_[a-z0-9_]+\b`).FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, "_seconds"+suffix) {
				n = strings.TrimSuffix(n, suffix)
			}
		}
		out = append(out, n)
	}
	return out
}

func TestDeployKit(t *testing.T) {
	exported := exportedMetrics(t)
	unknown := func(where, expr string) {
		t.Helper()
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q reads no metric of the connector", where, expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %s is not a metric the connector exports (%q)", where, n, expr)
			}
		}
	}

	t.Run("grafana", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(deployDir, "grafana", "connector-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		type panel struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				W, X int
			} `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		}
		var dash struct {
			UID        string  `json:"uid"`
			Title      string  `json:"title"`
			Panels     []panel `json:"panels"`
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Query string `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatal(err)
		}
		if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
			t.Fatalf("dashboard without uid, title or panels: %q %q %d", dash.UID, dash.Title, len(dash.Panels))
		}
		ids := map[int]bool{}
		graphs := 0
		for _, p := range dash.Panels {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q runs past the 24 columns", p.Title)
			}
			if p.Type == "row" {
				continue
			}
			graphs++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				unknown("panel "+p.Title, tg.Expr)
			}
		}
		for _, v := range dash.Templating.List {
			if strings.Contains(v.Query, "label_values(") {
				unknown("variable "+v.Name, v.Query)
			}
		}
		t.Logf("%d panels", graphs)
		// Prometheus parses every query: promtool checks them as recording
		// rules, the dashboard's variables filled in.
		var rules strings.Builder
		rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
		fill := strings.NewReplacer("$job", "connector", "$instance", ".*")
		n := 0
		for _, p := range dash.Panels {
			for _, tg := range p.Targets {
				n++
				q, _ := json.Marshal(fill.Replace(tg.Expr)) // a JSON string is a YAML one
				fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
			}
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), []byte(rules.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, testtool.Path(t, "promtool", "prometheus"), "check", "rules", "dashboard.yml")
	})

	t.Run("alerts", func(t *testing.T) {
		dir := filepath.Join(deployDir, "prometheus")
		raw, err := os.ReadFile(filepath.Join(dir, "connector-alerts.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var rules struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(raw, &rules); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				if strings.HasPrefix(strings.TrimSpace(r.Expr), "up{") {
					continue // the scrape's own
				}
				unknown("alert "+r.Alert, r.Expr)
			}
		}
		if n == 0 {
			t.Fatal("no alert rules")
		}
		promtool := testtool.Path(t, "promtool", "prometheus")
		run(t, dir, promtool, "check", "rules", "connector-alerts.yml")
		run(t, dir, promtool, "test", "rules", "connector-alerts.test.yml")
	})

	t.Run("systemd", func(t *testing.T) {
		analyze := testtool.Path(t, "systemd-analyze", "systemd")
		raw, err := os.ReadFile(filepath.Join(deployDir, "systemd", "connector.service"))
		if err != nil {
			t.Fatal(err)
		}
		const bin = "/usr/local/bin/connector"
		unit := string(raw)
		if !strings.Contains(unit, "ExecStart="+bin+" run --config ") {
			t.Fatalf("the unit does not run %s run --config", bin)
		}
		// verify wants every command to exist: this test's binary stands
		// in for the connector's.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "connector.service")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, bin, self)), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, analyze, "verify", path)
		// Exposure at most 2.0 of 10 ("OK"); --threshold counts tenths.
		run(t, dir, analyze, "security", "--offline=yes", "--threshold=20", path)
	})
}

// TestUnitRestartsOnFailure: a deposed instance of an active/standby pair
// exits 1 (cmd/connector); the unit must bring it back (as a standby).
func TestUnitRestartsOnFailure(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "connector.service"))
	if err != nil {
		t.Fatal(err)
	}
	restart := regexp.MustCompile(`(?m)^Restart=(on-failure|always)$`)
	if !restart.Match(unit) {
		t.Error("connector.service: want Restart=on-failure (or always), so that a deposed instance (exit 1) comes back as a standby")
	}
}
