package csta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

// Fixture-driven tests: every file pair testdata/xml/csta/<case>.req.xml
// (what a client sends) and <case>.want.xml (the answer it must get) is sent
// over a real loopback TCP connection to a fresh server.
//
// Comparison is structural (fixtureCompare): local names, namespace URI of
// every element, attributes other than namespace declarations, trimmed text
// and child order. Whitespace between elements, namespace prefixes and the
// XML declaration do not matter. A want element whose whole text is "*"
// matches any non-empty text (session IDs, register IDs, cross-reference IDs).
//
// A request may hold placeholders {{sessionID}} and {{monitorCrossRefID}}:
// they are replaced by the value of that element in the most recent answer
// of an earlier step on the same connection.

const fixtureDir = "../testdata/xml/csta"

// fixtureDevices are the devices the fake service knows. 212700 is the
// device of the byte-exact psco-tech MonitorStart capture.
var fixtureDevices = []DeviceID{"4711", "7659366", "212700"}

// fixtureSeats is where the fake service's agents sit: agent-4711 at its
// own device, agent-7659366 at one outside the limited user's.
var fixtureSeats = map[string]DeviceID{"agent-4711": "4711", "agent-7659366": "7659366"}

type fixtureCase struct {
	name string
	// prior lists cases run first on the same connection, each checked
	// against its own want file (open a session, start a monitor, set state).
	prior []string
	// cfg adjusts testConfig() for this case.
	cfg func(*Config)
	// invokeID of the request; 0 means 1000 + the case's index.
	invokeID int
	// asciiHeader sends the format bytes as ASCII "00" (Tow-com-au PHP wrapper).
	asciiHeader bool
	// malformed marks requests that are not well-formed XML on purpose.
	malformed bool
}

var (
	fixturePasswordAuth = func(c *Config) { c.TCPAuth = Auth{Mode: "password", UserName: "cti", Password: "geheim"} }
	fixtureNeedSession  = func(c *Config) { c.RequireSession = true }
	// The session's user cti may name 4711 only (csta.authorization.devices).
	fixtureDeviceLimits = func(c *Config) {
		fixturePasswordAuth(c)
		c.RequireSession = true
		c.DeviceLimits = map[string][]DeviceID{"cti": {"4711"}}
	}
)

// fixtureCases lists every fixture; a file missing from disk fails its case,
// a file missing from this table fails TestFixtureTableCoversAllFiles.
var fixtureCases = []fixtureCase{
	// ECMA-354 application session.
	{name: "start_session_psco_ed4", invokeID: 1},
	{name: "start_session_avaya_login_ed4", invokeID: 2},
	{name: "start_session_ed6"},
	{name: "start_session_avaya_ed3_priv5"},
	{name: "start_session_php_ascii_header", asciiHeader: true},
	{name: "start_session_unsupported_version"},
	{name: "start_session_version_preference"},
	{name: "start_session_osbiz_credentials", cfg: fixturePasswordAuth},
	{name: "start_session_wrong_password", cfg: fixturePasswordAuth},
	{name: "start_session_latin1_appid"},
	{name: "start_session_bad_duration"},
	{name: "start_session_twice", prior: []string{"start_session_psco_ed4"}},
	{name: "stop_session", prior: []string{"start_session_ed6"}},
	{name: "stop_session_ed3_namespace", prior: []string{"start_session_avaya_ed3_priv5"}},
	{name: "stop_session_wrong_id", prior: []string{"start_session_ed6"}},
	{name: "reset_timer", prior: []string{"start_session_ed6"}},
	{name: "reset_timer_wrong_id", prior: []string{"start_session_psco_ed4"}},
	{name: "reset_timer_without_session"},
	{name: "session_required", cfg: fixtureNeedSession},
	// The negotiated edition (ed4) answers a request that has no namespace.
	{name: "negotiated_edition_answers", prior: []string{"start_session_psco_ed4"}},

	// System services.
	{name: "system_status_ed6", invokeID: 9998},
	{name: "system_status_out_of_range"},
	{name: "system_register_ed6"},
	{name: "request_system_status_sipe_ed3"},
	{name: "request_system_status_ed5"},

	// Monitoring.
	{name: "monitor_start_psco_ed4"},
	{name: "monitor_start_avaya_invert_filter"},
	{name: "monitor_start_ed3_no_filter"},
	{name: "monitor_start_filter_ed6"},
	{name: "monitor_start_call_object"},
	{name: "monitor_start_type_call"},
	{name: "monitor_start_bad_filter_flag"},
	{name: "monitor_start_unknown_device"},
	{name: "monitor_stop_sipe_unknown"},
	{name: "monitor_stop", prior: []string{"monitor_start_ed3_no_filter"}},
	{name: "monitor_stop_twice", prior: []string{"monitor_start_ed3_no_filter", "monitor_stop"}},
	{name: "monitor_start_device_not_allowed", cfg: fixtureDeviceLimits, prior: []string{"start_session_osbiz_credentials"}},
	// csta.limits.max_monitors reached (here by the prior monitor on this connection).
	{name: "monitor_start_global_limit", cfg: func(c *Config) { c.MaxMonitors = 1 }, prior: []string{"monitor_start_ed3_no_filter"}},

	// Agent state.
	{name: "set_agent_state_broadworks_latin1"},
	{name: "set_agent_state_broadworks_empty_device"},
	{name: "set_agent_state_ed6"},
	{name: "set_agent_state_no_namespace"},
	{name: "set_agent_state_unknown_state"},
	{name: "set_agent_state_hex_password"},
	{name: "set_agent_state_device_allowed", cfg: fixtureDeviceLimits, prior: []string{"start_session_osbiz_credentials"}},
	// Issue 13, attack 3: the device is allowed, the agent named sits elsewhere.
	{name: "set_agent_state_agent_elsewhere", cfg: fixtureDeviceLimits, prior: []string{"start_session_osbiz_credentials"}},
	{name: "set_agent_state_agent_at_device", cfg: fixtureDeviceLimits, prior: []string{"start_session_osbiz_credentials"}},
	{name: "get_agent_state_ed6"},
	{name: "get_agent_state_after_not_ready", prior: []string{"set_agent_state_broadworks_latin1"}},
	{name: "get_agent_state_unknown_device"},

	// Forwarding.
	{name: "set_forwarding_broadworks"},
	{name: "set_forwarding_ed6"},
	{name: "set_forwarding_bad_type"},
	{name: "set_forwarding_ring_count_zero"},
	{name: "set_forwarding_ring_count_not_number"},
	{name: "set_forwarding_flag_yes"},
	{name: "get_forwarding_after_set", prior: []string{"set_forwarding_ed6"}},
	{name: "get_forwarding_empty"},

	// Do Not Disturb (ed2 namespace included).
	{name: "set_dnd_broadworks"},
	{name: "set_dnd_bad_flag"},
	{name: "get_dnd_after_set", prior: []string{"set_dnd_broadworks"}},
	{name: "get_dnd_ed2"},

	// Errors. Without a readable namespace the answer uses the connection's
	// edition: the default (ed3), or the client's last one (ed6).
	{name: "unknown_request"},
	{name: "unknown_request_session_namespace"},
	{name: "malformed_xml", malformed: true},
	{name: "malformed_xml_after_ed6", malformed: true, prior: []string{"system_status_ed6"}},
	{name: "too_deeply_nested"},
}

func fixtureByName(name string) (fixtureCase, bool) {
	for _, c := range fixtureCases {
		if c.name == name {
			return c, true
		}
	}
	return fixtureCase{}, false
}

func readFixture(t testing.TB, name, kind string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name+"."+kind+".xml"))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

func TestFixtures(t *testing.T) {
	var mu sync.Mutex
	var answers [][]byte // every answer, checked with xmllint at the end
	record := func(b []byte) {
		mu.Lock()
		answers = append(answers, b)
		mu.Unlock()
	}

	t.Run("cases", func(t *testing.T) {
		for i, fc := range fixtureCases {
			invokeID := fc.invokeID
			if invokeID == 0 {
				invokeID = 1000 + i
			}
			t.Run(fc.name, func(t *testing.T) {
				t.Parallel()
				cfg := testConfig()
				if fc.cfg != nil {
					fc.cfg(&cfg)
				}
				svc := newFakeService(fixtureDevices...)
				svc.seats = fixtureSeats
				s := startServer(t, cfg, svc)
				c := dial(t, s)
				vars := map[string]string{}
				for j, p := range fc.prior {
					pc, ok := fixtureByName(p)
					if !ok {
						t.Fatalf("prior step %q is not in the table", p)
					}
					got := fixtureExchange(t, c, pc, 100+j, vars, record)
					if t.Failed() {
						t.Fatalf("prior step %s failed (answer %s)", p, got)
					}
				}
				fixtureExchange(t, c, fc, invokeID, vars, record)
				fixtureNoFurtherFrame(t, c)
			})
		}
	})

	if len(answers) > 0 {
		dir := t.TempDir()
		var files []string
		for i, a := range answers {
			f := filepath.Join(dir, fmt.Sprintf("answer%03d.xml", i))
			if err := os.WriteFile(f, a, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		xmlcheck.WellFormedFiles(t, files...)
	}
}

var fixturePlaceholder = regexp.MustCompile(`\{\{(\w+)\}\}`)

// fixtureExchange sends the request of fc, checks the answer against the
// want file and returns the answer. Values of sessionID and
// monitorCrossRefID in the answer are remembered in vars.
func fixtureExchange(t *testing.T, c *client, fc fixtureCase, invokeID int, vars map[string]string, record func([]byte)) []byte {
	t.Helper()
	req := readFixture(t, fc.name, "req")
	want := readFixture(t, fc.name, "want")
	var missing []string
	req = fixturePlaceholder.ReplaceAllFunc(req, func(m []byte) []byte {
		key := string(m[2 : len(m)-2])
		v, ok := vars[key]
		if !ok {
			missing = append(missing, key)
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		t.Fatalf("%s: no earlier answer provided %v; add a prior step", fc.name, missing)
	}

	frame, err := AppendFrame(nil, invokeID, req)
	if err != nil {
		t.Fatal(err)
	}
	if fc.asciiHeader {
		frame[0], frame[1] = '0', '0'
	}
	c.sendRaw(frame)
	f := c.read()
	record(f.XML)
	if f.InvokeID != invokeID {
		t.Errorf("%s: answer has invoke ID %04d, want %04d", fc.name, f.InvokeID, invokeID)
	}

	wantDoc := etree.NewDocument()
	wantDoc.ReadSettings = readSettings
	if err := wantDoc.ReadFromBytes(want); err != nil || wantDoc.Root() == nil {
		t.Fatalf("%s.want.xml is not XML: %v", fc.name, err)
	}
	gotDoc := etree.NewDocument()
	gotDoc.ReadSettings = readSettings
	if err := gotDoc.ReadFromBytes(f.XML); err != nil || gotDoc.Root() == nil {
		t.Fatalf("%s: answer is not XML: %v\n%s", fc.name, err, f.XML)
	}
	if diffs := fixtureCompare(wantDoc.Root(), gotDoc.Root()); len(diffs) > 0 {
		t.Errorf("%s: answer differs from %s.want.xml:\n  %s\nrequest:\n%s\nanswer:\n%s\nwant:\n%s",
			fc.name, fc.name, strings.Join(diffs, "\n  "), req, fixtureIndent(gotDoc), fixtureIndent(wantDoc))
	}

	for _, key := range []string{"sessionID", "monitorCrossRefID"} {
		if el := gotDoc.Root().FindElement("//" + key); el != nil {
			vars[key] = strings.TrimSpace(el.Text())
		}
	}
	return f.XML
}

// fixtureNoFurtherFrame checks that the request got exactly one answer:
// within a short while nothing else arrives (a closed connection is fine).
func fixtureNoFurtherFrame(t *testing.T, c *client) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	f, err := c.fr.ReadFrame()
	if err == nil {
		t.Errorf("unexpected extra frame %04d: %s", f.InvokeID, f.XML)
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) || isConnReset(err) {
		return
	}
	t.Errorf("after the answer: %v", err)
}

func fixtureIndent(d *etree.Document) string {
	c := d.Copy()
	c.Indent(2)
	s, _ := c.WriteToString()
	return s
}

// fixtureCompare compares two element trees structurally and returns one
// line per difference.
func fixtureCompare(want, got *etree.Element) []string {
	var diffs []string
	var walk func(w, g *etree.Element, path string)
	walk = func(w, g *etree.Element, path string) {
		if w.Tag != g.Tag {
			diffs = append(diffs, fmt.Sprintf("%s: element <%s>, want <%s>", path, g.Tag, w.Tag))
			return
		}
		if wn, gn := w.NamespaceURI(), g.NamespaceURI(); wn != gn {
			diffs = append(diffs, fmt.Sprintf("%s: namespace %q, want %q", path, gn, wn))
		}
		if wa, ga := fixtureAttrs(w), fixtureAttrs(g); !slices.Equal(wa, ga) {
			diffs = append(diffs, fmt.Sprintf("%s: attributes %q, want %q", path, ga, wa))
		}
		wt, gt := fixtureText(w), fixtureText(g)
		switch {
		case wt == "*":
			if gt == "" {
				diffs = append(diffs, fmt.Sprintf("%s: empty text, want any value", path))
			}
		case wt != gt:
			diffs = append(diffs, fmt.Sprintf("%s: text %q, want %q", path, gt, wt))
		}
		wc, gc := w.ChildElements(), g.ChildElements()
		for i := 0; i < max(len(wc), len(gc)); i++ {
			switch {
			case i >= len(wc):
				diffs = append(diffs, fmt.Sprintf("%s: unexpected child <%s> at position %d", path, gc[i].Tag, i+1))
			case i >= len(gc):
				diffs = append(diffs, fmt.Sprintf("%s: missing child <%s> at position %d", path, wc[i].Tag, i+1))
			default:
				walk(wc[i], gc[i], fmt.Sprintf("%s/%s[%d]", path, wc[i].Tag, i+1))
			}
		}
	}
	walk(want, got, "/"+want.Tag)
	return diffs
}

// fixtureAttrs lists the attributes that are not namespace declarations as
// sorted "{namespace}name=value" strings.
func fixtureAttrs(e *etree.Element) []string {
	var out []string
	for _, a := range e.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		out = append(out, fmt.Sprintf("{%s}%s=%s", a.NamespaceURI(), a.Key, a.Value))
	}
	sort.Strings(out)
	return out
}

// fixtureText is the element's own character data, trimmed.
func fixtureText(e *etree.Element) string {
	var b strings.Builder
	for _, tok := range e.Child {
		if cd, ok := tok.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// TestFixtureTableCoversAllFiles fails on fixtures that no test runs and on
// table entries without both files.
func TestFixtureTableCoversAllFiles(t *testing.T) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, fc := range fixtureCases {
		if seen[fc.name] {
			t.Errorf("case %s is listed twice", fc.name)
		}
		seen[fc.name] = true
		for _, kind := range []string{"req", "want"} {
			if _, err := os.Stat(filepath.Join(fixtureDir, fc.name+"."+kind+".xml")); err != nil {
				t.Errorf("case %s: %v", fc.name, err)
			}
		}
		for _, p := range fc.prior {
			if _, ok := fixtureByName(p); !ok {
				t.Errorf("case %s: prior step %s is not in the table", fc.name, p)
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		var base string
		switch {
		case strings.HasSuffix(name, ".req.xml"):
			base = strings.TrimSuffix(name, ".req.xml")
		case strings.HasSuffix(name, ".want.xml"):
			base = strings.TrimSuffix(name, ".want.xml")
		default:
			t.Errorf("%s: fixture files are <case>.req.xml and <case>.want.xml", name)
			continue
		}
		if !seen[base] {
			t.Errorf("%s has no entry in fixtureCases (orphan fixture)", name)
		}
	}
}

// TestFixtureFilesWellFormed runs xmllint over every want file and every
// request that is not malformed on purpose.
func TestFixtureFilesWellFormed(t *testing.T) {
	var files []string
	for _, fc := range fixtureCases {
		files = append(files, filepath.Join(fixtureDir, fc.name+".want.xml"))
		if !fc.malformed {
			files = append(files, filepath.Join(fixtureDir, fc.name+".req.xml"))
		}
	}
	xmlcheck.WellFormedFiles(t, files...)
	// The malformed requests must really be malformed.
	for _, fc := range fixtureCases {
		if !fc.malformed {
			continue
		}
		f := filepath.Join(fixtureDir, fc.name+".req.xml")
		if out, err := exec.Command(xmlcheck.Xmllint(t), "--noout", f).CombinedOutput(); err == nil {
			t.Errorf("%s is marked malformed but xmllint accepts it", f)
		} else if len(bytes.TrimSpace(out)) == 0 {
			t.Errorf("%s: xmllint failed without a message: %v", f, err)
		}
	}
}
