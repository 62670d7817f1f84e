package csta

import (
	"strconv"
	"strings"
)

// Edition is the ECMA-323 edition a client speaks. The zero value, EditionNone,
// stands for "no namespace": some clients (asterisk-csp, research/csta.md §0.3)
// send none and are answered without one.
type Edition int

const (
	EditionNone Edition = 0
	Edition2    Edition = 2
	Edition3    Edition = 3
	Edition4    Edition = 4
	Edition5    Edition = 5
	Edition6    Edition = 6
)

// Namespaces (research/csta.md §0.4). Edition 2 lived under ecma.ch.
const (
	nsEd2        = "http://www.ecma.ch/standards/ecma-323/csta/ed2"
	nsEdPrefix   = "http://www.ecma-international.org/standards/ecma-323/csta/ed"
	NSAppSession = "http://www.ecma-international.org/standards/ecma-354/appl_session"
	// NSBroadSoftPrivate is BroadWorks' CSTA private-data namespace, which carries
	// AgentNotReadyReasonValue (research/csta.md §1.1, §5).
	NSBroadSoftPrivate = "http://schema.broadsoft.com/CSTAPrivateData"
)

// namespaces is indexed by Edition; every answer needs one, so they are
// built once.
var namespaces = [...]string{
	Edition2: nsEd2,
	Edition3: nsEdPrefix + "3",
	Edition4: nsEdPrefix + "4",
	Edition5: nsEdPrefix + "5",
	Edition6: nsEdPrefix + "6",
}

// Namespace returns the ECMA-323 namespace URI of the edition ("" for EditionNone).
func (e Edition) Namespace() string {
	if e < 0 || int(e) >= len(namespaces) {
		return ""
	}
	return namespaces[e]
}

// Valid reports whether e is an edition the codec speaks.
func (e Edition) Valid() bool {
	return e == EditionNone || (e >= Edition2 && e <= Edition6)
}

func (e Edition) String() string {
	if e == EditionNone {
		return "none"
	}
	return "ed" + strconv.Itoa(int(e))
}

// ParseEdition maps "ed3", "3" or "none" to an Edition (used by configuration).
func ParseEdition(s string) (Edition, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "none" || s == "" {
		return EditionNone, s == "none"
	}
	s = strings.TrimPrefix(s, "ed")
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 || n > 6 {
		return 0, false
	}
	return Edition(n), true
}

// editionOfNamespace classifies a root element namespace. ok is false for a
// namespace that is neither ECMA-323 ed2–ed6, ECMA-354, nor empty.
// isSession is true for the ECMA-354 namespace.
func editionOfNamespace(ns string) (ed Edition, isSession, ok bool) {
	switch {
	case ns == "":
		return EditionNone, false, true
	case ns == nsEd2:
		return Edition2, false, true
	case ns == NSAppSession:
		return EditionNone, true, true
	case strings.HasPrefix(ns, nsEdPrefix):
		ed, ok := editionOfProtocolVersion(ns)
		return ed, false, ok
	}
	return EditionNone, false, false
}

// editionOfProtocolVersion reads the edition out of a protocolVersion string of
// StartApplicationSession. Avaya sends private variants such as
// ".../csta/ed3/priv5" while its namespace stays ".../csta/ed3"
// (research/csta.md §0.4), so a trailing "/..." is allowed.
func editionOfProtocolVersion(v string) (Edition, bool) {
	v = strings.TrimSpace(v)
	if v == nsEd2 || strings.HasPrefix(v, nsEd2+"/") {
		return Edition2, true
	}
	if !strings.HasPrefix(v, nsEdPrefix) {
		return 0, false
	}
	rest := v[len(nsEdPrefix):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 3 || n > 6 {
		return 0, false
	}
	return Edition(n), true
}
