package xspsim

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/beevik/etree"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// Error codes the simulator puts in ErrorInfo/errorCode. They are the
// simulator's own choice (BroadWorks uses OCI codes); clients must key on the
// HTTP status, not on these numbers.
const (
	ErrCodeBadRequest         = 4000 // unparsable body, wrong root/namespace, order, unknown element
	ErrCodeInvalidValue       = 4001 // value out of range / enumeration
	ErrCodeUnauthorized       = 4003
	ErrCodeUserNotFound       = 4008
	ErrCodeNotFound           = 4004 // unknown channel, group, path
	ErrCodeServiceNotAssigned = 4410 // BroadWorks' (OCI) code for a service the user does not have
	ErrCodeHostNotAvailable   = 4411 // host missing, not a host, or Hoteling Host inactive
	ErrCodeHostBusy           = 4412 // host already carries another guest
	ErrCodeGuestInactive      = 4413
	ErrCodeDuplicate          = 4090 // duplicate subscription
	ErrCodeForbidden          = 4030 // unknown/failed subscription/{id}
	ErrCodeOverload           = 5030
	ErrCodeInjected           = 5000 // injected fault
)

type simError struct {
	status int
	code   int
	msg    string
}

func (e *simError) Error() string { return fmt.Sprintf("xspsim: %d %s", e.status, e.msg) }

func errf(status, code int, format string, args ...any) *simError {
	return &simError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// notAssigned is BroadWorks' answer to a request for a service the user
// does not have: 400, errorCode 4410, "Service is not assigned to this
// subscriber" (the OCI error XSPs pass on).
func notAssigned(service, userID string) *simError {
	return errf(http.StatusBadRequest, ErrCodeServiceNotAssigned, "Service is not assigned to this subscriber: %s (%s)", service, userID)
}

func badRequest(format string, args ...any) *simError {
	return errf(http.StatusBadRequest, ErrCodeBadRequest, format, args...)
}

func invalid(format string, args ...any) *simError {
	return errf(http.StatusBadRequest, ErrCodeInvalidValue, format, args...)
}

// newDoc returns a document with an XML declaration and a root element in the
// BroadSoft default namespace.
func newDoc(root, encodingName string) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="`+encodingName+`"`)
	r := doc.CreateElement(root)
	r.CreateAttr("xmlns", NS)
	return doc, r
}

func add(parent *etree.Element, tag, text string) *etree.Element {
	e := parent.CreateElement(tag)
	e.SetText(text)
	return e
}

func boolText(b bool) string { return strconv.FormatBool(b) }

func render(doc *etree.Document) []byte {
	b, err := doc.WriteToBytes()
	if err != nil { // etree only fails on writer errors; bytes.Buffer never fails
		panic("xspsim: render: " + err.Error())
	}
	return b
}

func (s *Server) actionsEncoding() (name string, enc encoding.Encoding) {
	if strings.EqualFold(s.cfg.ActionsCharset, "UTF-8") {
		return "UTF-8", nil
	}
	return "ISO-8859-1", charmap.ISO8859_1
}

// actionsBytes renders an Xsi-Actions style body (GET body, ErrorInfo) in
// the configured charset. build receives the root element.
func (s *Server) actionsBytes(root string, build func(*etree.Element)) []byte {
	name, enc := s.actionsEncoding()
	doc, r := newDoc(root, name)
	build(r)
	b := render(doc)
	if enc != nil {
		if eb, err := encoding.ReplaceUnsupported(enc.NewEncoder()).Bytes(b); err == nil {
			b = eb
		}
	}
	return b
}

func (s *Server) sendActions(w http.ResponseWriter, status int, b []byte) {
	s.trace(b)
	name, _ := s.actionsEncoding()
	w.Header().Set("Content-Type", "application/xml;charset="+name)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeActionsDoc(w http.ResponseWriter, status int, root string, build func(*etree.Element)) {
	s.sendActions(w, status, s.actionsBytes(root, build))
}

// writeEventsDoc writes a UTF-8 Xsi-Events response body (Subscription,
// Channel, SubscriptionList, ChannelSet).
func (s *Server) writeEventsDoc(w http.ResponseWriter, status int, root string, build func(*etree.Element)) {
	doc, r := newDoc(root, "UTF-8")
	build(r)
	b := render(doc)
	s.trace(b)
	w.Header().Set("Content-Type", "application/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeError(w http.ResponseWriter, e *simError) {
	summary := fmt.Sprintf("[Error %d] %s", e.code, e.msg)
	s.writeActionsDoc(w, e.status, "ErrorInfo", func(r *etree.Element) {
		add(r, "summary", summary)
		add(r, "summaryEnglish", summary)
		add(r, "errorCode", strconv.Itoa(e.code))
	})
}

const maxBody = 64 << 10

func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToUpper(label) {
	case "UTF-8", "UTF8", "US-ASCII":
		return input, nil
	case "ISO-8859-1", "LATIN1", "ISO8859-1":
		return charmap.ISO8859_1.NewDecoder().Reader(input), nil
	}
	return nil, fmt.Errorf("xspsim: unsupported charset %q", label)
}

// parseBody reads the request body, requires root element want in the
// BroadSoft namespace, and checks that the children are known and appear in
// schema order (order lists the allowed local names in XSD sequence order;
// repeatable lists names that may occur more than once).
func parseBody(w http.ResponseWriter, r *http.Request, want string, order []string) (*etree.Element, *simError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, badRequest("cannot read body: %v", err)
	}
	return parseXML(body, want, order)
}

func parseXML(body []byte, want string, order []string) (*etree.Element, *simError) {
	doc := etree.NewDocument()
	doc.ReadSettings.CharsetReader = charsetReader
	if err := doc.ReadFromBytes(body); err != nil {
		return nil, badRequest("malformed XML: %v", err)
	}
	root := doc.Root()
	if root == nil {
		return nil, badRequest("empty document")
	}
	if root.Tag != want || root.NamespaceURI() != NS {
		return nil, badRequest("expected root {%s}%s, got {%s}%s", NS, want, root.NamespaceURI(), root.Tag)
	}
	if err := checkOrder(root, order); err != nil {
		return nil, err
	}
	return root, nil
}

func checkOrder(e *etree.Element, order []string) *simError {
	if order == nil {
		return nil
	}
	last := -1
	for _, c := range e.ChildElements() {
		if c.NamespaceURI() != NS {
			return badRequest("element %s is not in namespace %s", c.FullTag(), NS)
		}
		idx := -1
		for i, n := range order {
			if n == c.Tag {
				idx = i
				break
			}
		}
		if idx < 0 {
			return badRequest("unexpected element %s in %s", c.Tag, e.Tag)
		}
		if idx <= last {
			return badRequest("element %s out of schema order or repeated in %s", c.Tag, e.Tag)
		}
		last = idx
	}
	return nil
}

// child returns the first child element with local name tag in the BroadSoft
// namespace.
func child(e *etree.Element, tag string) *etree.Element {
	for _, c := range e.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == NS {
			return c
		}
	}
	return nil
}

// isNil reports whether e carries xsi:nil="true" with the prefix bound to
// XMLSchema-instance. A nil attribute in any other namespace (the "xsi
// prefix trap": xsi bound to the BroadSoft namespace) is an error.
func isNil(e *etree.Element) (bool, *simError) {
	for i := range e.Attr {
		a := &e.Attr[i]
		if a.Key != "nil" {
			continue
		}
		if a.Space == "" || a.NamespaceURI() != NSXSI {
			return false, badRequest("attribute %s on %s: nil must be in namespace %s", a.FullKey(), e.Tag, NSXSI)
		}
		switch strings.TrimSpace(a.Value) {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		default:
			return false, badRequest("invalid xsi:nil value %q", a.Value)
		}
	}
	return false, nil
}

func parseBool(e *etree.Element) (bool, *simError) {
	switch strings.TrimSpace(e.Text()) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, invalid("%s: invalid boolean %q", e.Tag, e.Text())
}

func parseInt(e *etree.Element, min, max int) (int, *simError) {
	n, err := strconv.Atoi(strings.TrimSpace(e.Text()))
	if err != nil || n < min || n > max {
		return 0, invalid("%s: %q is not an integer in [%d,%d]", e.Tag, e.Text(), min, max)
	}
	return n, nil
}

// token returns the collapsed text of e, requiring it to be non-empty.
func token(e *etree.Element) (string, *simError) {
	t := strings.Join(strings.Fields(e.Text()), " ")
	if t == "" {
		return "", invalid("%s: empty value", e.Tag)
	}
	return t, nil
}
