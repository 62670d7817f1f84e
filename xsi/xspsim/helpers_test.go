package xspsim

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testUser = "gw-admin@example.com"
	testPass = "s3cret"
)

// --- conformance: every emitted document is validated with xmllint ------------

// validateDocs validates the documents the simulator emitted against
// BroadWorks' XSD, in one xmllint run.
func validateDocs(t *testing.T, docs [][]byte) {
	t.Helper()
	named := make(map[string][]byte, len(docs))
	for i, d := range docs {
		named[fmt.Sprintf("doc%04d.xml", i)] = d
	}
	xmlcheck.ValidXSI(t, named)
}

// --- harness ------------------------------------------------------------------------

type harness struct {
	t    *testing.T
	s    *Server
	base string
	c    *http.Client

	mu   sync.Mutex
	docs [][]byte
}

func baseUsers() []User {
	return []User{
		{ID: "agent1@example.com", FirstName: "Anna", LastName: "Müller", PhoneNumber: "2025550101", Extension: "0101",
			CallCenter: true, CallCenters: []string{"sales@example.com", "support@example.com"}},
		{ID: "agent2@example.com", FirstName: "Bob", LastName: "Agent", CallCenter: true},
		{ID: "desk1@example.com", FirstName: "Desk", LastName: "One", HotelingHost: true, HostAssociationLimitHours: 24},
		{ID: "desk2@example.com", FirstName: "Desk", LastName: "Two", HotelingHost: true},
		{ID: "plain@example.com", FirstName: "Plain", LastName: "User"},
	}
}

func baseConfig() Config {
	return Config{
		Users:    baseUsers(),
		Username: testUser, Password: testPass,
		UnavailableCodes: []UnavailableCode{
			{Code: "LUNCH", Description: "Lunch", Active: true, Default: true},
			{Code: "MEETING", Description: "Meeting", Active: true},
			{Code: "OLD", Description: "Retired", Active: false},
		},
	}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t}
	cfg.Trace = func(d []byte) {
		h.mu.Lock()
		h.docs = append(h.docs, append([]byte(nil), d...))
		h.mu.Unlock()
	}
	h.s = New(cfg, nil)
	if err := h.s.Start(); err != nil {
		t.Fatal(err)
	}
	h.base = h.s.URL()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	h.c = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		tr.CloseIdleConnections()
		h.mu.Lock()
		docs := h.docs
		h.mu.Unlock()
		if !t.Failed() {
			validateDocs(t, docs)
		}
	})
	return h
}

func (h *harness) req(method, path, body string) (int, []byte, http.Header) {
	h.t.Helper()
	return h.reqAuth(method, path, body, testUser, testPass)
}

func (h *harness) reqAuth(method, path, body, user, pass string) (int, []byte, http.Header) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	r.Header.Set("Content-Type", "application/xml; charset=UTF-8")
	resp, err := h.c.Do(r)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func (h *harness) mustStatus(want int, method, path, body string) []byte {
	h.t.Helper()
	st, b, _ := h.req(method, path, body)
	if st != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, st, want, b)
	}
	return b
}

// hotelingHosts is user u's HotelingHosts directory: its host IDs,
// comma-separated, in the order given.
func (h *harness) hotelingHosts(u string) string {
	h.t.Helper()
	b := h.mustStatus(200, "GET", ActionsPrefix+"/user/"+u+"/directories/HotelingHosts", "")
	var ids []string
	for _, e := range parse(h.t, b).FindElements("hostUserIdList/userID") {
		ids = append(ids, e.Text())
	}
	return strings.Join(ids, ",")
}

// parse parses a document (UTF-8 or ISO-8859-1).
func parse(t *testing.T, b []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.CharsetReader = charsetReader
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return doc.Root()
}

// text returns the text of the element at a slash path of local names.
func text(e *etree.Element, path string) string {
	for _, p := range strings.Split(path, "/") {
		var next *etree.Element
		for _, c := range e.ChildElements() {
			if c.Tag == p {
				next = c
				break
			}
		}
		if next == nil {
			return "<missing>"
		}
		e = next
	}
	return e.Text()
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	r := parse(t, b)
	if r.Tag != "ErrorInfo" {
		t.Fatalf("want ErrorInfo, got %s", b)
	}
	return text(r, "errorCode")
}

const xsiNS = `xmlns="http://schema.broadsoft.com/xsi"`

func body(root, inner string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><` + root + ` ` + xsiNS + `>` + inner + `</` + root + `>`
}

func actions(user, service string) string {
	return ActionsPrefix + "/user/" + user + "/services/" + service
}

// --- raw event channel client -------------------------------------------------------

type streamDoc struct {
	raw  []byte
	root *etree.Element
}

// kind: Channel, ChannelHeartBeat, or the xsi1:type of an Event
// (SubscriptionEvent:<eventData type>, ChannelTerminatedEvent).
func (d streamDoc) kind() string {
	if d.root.Tag != "Event" {
		return d.root.Tag
	}
	typ := strings.TrimPrefix(d.root.SelectAttrValue("xsi1:type", ""), "xsi:")
	if typ == "SubscriptionEvent" {
		for _, c := range d.root.ChildElements() {
			if c.Tag == "eventData" {
				return typ + ":" + strings.TrimPrefix(c.SelectAttrValue("xsi1:type", ""), "xsi:")
			}
		}
	}
	return typ
}

type rawChannel struct {
	t      *testing.T
	h      *harness
	id     string
	docs   chan streamDoc
	done   chan error // stream end (nil = clean EOF)
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// splitDocs reads consecutive XML documents from r, ignoring chunk
// boundaries, and calls emit with each document's raw bytes.
func splitDocs(r io.Reader, emit func([]byte)) error {
	var raw bytes.Buffer
	dec := xml.NewDecoder(io.TeeReader(r, &raw))
	depth := 0
	var start int64
	for {
		tok, err := dec.RawToken()
		if err != nil {
			if err == io.EOF && depth == 0 {
				return nil
			}
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				end := dec.InputOffset()
				emit(append([]byte(nil), raw.Bytes()[start:end]...))
				start = end
			}
		}
	}
}

func (h *harness) openChannel(setID, appID string) *rawChannel {
	h.t.Helper()
	inner := "<channelSetId>" + setID + "</channelSetId><priority>1</priority><weight>100</weight><expires>3600</expires>"
	if appID != "" {
		inner += "<applicationId>" + appID + "</applicationId>"
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base+AsyncEventsPrefix+"/channel", strings.NewReader(body("Channel", inner)))
	r.SetBasicAuth(testUser, testPass)
	resp, err := h.c.Do(r)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		h.t.Fatalf("channel: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		h.t.Errorf("channel content type %q", ct)
	}
	rc := &rawChannel{t: h.t, h: h, docs: make(chan streamDoc, 1000), done: make(chan error, 1), cancel: cancel}
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		defer resp.Body.Close()
		err := splitDocs(resp.Body, func(b []byte) {
			doc := etree.NewDocument()
			if perr := doc.ReadFromBytes(b); perr != nil {
				rc.done <- fmt.Errorf("bad doc %q: %w", b, perr)
				return
			}
			rc.docs <- streamDoc{raw: b, root: doc.Root()}
		})
		rc.done <- err
	}()
	h.t.Cleanup(rc.close)
	first := rc.next("Channel")
	rc.id = text(first.root, "channelId")
	if rc.id == "<missing>" {
		h.t.Fatalf("no channelId in %s", first.raw)
	}
	return rc
}

func (rc *rawChannel) close() {
	rc.cancel()
	rc.wg.Wait()
}

// next waits for the next document and checks its kind.
func (rc *rawChannel) next(wantKind string) streamDoc {
	rc.t.Helper()
	select {
	case d := <-rc.docs:
		if wantKind != "" && d.kind() != wantKind {
			rc.t.Fatalf("stream: got %s, want %s:\n%s", d.kind(), wantKind, d.raw)
		}
		return d
	case err := <-rc.done:
		rc.done <- err
		select { // documents read before the end take precedence
		case d := <-rc.docs:
			if wantKind != "" && d.kind() != wantKind {
				rc.t.Fatalf("stream: got %s, want %s:\n%s", d.kind(), wantKind, d.raw)
			}
			return d
		default:
		}
		rc.t.Fatalf("stream ended (%v) waiting for %s", err, wantKind)
	case <-time.After(5 * time.Second):
		rc.t.Fatalf("timeout waiting for %s", wantKind)
	}
	return streamDoc{}
}

// none asserts that no document arrives within d.
func (rc *rawChannel) none(d time.Duration) {
	rc.t.Helper()
	select {
	case doc := <-rc.docs:
		rc.t.Fatalf("unexpected document %s:\n%s", doc.kind(), doc.raw)
	case <-time.After(d):
	}
}

// ended waits for the end of the stream and returns its error.
func (rc *rawChannel) ended() error {
	rc.t.Helper()
	select {
	case err := <-rc.done:
		rc.done <- err
		return err
	case <-time.After(5 * time.Second):
		rc.t.Fatal("stream did not end")
	}
	return nil
}

func (rc *rawChannel) ack(d streamDoc) {
	rc.t.Helper()
	rc.h.mustStatus(200, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>"+text(d.root, "eventID")+"</eventID><statusCode>200</statusCode><reason>OK</reason>"))
}

func (rc *rawChannel) heartbeat() {
	rc.t.Helper()
	rc.h.mustStatus(200, "PUT", EventsPrefix+"/channel/"+rc.id+"/heartbeat", "")
}

func (h *harness) subscribe(target, setID string, events ...string) string {
	h.t.Helper()
	var ev string
	if len(events) == 1 {
		ev = "<event>" + events[0] + "</event>"
	} else {
		ev = "<eventPackageList>"
		for _, e := range events {
			ev += "<event>" + e + "</event>"
		}
		ev += "</eventPackageList>"
	}
	b := h.mustStatus(200, "POST", EventsPrefix+"/"+target,
		body("Subscription", ev+"<expires>7200</expires><channelSetId>"+setID+"</channelSetId><applicationId>csta-gw</applicationId>"))
	id := text(parse(h.t, b), "subscriptionId")
	if id == "<missing>" {
		h.t.Fatalf("no subscriptionId in %s", b)
	}
	return id
}
