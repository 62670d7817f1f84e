package xsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
)

// actionsRoot is the Xsi-Actions web application (research/xsi.md §0.1).
const actionsRoot = "/com.broadsoft.xsi-actions/v2.0"

// xsiInstanceNS is the XML Schema instance namespace, used for xsi:nil.
// Beware: in Xsi documents the prefix "xsi" is often bound to NS instead
// (research/xsi.md §0.9); always bind it explicitly.
const xsiInstanceNS = "http://www.w3.org/2001/XMLSchema-instance"

// failoverCooldown is how long an XSP that failed (connection error, 5xx,
// no answer within RequestTimeout) is passed over while another one is up.
const failoverCooldown = 30 * time.Second

// Client is the Xsi-Actions client: typed reads and changes of users'
// services, over one or more XSPs. Each call goes to the first XSP (in
// Config.Servers order) not marked down, and fails over to the next on a
// connection error, a 5xx, or no answer within RequestTimeout; a 4xx is the
// answer. Every XSP has its own in-flight bound, rate limit and cookie. A
// Client is safe for concurrent use; Close it when done.
type Client struct {
	servers []*xspState
	logger  *slog.Logger
	metrics *actionsMetrics
}

// xspState is one XSP and its health as the Client sees it.
type xspState struct {
	*xsp
	downUntil atomic.Int64 // unix nanoseconds; 0 = up
}

// NewClient checks cfg and builds the client; it sends nothing.
func NewClient(cfg Config, logger *slog.Logger) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("xsi: no XSP server configured")
	}
	if cfg.Username == "" {
		return nil, errors.New("xsi: no username configured")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{logger: logger}
	shared := cfg // one copy every xsp points at
	shared.Servers = append([]string(nil), cfg.Servers...)
	for _, s := range shared.Servers {
		x, err := newXSP(s, &shared, logger)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.servers = append(c.servers, &xspState{xsp: x})
	}
	c.metrics = newActionsMetrics(c.servers)
	return c, nil
}

// Close releases idle connections. Calls in progress finish normally.
func (c *Client) Close() {
	for _, s := range c.servers {
		s.close()
	}
}

// order is the XSPs to try, healthy ones first, each in config order.
func (c *Client) order() []*xspState {
	now := time.Now().UnixNano()
	out := make([]*xspState, 0, len(c.servers))
	var down []*xspState
	for _, s := range c.servers {
		if s.downUntil.Load() > now {
			down = append(down, s)
		} else {
			out = append(out, s)
		}
	}
	return append(out, down...)
}

// call sends one Actions request, failing over between XSPs, and counts it.
// path is relative to actionsRoot.
func (c *Client) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	start := time.Now()
	data, err := c.failover(ctx, method, path, body)
	c.metrics.observe(method, path, start, err)
	return data, err
}

func (c *Client) failover(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var lastErr error
	for i, s := range c.order() {
		data, err := s.do(ctx, method, actionsRoot+path, body)
		if err == nil {
			s.downUntil.Store(0)
			return data, nil
		}
		lastErr = err
		if !c.failoverWorthy(ctx, method, err) {
			return nil, err
		}
		s.downUntil.Store(time.Now().Add(failoverCooldown).UnixNano())
		c.metrics.failovers.WithLabelValues(s.baseURL()).Inc()
		if method == http.MethodPut && errors.Is(err, errSentNoAnswer) {
			// The XSP has the change and may still apply it: sent again
			// elsewhere, it would succeed there and then be overridden
			// by this copy landing late, after whatever came next. The
			// caller gets the timeout (the change is in doubt); the XSP
			// is passed over for the next requests.
			c.logger.Warn("xsi: XSP did not answer a change in time; not sent again elsewhere (it may still apply it)",
				"xsp", s.baseURL(), "path", path, "err", err)
			return nil, err
		}
		c.logger.Warn("xsi: XSP failed, trying the next", "xsp", s.baseURL(), "method", method, "path", path, "err", err, "tried", i+1, "of", len(c.servers))
	}
	if len(c.servers) > 1 && isConnError(lastErr) {
		return nil, fmt.Errorf("%w: %w", ErrLinkDown, lastErr)
	}
	return nil, lastErr
}

// failoverWorthy: the XSP, not the request, failed — and sending the
// request again elsewhere is safe (GET and PUT; Xsi PUTs set state).
func (c *Client) failoverWorthy(ctx context.Context, method string, err error) bool {
	if ctx.Err() != nil || (method != http.MethodGet && method != http.MethodPut) {
		return false
	}
	var xe *Error
	if errors.As(err, &xe) {
		return xe.Status >= 500
	}
	var lw *localWaitError
	if errors.As(err, &lw) {
		return false // our own limits are full; the XSP is fine
	}
	// Our own RequestTimeout ran out while the caller's ctx is alive: the
	// XSP did not answer in time.
	return isConnError(err) || errors.Is(err, context.DeadlineExceeded)
}

// userPath is "/user/{userId}" + rest, the ID path-escaped. IDs must be
// user@domain and cannot contain '/' (research/xsi.md §2.1).
func userPath(userID, rest string) (string, error) {
	if err := checkID("user ID", userID); err != nil {
		return "", err
	}
	return "/user/" + url.PathEscape(userID) + rest, nil
}

func checkID(what, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("xsi: empty %s", what)
	}
	if strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("xsi: %s %q contains '/'", what, id)
	}
	return nil
}

// ---- building bodies -------------------------------------------------

// newBody starts a request document whose root element is root in NS.
func newBody(root string) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	r := doc.CreateElement(root)
	r.CreateAttr("xmlns", NS)
	return doc, r
}

func addText(parent *etree.Element, tag, text string) *etree.Element {
	e := parent.CreateElement(tag)
	e.SetText(text)
	return e
}

func addBool(parent *etree.Element, tag string, v bool) {
	addText(parent, tag, strconv.FormatBool(v))
}

func bodyBytes(doc *etree.Document) ([]byte, error) {
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("xsi: building body: %w", err)
	}
	return b, nil
}

// ---- parsing answers ---------------------------------------------------

// parseRoot reads an Actions answer (any charset the XSP declares that
// charsetReader knows) and checks its root element.
func parseRoot(data []byte, root string) (*etree.Element, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.CharsetReader = charsetReader
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("xsi: %s: %w", root, err)
	}
	r := doc.Root()
	if r == nil {
		return nil, fmt.Errorf("xsi: %s: empty document", root)
	}
	if r.Tag != root {
		return nil, fmt.Errorf("xsi: want <%s>, got <%s>", root, r.Tag)
	}
	if ns := r.NamespaceURI(); ns != "" && ns != NS {
		return nil, fmt.Errorf("xsi: <%s> in namespace %q, want %q", root, ns, NS)
	}
	return r, nil
}

// fields reads child elements of one element; the first malformed value
// is kept in err.
type fields struct {
	el   *etree.Element
	what string
	err  error
}

func (f *fields) text(tag string) string {
	if c := f.el.SelectElement(tag); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

func (f *fields) has(tag string) bool { return f.el.SelectElement(tag) != nil }

func (f *fields) bool(tag string) bool {
	s := f.text(tag)
	switch s {
	case "", "false", "0":
		return false
	case "true", "1":
		return true
	}
	f.fail(tag, s)
	return false
}

func (f *fields) int(tag string) int {
	s := f.text(tag)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f.fail(tag, s)
	}
	return n
}

func (f *fields) time(tag string) time.Time {
	s := f.text(tag)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// xs:dateTime may omit the zone.
		if t, err = time.Parse("2006-01-02T15:04:05.999999999", s); err != nil {
			f.fail(tag, s)
		}
	}
	return t
}

func (f *fields) fail(tag, value string) {
	if f.err == nil {
		f.err = fmt.Errorf("xsi: %s: bad %s %q", f.what, tag, value)
	}
}

// put sends a change; Xsi answers 200 with no body.
func (c *Client) put(ctx context.Context, path string, doc *etree.Document) error {
	b, err := bodyBytes(doc)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodPut, path, b)
	return err
}
