package xsi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/beevik/etree"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
)

// NS is the namespace of every Xsi-Actions and Xsi-Events body
// (research/xsi.md §0.1).
const NS = "http://schema.broadsoft.com/xsi"

// Error is a failed Xsi request: the HTTP status and, when the XSP sent one,
// its ErrorInfo body (research/xsi.md §2.8). Test the kind with errors.Is
// against the sentinels below, or read the details with errors.As.
type Error struct {
	Method         string
	URL            string
	Status         int
	ErrorCode      int    // ErrorInfo errorCode, 0 when there was no ErrorInfo
	Summary        string // ErrorInfo summary (localised), may be empty
	SummaryEnglish string // ErrorInfo summaryEnglish
}

func (e *Error) Error() string {
	s := fmt.Sprintf("xsi: %s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.ErrorCode != 0 || e.SummaryEnglish != "" {
		s += fmt.Sprintf(" (errorCode %d: %s)", e.ErrorCode, e.SummaryEnglish)
	}
	return s
}

// Is lets errors.Is(err, xsi.ErrNotFound) and friends match by status,
// and ErrServiceNotAssigned by status and errorCode.
func (e *Error) Is(target error) bool {
	switch k := target.(type) {
	case statusKind:
		return k.status == e.Status || (k.status == 0 && e.Status >= 500)
	case codeKind:
		return k.status == e.Status && k.code == e.ErrorCode
	}
	return false
}

// codeKind is a sentinel that matches an *Error by HTTP status and
// ErrorInfo errorCode.
type codeKind struct {
	status, code int
	name         string
}

func (k codeKind) Error() string { return "xsi: " + k.name }

// ErrServiceNotAssigned is BroadWorks' answer to a request (GET or PUT) for
// a service the user does not have, such as CallCenter of a user who is no
// call-center agent or HotelingHost of one who is no host: 400 with
// errorCode 4410, the OCI error "Service is not assigned to this
// subscriber". It also matches ErrBadRequest; it is an answer, not a
// transport failure (MayApplyLate is false).
var ErrServiceNotAssigned error = codeKind{http.StatusBadRequest, 4410, "service not assigned"}

// statusKind is a sentinel that matches an *Error by HTTP status.
type statusKind struct {
	status int
	name   string
}

func (k statusKind) Error() string { return "xsi: " + k.name }

// The statuses callers must tell apart, one per line (research/xsi.md §2.8).
var (
	ErrBadRequest      error = statusKind{http.StatusBadRequest, "bad request"}            // 400: body or parameter refused
	ErrUnauthorized    error = statusKind{http.StatusUnauthorized, "unauthorized"}         // 401: credentials refused; on heartbeat, the channel is gone
	ErrForbidden       error = statusKind{http.StatusForbidden, "forbidden"}               // 403: target outside the credential's scope
	ErrNotFound        error = statusKind{http.StatusNotFound, "not found"}                // 404: unknown user/resource, or unknown channel
	ErrConflict        error = statusKind{http.StatusConflict, "conflict"}                 // 409: e.g. duplicate subscription
	ErrUnavailable     error = statusKind{http.StatusServiceUnavailable, "unavailable"}    // 503: overload or per-user rate limit
	ErrServerError     error = statusKind{0, "server error"}                               // any 5xx
	ErrTooManyRequests error = statusKind{http.StatusTooManyRequests, "too many requests"} // 429
)

// MayApplyLate reports whether the XSP may still apply a request that
// failed with err (so that what it asked for may show up later): not when
// the XSP refused it (4xx), said it was overloaded (503; 429 is a 4xx:
// nothing is done) or could not be reached at all (ErrLinkDown); yes for
// other 5xx, a deadline passing and a connection lost on the way. Not
// either when it never left our own limits (ErrNotSent).
func MayApplyLate(err error) bool {
	if errors.Is(err, ErrNotSent) {
		return false
	}
	var xe *Error
	if errors.As(err, &xe) {
		return xe.Status >= 500 && xe.Status != http.StatusServiceUnavailable
	}
	return !errors.Is(err, ErrLinkDown)
}

// errLinkDown is returned when no XSP could be reached at all.
var ErrLinkDown = errors.New("xsi: no XSP reachable")

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// errorFromResponse builds the *Error for a non-2xx response, reading its
// ErrorInfo body when there is one. It does not close the body.
func errorFromResponse(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		if resp.Request.URL != nil {
			e.URL = resp.Request.URL.Redacted()
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	doc := etree.NewDocument()
	doc.ReadSettings.CharsetReader = charsetReader
	if err := doc.ReadFromBytes(body); err != nil {
		return e
	}
	root := doc.Root()
	if root == nil || root.Tag != "ErrorInfo" {
		return e
	}
	if c := root.SelectElement("errorCode"); c != nil {
		e.ErrorCode, _ = strconv.Atoi(strings.TrimSpace(c.Text()))
	}
	if s := root.SelectElement("summary"); s != nil {
		e.Summary = strings.TrimSpace(s.Text())
	}
	if s := root.SelectElement("summaryEnglish"); s != nil {
		e.SummaryEnglish = strings.TrimSpace(s.Text())
	}
	return e
}

// charsetReader reads the ISO-8859-1 bodies Xsi-Actions sends in the user's
// locale (research/xsi.md §0.12); events are UTF-8.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		return transform.NewReader(input, charmap.ISO8859_1.NewDecoder()), nil
	}
	return nil, fmt.Errorf("xsi: unsupported charset %q", label)
}
