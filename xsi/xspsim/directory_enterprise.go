package xspsim

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// The Enterprise directory (XSIDirectories.xsd Enterprise): the users of
// the requesting user's enterprise, searched and paged with the query
// parameters BroadWorks documents for directory searches.

const (
	// maxDirectoryResults is the page size: the default and the most a
	// request gets (a larger results asks for this many). A page of 1,000
	// directoryDetails is about 250 KB.
	maxDirectoryResults = 1000
	// maxSearchValue bounds a search value (bytes, after the /i suffix is
	// taken off), so that matching one user costs at most about
	// maxSearchValue × the length of the user's field.
	maxSearchValue = 256
)

// directoryFields are the search parameters the simulator supports and the
// user field each one matches.
var directoryFields = map[string]func(*userState) string{
	"userId":    func(u *userState) string { return u.ID },
	"firstName": func(u *userState) string { return u.FirstName },
	"lastName":  func(u *userState) string { return u.LastName },
	"number":    func(u *userState) string { return u.PhoneNumber },
	"extension": func(u *userState) string { return u.Extension },
	"groupId":   func(u *userState) string { return u.grp.id },
}

// criterion is one search parameter: pat matches a field exactly, '*'
// standing for any run of characters (runs of '*' collapsed); fold makes
// it case-insensitive (the value's /i suffix).
type criterion struct {
	field func(*userState) string
	pat   string
	wild  bool // pat contains '*'
	fold  bool
}

// directoryQuery is a parsed Enterprise directory request.
type directoryQuery struct {
	criteria []criterion // at most one per directoryFields entry
	or       bool        // searchCriteriaModeOr=true: any criterion, else all
	start    int         // 1-based, at most math.MaxInt32 (XSD PositiveInt)
	results  int         // 1..maxDirectoryResults
}

// parseDirectoryQuery reads the query string of an Enterprise directory
// request. Every parameter may appear once; one the simulator does not
// know is refused rather than ignored, so that a test never mistakes an
// unfiltered answer for a filtered one.
func parseDirectoryQuery(raw string) (directoryQuery, *simError) {
	q := directoryQuery{start: 1, results: maxDirectoryResults}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, badRequest("malformed query string: %v", err)
	}
	names := make([]string, 0, len(vals))
	for name := range vals {
		names = append(names, name)
	}
	slices.Sort(names) // the first problem reported is the same every time
	for _, name := range names {
		if len(vals[name]) != 1 {
			return q, badRequest("query parameter %s given %d times", name, len(vals[name]))
		}
		v := vals[name][0]
		switch name {
		case "start":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > math.MaxInt32 {
				return q, invalid("start: %q is not an integer in [1,%d]", v, math.MaxInt32)
			}
			q.start = n
		case "results":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return q, invalid("results: %q is not a positive integer", v)
			}
			q.results = min(n, maxDirectoryResults)
		case "searchCriteriaModeOr":
			switch v {
			case "true":
				q.or = true
			case "false":
			default:
				return q, invalid("searchCriteriaModeOr: %q is neither true nor false", v)
			}
		default:
			field := directoryFields[name]
			if field == nil {
				return q, badRequest("query parameter %s not supported by the simulator's Enterprise directory (supported: userId, firstName, lastName, number, extension, groupId, searchCriteriaModeOr, start, results)", name)
			}
			c, err := newCriterion(name, v)
			if err != nil {
				return q, err
			}
			c.field = field
			q.criteria = append(q.criteria, c)
		}
	}
	return q, nil
}

func newCriterion(name, v string) (criterion, *simError) {
	c := criterion{}
	if p, ok := strings.CutSuffix(v, "/i"); ok {
		v, c.fold = p, true
	}
	switch {
	case v == "":
		return c, invalid("%s: empty search value", name)
	case len(v) > maxSearchValue:
		return c, invalid("%s: search value longer than %d bytes", name, maxSearchValue)
	}
	for strings.Contains(v, "**") {
		v = strings.ReplaceAll(v, "**", "*")
	}
	c.pat, c.wild = v, strings.Contains(v, "*")
	return c, nil
}

// match reports whether field value s matches. A user without the field
// ("") matches no criterion on it, not even "*".
func (c *criterion) match(s string) bool {
	switch {
	case s == "":
		return false
	case !c.wild && !c.fold:
		return s == c.pat
	case !c.wild:
		return strings.EqualFold(s, c.pat)
	}
	// Glob match, backtracking to the last '*' only: O(len(s)·len(pat)).
	pat := c.pat
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		if p < len(pat) && pat[p] == '*' {
			star, mark = p, i
			p++
			continue
		}
		sr, sn := utf8.DecodeRuneInString(s[i:])
		if p < len(pat) {
			pr, pn := utf8.DecodeRuneInString(pat[p:])
			if pr == sr || c.fold && foldEqual(pr, sr) {
				p, i = p+pn, i+sn
				continue
			}
		}
		if star < 0 {
			return false
		}
		_, mn := utf8.DecodeRuneInString(s[mark:])
		mark += mn
		p, i = star+1, mark
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// foldEqual reports whether a and b are equal under simple Unicode case
// folding (as strings.EqualFold compares runes).
func foldEqual(a, b rune) bool {
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// matches reports whether u satisfies the query's criteria (all, or any
// with searchCriteriaModeOr); no criteria match everyone.
func (q *directoryQuery) matches(u *userState) bool {
	if len(q.criteria) == 0 {
		return true
	}
	for i := range q.criteria {
		c := &q.criteria[i]
		// The first criterion that decides: a match in OR mode, a miss in
		// AND mode.
		if c.match(c.field(u)) == q.or {
			return q.or
		}
	}
	return !q.or
}

// handleEnterpriseDirectory serves GET .../user/{userId}/directories/Enterprise:
// the users of the requesting user's enterprise (every group) that match
// the search parameters userId, firstName, lastName, number, extension,
// groupId (exact; '*' is a wildcard, a /i suffix makes the match
// case-insensitive; all must match unless searchCriteriaModeOr=true),
// sorted by user ID, one page of them from start (1-based) with at most
// results (≤ 1000) entries. The work is one pass over the enterprise's
// users and a sort of those found, done without holding the server lock.
func (s *Server) handleEnterpriseDirectory(w http.ResponseWriter, r *http.Request) {
	q, err := parseDirectoryQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.mu.Lock()
	u, err := s.lookupUser(r.PathValue("userId"))
	var members []*userState
	if err == nil {
		members = u.grp.ent.users
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, err)
		return
	}
	var found []*userState
	for _, m := range members {
		if q.matches(m) {
			found = append(found, m)
		}
	}
	slices.SortFunc(found, func(a, b *userState) int { return strings.Compare(a.ID, b.ID) })
	from := min(q.start-1, len(found))
	page := found[from:min(from+q.results, len(found))]
	s.writeActionsDoc(w, http.StatusOK, "Enterprise", func(root *etree.Element) {
		add(root, "startIndex", strconv.Itoa(q.start))
		add(root, "numberOfRecords", strconv.Itoa(len(page)))
		add(root, "totalAvailableRecords", strconv.Itoa(len(found)))
		l := root.CreateElement("enterpriseDirectory")
		for _, m := range page {
			userDetailsXML(l.CreateElement("directoryDetails"), m)
		}
	})
}
