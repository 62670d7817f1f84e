package xsi

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

// actFixtureDir holds the Xsi-Actions answers the fake XSP sends.
const actFixtureDir = "../testdata/xml/xsi/actions"

func actFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(actFixtureDir, name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// actSeen is what the fake XSP saw of one request.
type actSeen struct {
	Method, Path string // Path is the escaped path plus ?query
	Header       http.Header
	Body         string
}

// actAnswer is what the fake XSP sends back.
type actAnswer struct {
	status int
	body   []byte
	header map[string]string
}

// actionsXSP records every request and answers from a func.
type actionsXSP struct {
	mu     sync.Mutex
	seen   []actSeen
	answer func(r *http.Request) actAnswer
}

func (f *actionsXSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	f.mu.Lock()
	f.seen = append(f.seen, actSeen{r.Method, p, r.Header.Clone(), string(b)})
	f.mu.Unlock()
	a := actAnswer{status: http.StatusOK}
	if f.answer != nil {
		a = f.answer(r)
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.body != nil {
		w.Header().Set("Content-Type", "application/xml")
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

func (f *actionsXSP) requests() []actSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]actSeen(nil), f.seen...)
}

func (f *actionsXSP) reset() {
	f.mu.Lock()
	f.seen = nil
	f.mu.Unlock()
}

func actTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		for _, s := range c.servers {
			if n := len(s.inflight); n != 0 {
				t.Errorf("%s: %d in-flight slots still held at test end", s.baseURL(), n)
			}
		}
	})
	return c
}

// actBody is the exact document the client sends: declaration, root in NS,
// then inner.
func actBody(root, inner string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><` + root + ` xmlns="http://schema.broadsoft.com/xsi">` + inner + `</` + root + `>`
}

const actSvc = "/com.broadsoft.xsi-actions/v2.0/user/"

// actionCases is every Client method: what it must send, what it is
// answered, and what it must return.
var actionCases = []struct {
	name     string
	call     func(ctx context.Context, c *Client) (any, error)
	method   string
	path     string
	body     string // "" for none
	fixture  string // answer body, "" for 200 with none
	want     any
	wantNone bool // a Set: no result
}{
	{
		name:   "GetCallCenter ISO-8859-1",
		call:   func(ctx context.Context, c *Client) (any, error) { return c.GetCallCenter(ctx, "agent1@example.com") },
		method: "GET", path: actSvc + "agent1@example.com/services/CallCenter",
		fixture: "CallCenter.xml",
		want: CallCenter{AgentACDState: ACDUnavailable, AgentUnavailableCode: "LUNCH", Queues: []CallCenterQueue{
			{ID: "sales-queue@example.com", Available: true, PhoneNumber: "2025550100", Extension: "0100", IsLogOffAllowed: true, SkillLevel: 1},
			{ID: "support-queue@example.com", Available: false, PhoneNumber: "2025550101", Extension: "0101"},
		}},
	},
	{
		name: "SetAgentState Sign-In",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetAgentState(ctx, "agent1@example.com", ACDSignIn, "")
		},
		method: "PUT", path: actSvc + "agent1@example.com/services/CallCenter",
		body:     actBody("CallCenter", `<agentACDState>Sign-In</agentACDState>`),
		wantNone: true,
	},
	{
		name: "SetAgentState Unavailable with code, escaped user ID",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetAgentState(ctx, "agent 1#x@example.com", ACDUnavailable, "LUNCH")
		},
		method: "PUT", path: actSvc + "agent%201%23x@example.com/services/CallCenter",
		body:     actBody("CallCenter", `<agentACDState>Unavailable</agentACDState><agentUnavailableCode>LUNCH</agentUnavailableCode>`),
		wantNone: true,
	},
	{
		name: "JoinQueue",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.JoinQueue(ctx, "agent1@example.com", "sales-queue@example.com", true)
		},
		method: "PUT", path: actSvc + "agent1@example.com/services/CallCenter",
		body:     actBody("CallCenter", `<callCenterList><callCenterDetails><serviceUserId>sales-queue@example.com</serviceUserId><available>true</available></callCenterDetails></callCenterList>`),
		wantNone: true,
	},
	{
		name: "LeaveQueue",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.JoinQueue(ctx, "agent1@example.com", "sales-queue@example.com", false)
		},
		method: "PUT", path: actSvc + "agent1@example.com/services/CallCenter",
		body:     actBody("CallCenter", `<callCenterList><callCenterDetails><serviceUserId>sales-queue@example.com</serviceUserId><available>false</available></callCenterDetails></callCenterList>`),
		wantNone: true,
	},
	{
		name: "UnavailableCodes ISO-8859-1",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.UnavailableCodes(ctx, "Sales Group", "ent-1")
		},
		method: "GET", path: "/com.broadsoft.xsi-actions/v2.0/group/Sales%20Group/services/CallCenter/UnavailableCodes?enterpriseId=ent-1",
		fixture: "ACDAgentUnavailableCodes.xml",
		want: []UnavailableCode{
			{Code: "LUNCH", Description: "Déjeuner", Active: true, Default: true},
			{Code: "DND", Description: "Do not disturb"},
		},
	},
	{
		name: "GetCallForwardingAlways",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetCallForwardingAlways(ctx, "u1@example.com")
		},
		method: "GET", path: actSvc + "u1@example.com/services/CallForwardingAlways",
		fixture: "CallForwardingAlways.xml",
		want:    Forwarding{Active: true, ForwardToPhoneNumber: "+91-2223334455", RingSplash: true},
	},
	{
		name: "SetCallForwardingAlways on",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetCallForwardingAlways(ctx, "u1@example.com", Forwarding{Active: true, ForwardToPhoneNumber: "+12025550123"})
		},
		method: "PUT", path: actSvc + "u1@example.com/services/CallForwardingAlways",
		body:     actBody("CallForwardingAlways", `<active>true</active><forwardToPhoneNumber>+12025550123</forwardToPhoneNumber><ringSplash>false</ringSplash>`),
		wantNone: true,
	},
	{
		name: "GetCallForwardingBusy",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetCallForwardingBusy(ctx, "u1@example.com")
		},
		method: "GET", path: actSvc + "u1@example.com/services/CallForwardingBusy",
		fixture: "CallForwardingBusy.xml",
		want:    Forwarding{ForwardToPhoneNumber: "tel:+12025550123"},
	},
	{
		name: "SetCallForwardingBusy off keeps the number",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetCallForwardingBusy(ctx, "u1@example.com", Forwarding{})
		},
		method: "PUT", path: actSvc + "u1@example.com/services/CallForwardingBusy",
		body:     actBody("CallForwardingBusy", `<active>false</active>`),
		wantNone: true,
	},
	{
		name: "GetCallForwardingNoAnswer UTF-8",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetCallForwardingNoAnswer(ctx, "u1@example.com")
		},
		method: "GET", path: actSvc + "u1@example.com/services/CallForwardingNoAnswer",
		fixture: "CallForwardingNoAnswer.xml",
		want:    Forwarding{Active: true, ForwardToPhoneNumber: "1020", NumberOfRings: 4},
	},
	{
		name: "SetCallForwardingNoAnswer",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetCallForwardingNoAnswer(ctx, "u1@example.com", Forwarding{Active: true, ForwardToPhoneNumber: "tel:1020", NumberOfRings: 3})
		},
		method: "PUT", path: actSvc + "u1@example.com/services/CallForwardingNoAnswer",
		body:     actBody("CallForwardingNoAnswer", `<active>true</active><forwardToPhoneNumber>tel:1020</forwardToPhoneNumber><numberOfRings>3</numberOfRings>`),
		wantNone: true,
	},
	{
		name:   "GetDoNotDisturb",
		call:   func(ctx context.Context, c *Client) (any, error) { return c.GetDoNotDisturb(ctx, "u1@example.com") },
		method: "GET", path: actSvc + "u1@example.com/services/DoNotDisturb",
		fixture: "DoNotDisturb.xml",
		want:    DoNotDisturb{Active: true},
	},
	{
		name: "SetDoNotDisturb",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SetDoNotDisturb(ctx, "u1@example.com", DoNotDisturb{Active: true, RingSplash: true})
		},
		method: "PUT", path: actSvc + "u1@example.com/services/DoNotDisturb",
		body:     actBody("DoNotDisturb", `<active>true</active><ringSplash>true</ringSplash>`),
		wantNone: true,
	},
	{
		name:   "GetHotelingGuest associated, ISO-8859-1 names",
		call:   func(ctx context.Context, c *Client) (any, error) { return c.GetHotelingGuest(ctx, "guest@example.com") },
		method: "GET", path: actSvc + "guest@example.com/services/HotelingGuest",
		fixture: "HotelingGuest-associated.xml",
		want: HotelingGuest{Active: true, EnableAssociationLimit: true, AssociationLimitHours: 12,
			HostUserID: "desk-204@example.com", HostLastName: "Müller-Søndergård", HostFirstName: "Zoë",
			HostAssociationDateTime:      time.Date(2024, 5, 2, 8, 59, 1, 123e6, time.UTC),
			HostEnforcesAssociationLimit: true, HostAssociationLimitHours: 24},
	},
	{
		name:   "GetHotelingGuest cleared",
		call:   func(ctx context.Context, c *Client) (any, error) { return c.GetHotelingGuest(ctx, "guest@example.com") },
		method: "GET", path: actSvc + "guest@example.com/services/HotelingGuest",
		fixture: "HotelingGuest-cleared.xml",
		want:    HotelingGuest{Active: true},
	},
	{
		name: "AssociateGuest",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.AssociateGuest(ctx, "guest@example.com", "desk-204@example.com")
		},
		method: "PUT", path: actSvc + "guest@example.com/services/HotelingGuest",
		body:     actBody("HotelingGuest", `<active>true</active><hostUserId>desk-204@example.com</hostUserId>`),
		wantNone: true,
	},
	{
		name: "EndGuestAssociation",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.EndGuestAssociation(ctx, "guest@example.com")
		},
		method: "PUT", path: actSvc + "guest@example.com/services/HotelingGuest",
		body:     `<?xml version="1.0" encoding="UTF-8"?><HotelingGuest xmlns="http://schema.broadsoft.com/xsi" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><hostUserId xsi:nil="true"/></HotelingGuest>`,
		wantNone: true,
	},
	{
		name: "GetHotelingHost",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.GetHotelingHost(ctx, "desk-204@example.com")
		},
		method: "GET", path: actSvc + "desk-204@example.com/services/HotelingHost",
		fixture: "HotelingHost.xml",
		want: HotelingHost{Active: true, EnforceAssociationLimit: true, AssociationLimitHours: 24, AccessLevel: "Group",
			GuestLastName: "Çelik", GuestFirstName: "Ana", GuestPhoneNumber: "2025550142", GuestExtension: "0142",
			GuestAssociationDateTime: time.Date(2024, 5, 2, 8, 59, 1, 123e6, time.UTC)},
	},
	{
		name: "RemoveGuestAssociation",
		call: func(ctx context.Context, c *Client) (any, error) {
			return nil, c.RemoveGuestAssociation(ctx, "desk-204@example.com")
		},
		method: "PUT", path: actSvc + "desk-204@example.com/services/HotelingHost",
		body:     actBody("HotelingHost", `<removeGuestAssociation>true</removeGuestAssociation>`),
		wantNone: true,
	},
	{
		name: "ListHotelingHosts",
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.ListHotelingHosts(ctx, "guest@example.com")
		},
		method: "GET", path: actSvc + "guest@example.com/directories/HotelingHosts",
		fixture: "AvailableHotelingHosts.xml",
		want:    []HotelingHostEntry{{UserID: "desk-204@example.com"}, {UserID: "desk-205@example.com"}},
	},
}

func TestActionsRequestsAndAnswers(t *testing.T) {
	actLeakCheck(t)
	fake := &actionsXSP{}
	srv := actServer(t, fake)
	c := actTestClient(t, actTestConfig(srv.URL))
	var sent []string // every body the client sent, for the conformance check
	for _, tc := range actionCases {
		t.Run(tc.name, func(t *testing.T) {
			fake.reset()
			var ans []byte
			if tc.fixture != "" {
				ans = actFixture(t, tc.fixture)
			}
			fake.answer = func(*http.Request) actAnswer { return actAnswer{status: 200, body: ans} }
			got, err := tc.call(context.Background(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("XSP saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tc.method, tc.path)
			}
			if u, p, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok || u != "admin@example.com" || p != "s3cret" {
				t.Errorf("basic auth %q/%q (%v)", u, p, ok)
			}
			if v := r.Header.Get("X-BroadWorks-Protocol-Version"); v != "22.0" {
				t.Errorf("X-BroadWorks-Protocol-Version %q", v)
			}
			if r.Body != tc.body {
				t.Errorf("body\n got %s\nwant %s", r.Body, tc.body)
			}
			if tc.body != "" {
				if ct := r.Header.Get("Content-Type"); ct != "application/xml; charset=UTF-8" {
					t.Errorf("Content-Type %q", ct)
				}
				sent = append(sent, r.Body)
			}
			if tc.wantNone {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("result\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	t.Run("conformance", func(t *testing.T) {
		// Everything sent, plus every fixture, against the XSD set.
		files := make([]string, 0, len(sent))
		dir := t.TempDir()
		for i, b := range sent {
			f := filepath.Join(dir, fmt.Sprintf("sent-%02d.xml", i))
			if err := os.WriteFile(f, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		fx, _ := filepath.Glob(filepath.Join(actFixtureDir, "*.xml"))
		actValidateXSD(t, append(files, fx...))
	})
}

// actValidateXSD runs xmllint once over files against XSISchema.xsd.
func actValidateXSD(t *testing.T, files []string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("no bodies collected")
	}
	xmlcheck.ValidXSIFiles(t, files...)
}

// TestEndGuestAssociationNilPrefix checks the prefix trap by namespace,
// not by spelling: nil must be in the XML Schema instance namespace.
func TestEndGuestAssociationNilPrefix(t *testing.T) {
	actLeakCheck(t)
	fake := &actionsXSP{}
	srv := actServer(t, fake)
	c := actTestClient(t, actTestConfig(srv.URL))
	if err := c.EndGuestAssociation(context.Background(), "guest@example.com"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
		Host    struct {
			XMLName xml.Name
			Attrs   []xml.Attr `xml:",any,attr"`
		} `xml:"hostUserId"`
	}
	if err := xml.Unmarshal([]byte(fake.requests()[0].Body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.XMLName.Space != NS || doc.Host.XMLName.Space != NS {
		t.Errorf("elements in %q / %q, want %q", doc.XMLName.Space, doc.Host.XMLName.Space, NS)
	}
	if len(doc.Host.Attrs) != 1 || doc.Host.Attrs[0].Name != (xml.Name{Space: xsiInstanceNS, Local: "nil"}) || doc.Host.Attrs[0].Value != "true" {
		t.Errorf("hostUserId attributes %+v, want XMLSchema-instance nil=true", doc.Host.Attrs)
	}
}

func TestActionsErrorInfo(t *testing.T) {
	actLeakCheck(t)
	errBody := actFixture(t, "ErrorInfo-4008.xml")
	tests := []struct {
		status int
		want   error
	}{
		{400, ErrBadRequest},
		{401, ErrUnauthorized},
		{403, ErrForbidden},
		{404, ErrNotFound},
		{409, ErrConflict},
		{503, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			fake := &actionsXSP{answer: func(*http.Request) actAnswer {
				return actAnswer{status: tc.status, body: errBody, header: map[string]string{"Retry-After": "0"}}
			}}
			srv := actServer(t, fake)
			cfg := actTestConfig(srv.URL)
			cfg.MaxRetries = 0
			c := actTestClient(t, cfg)
			_, err := c.GetDoNotDisturb(context.Background(), "zoë@example.com")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.want)
			}
			if tc.status >= 500 != errors.Is(err, ErrServerError) {
				t.Errorf("errors.Is(ErrServerError) wrong for %d", tc.status)
			}
			var xe *Error
			if !errors.As(err, &xe) {
				t.Fatalf("err %T is not *Error", err)
			}
			if xe.Status != tc.status || xe.ErrorCode != 4008 || xe.Method != "GET" {
				t.Errorf("Error %+v", xe)
			}
			if xe.Summary != "[Error 4008] Utilisateur introuvable : zoë@example.com" || xe.SummaryEnglish != "[Error 4008] User not found: zoë@example.com" {
				t.Errorf("ISO-8859-1 summary read as %q / %q", xe.Summary, xe.SummaryEnglish)
			}
		})
	}
}

func TestActionsRefusesBadArguments(t *testing.T) {
	actLeakCheck(t)
	fake := &actionsXSP{}
	srv := actServer(t, fake)
	c := actTestClient(t, actTestConfig(srv.URL))
	ctx := context.Background()
	tests := map[string]error{
		"empty user":            c.SetDoNotDisturb(ctx, "", DoNotDisturb{}),
		"slash in user":         c.SetDoNotDisturb(ctx, "a/b@example.com", DoNotDisturb{}),
		"unknown state":         c.SetAgentState(ctx, "a@example.com", "Busy", ""),
		"code without Unavail.": c.SetAgentState(ctx, "a@example.com", ACDAvailable, "LUNCH"),
		"code too long":         c.SetAgentState(ctx, "a@example.com", ACDUnavailable, "ELEVENCHARS"),
		"empty queue":           c.JoinQueue(ctx, "a@example.com", "", true),
		"empty host":            c.AssociateGuest(ctx, "a@example.com", ""),
		"rings on CFA":          c.SetCallForwardingAlways(ctx, "a@example.com", Forwarding{NumberOfRings: 3}),
		"1 ring on CFNA":        c.SetCallForwardingNoAnswer(ctx, "a@example.com", Forwarding{NumberOfRings: 1}),
		"ring splash on CFB":    c.SetCallForwardingBusy(ctx, "a@example.com", Forwarding{RingSplash: true}),
	}
	for name, err := range tests {
		if err == nil || !strings.HasPrefix(err.Error(), "xsi: ") {
			t.Errorf("%s: err = %v, want an xsi: error", name, err)
		}
	}
	if n := len(fake.requests()); n != 0 {
		t.Errorf("%d requests sent for refused arguments", n)
	}
}

func TestActionsMalformedAnswers(t *testing.T) {
	actLeakCheck(t)
	tests := []struct{ name, body string }{
		{"not XML", "garbage"},
		{"wrong root", `<DoNotDisturb xmlns="http://schema.broadsoft.com/xsi"><active>true</active></DoNotDisturb>`},
		{"wrong namespace", `<CallCenter xmlns="urn:other"/>`},
		{"bad state", `<CallCenter xmlns="http://schema.broadsoft.com/xsi"><agentACDState>Busy</agentACDState></CallCenter>`},
		{"bad bool", `<CallCenter xmlns="http://schema.broadsoft.com/xsi"><callCenterList><callCenterDetails><available>yes</available></callCenterDetails></callCenterList></CallCenter>`},
		{"unknown charset", `<?xml version="1.0" encoding="EBCDIC"?><CallCenter xmlns="http://schema.broadsoft.com/xsi"/>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := actServer(t, &actionsXSP{answer: func(*http.Request) actAnswer { return actAnswer{status: 200, body: []byte(tc.body)} }})
			c := actTestClient(t, actTestConfig(srv.URL))
			if _, err := c.GetCallCenter(context.Background(), "a@example.com"); err == nil || !strings.HasPrefix(err.Error(), "xsi: ") {
				t.Fatalf("err = %v, want an xsi: error", err)
			}
		})
	}
}

func TestActionsFailover(t *testing.T) {
	actLeakCheck(t)
	dnd := actFixture(t, "DoNotDisturb.xml")
	// First XSP: overloaded (503 without Retry-After, every time).
	var firstCalls atomic.Int32
	first := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstCalls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	second := &actionsXSP{answer: func(*http.Request) actAnswer { return actAnswer{status: 200, body: dnd} }}
	secondSrv := actServer(t, second)
	// A third, unreachable XSP ahead of both: connection refused.
	dead := actServer(t, http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	cfg := actTestConfig(deadURL, first.URL, secondSrv.URL)
	cfg.MaxRetries = 0
	c := actTestClient(t, cfg)
	ctx := context.Background()
	got, err := c.GetDoNotDisturb(ctx, "u@example.com")
	if err != nil || !got.Active {
		t.Fatalf("GetDoNotDisturb = %+v, %v", got, err)
	}
	if firstCalls.Load() != 1 || len(second.requests()) != 1 {
		t.Fatalf("calls: first %d, second %d; want 1, 1", firstCalls.Load(), len(second.requests()))
	}
	// The failed XSPs are passed over while the second is up.
	if _, err := c.GetDoNotDisturb(ctx, "u@example.com"); err != nil {
		t.Fatal(err)
	}
	if firstCalls.Load() != 1 || len(second.requests()) != 2 {
		t.Fatalf("after failover: first %d, second %d calls; want 1, 2", firstCalls.Load(), len(second.requests()))
	}
	// A 4xx is an answer: no failover.
	second.answer = func(*http.Request) actAnswer { return actAnswer{status: 404} }
	if _, err := c.GetDoNotDisturb(ctx, "u@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if firstCalls.Load() != 1 {
		t.Fatalf("404 failed over")
	}
}

// A change (PUT) the first XSP received but did not answer in time is not
// sent again to the next XSP: the first may still apply it, after the
// copy sent elsewhere and whatever came next. A read (GET) is. The silent
// XSP is passed over afterwards either way.
func TestActionsTimedOutChangeNotResent(t *testing.T) {
	actLeakCheck(t)
	dnd := actFixture(t, "DoNotDisturb.xml")
	release := make(chan struct{})
	var slowCalls atomic.Int32
	slow := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowCalls.Add(1)
		io.Copy(io.Discard, r.Body) // received in full
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	second := &actionsXSP{answer: func(*http.Request) actAnswer { return actAnswer{status: 200, body: dnd} }}
	secondSrv := actServer(t, second)
	tests := []struct {
		name     string
		call     func(c *Client) error
		wantErr  bool
		toSecond int
	}{
		{"PUT: the timeout, not sent again", func(c *Client) error {
			return c.SetDoNotDisturb(context.Background(), "u@example.com", DoNotDisturb{Active: true})
		}, true, 0},
		{"GET: sent again to the next XSP", func(c *Client) error {
			_, err := c.GetDoNotDisturb(context.Background(), "u@example.com")
			return err
		}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second.reset()
			slowCalls.Store(0)
			cfg := actTestConfig(slow.URL, secondSrv.URL)
			cfg.RequestTimeout = 200 * time.Millisecond
			cfg.MaxRetries = 0
			c := actTestClient(t, cfg)
			err := tt.call(c)
			if tt.wantErr && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want the deadline", err)
			}
			if !tt.wantErr && err != nil {
				t.Fatal(err)
			}
			if slowCalls.Load() != 1 || len(second.requests()) != tt.toSecond {
				t.Fatalf("calls: first %d, second %d; want 1, %d", slowCalls.Load(), len(second.requests()), tt.toSecond)
			}
			// The silent XSP is passed over now.
			if _, err := c.GetDoNotDisturb(context.Background(), "u@example.com"); err != nil || slowCalls.Load() != 1 {
				t.Fatalf("next request: %v, first XSP called %d times", err, slowCalls.Load())
			}
		})
	}
}

func TestActionsAllXSPsDown(t *testing.T) {
	actLeakCheck(t)
	var urls []string
	for range 2 {
		s := actServer(t, http.NotFoundHandler())
		urls = append(urls, s.URL)
		s.Close()
	}
	cfg := actTestConfig(urls...)
	cfg.MaxRetries = 0
	c := actTestClient(t, cfg)
	if _, err := c.GetDoNotDisturb(context.Background(), "u@example.com"); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("err = %v, want ErrLinkDown", err)
	}
}

func TestNewClientRejects(t *testing.T) {
	if _, err := NewClient(Config{}, nil); err == nil {
		t.Error("no servers accepted")
	}
	cfg := actTestConfig("http://127.0.0.1:1")
	cfg.Username = ""
	if _, err := NewClient(cfg, nil); err == nil {
		t.Error("no username accepted")
	}
	cfg = actTestConfig("http://127.0.0.1:1", "ftp://x")
	if _, err := NewClient(cfg, nil); err == nil {
		t.Error("bad second URL accepted")
	}
}

// BenchmarkActionsRoundTrip runs GetDoNotDisturb with MaxInFlight calls in
// flight against a local server and reports requests per second.
func BenchmarkActionsRoundTrip(b *testing.B) {
	dnd := actFixture(b, "DoNotDisturb.xml")
	srv := actServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Write(dnd)
	}))
	cfg := actTestConfig(srv.URL)
	cfg.MaxInFlight = 32
	cfg.RateLimit = 1e9
	cfg.RateBurst = 1e6
	c := actTestClient(b, cfg)
	ctx := context.Background()
	b.SetParallelism(cfg.MaxInFlight) // × GOMAXPROCS goroutines, bounded by MaxInFlight
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetDoNotDisturb(ctx, "u@example.com"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func TestActionsLocalLimitIsNoFailover(t *testing.T) {
	actLeakCheck(t)
	dnd := actFixture(t, "DoNotDisturb.xml")
	first := &actionsXSP{answer: func(*http.Request) actAnswer { return actAnswer{status: 200, body: dnd} }}
	second := &actionsXSP{answer: func(*http.Request) actAnswer { return actAnswer{status: 200, body: dnd} }}
	s1, s2 := actServer(t, first), actServer(t, second)
	cfg := actTestConfig(s1.URL, s2.URL)
	cfg.RateLimit = 0.001
	cfg.RateBurst = 1
	c := actTestClient(t, cfg)
	ctx := context.Background()
	if _, err := c.GetDoNotDisturb(ctx, "u@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetDoNotDisturb(ctx, "u@example.com")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded from the rate limit", err)
	}
	if len(first.requests()) != 1 || len(second.requests()) != 0 {
		t.Fatalf("requests: first %d, second %d; want 1, 0", len(first.requests()), len(second.requests()))
	}
	if c.servers[0].downUntil.Load() != 0 {
		t.Fatal("a full rate limit marked the XSP down")
	}
}
