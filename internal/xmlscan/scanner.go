// Package xmlscan is a one-pass, low-allocation pull scanner over an XML
// document held in memory. The CSTA request decoder and the XSI event decoder
// read their documents with it instead of building a DOM.
//
// # Use
//
//	var s xmlscan.Scanner // or one from a sync.Pool
//	s.Reset(doc)
//	for {
//		kind, err := s.Next()
//		if err == io.EOF {
//			break // well-formed to the end
//		}
//		if err != nil {
//			return err // *SyntaxError, ErrMaxDepth or a Charset error
//		}
//		switch kind {
//		case xmlscan.StartElement: // s.Name(), s.Attrs(), s.Namespace(), s.Depth()
//		case xmlscan.EndElement:   // s.Name(), s.Depth() (still counting this element)
//		case xmlscan.CharData:     // s.Text()
//		}
//	}
//
// Tokens:
//   - StartElement: Name returns the prefix ("" when none) and the local name;
//     Attrs the attributes in document order, values decoded. A self-closing
//     <a/> is a StartElement followed by an EndElement.
//   - EndElement: always matches the open element (else a *SyntaxError).
//   - CharData: text or a CDATA section, decoded: entity and character
//     references replaced, "\r\n" and "\r" turned into "\n". Text that needs
//     none of this is a sub-slice of the document; otherwise it is decoded
//     into the scanner's buffer. Text may come as several CharData tokens in a
//     row (around a comment or a CDATA section): concatenate them.
//   - ProcInst: every processing instruction, the XML declaration included
//     (Target "xml"); Text is its content. Directive: <!DOCTYPE ...> and the
//     like anywhere in the document; Text is its body. Callers that want only
//     elements and text ignore both.
//   - Comments are skipped.
//
// Every slice the scanner returns stays valid, and unchanged, until the next
// Reset: the decode buffers only grow within one document.
//
// # Namespaces
//
// Namespace resolves the current element's prefix against the xmlns and
// xmlns:p attributes in scope (the element's own included); LookupPrefix
// resolves any prefix. An undeclared prefix resolves to "" with ok false; the
// prefixes "xml" and "xmlns" are not predefined. When an attribute is given
// twice, the last value wins. Bindings live in one stack shared by all
// elements: the common case allocates nothing.
//
// # What is accepted
//
// Exactly what encoding/xml's Decoder (Strict, no Entity map, AutoClose nil)
// accepts through RawToken, plus the checks its Token and etree add: end
// tags must match their start tags (prefix and local name), no end tag
// without a start, no element left open at the end of the document. Like
// encoding/xml it accepts several top-level elements and text outside the
// root, and does not reject duplicate attributes. Names follow encoding/xml's
// tables (names.go); a name has at most one colon. Characters outside the XML
// Char production and invalid UTF-8 are rejected in text, CDATA and
// attribute values; undefined entities, references without ";" and
// references to characters outside the Char production are rejected.
//
// The XML declaration's version must be 1.0 when given. An encoding other
// than UTF-8 is handed to Charset, which returns the rest of the document
// transcoded to UTF-8 (as encoding/xml's CharsetReader does, a declaration
// switches the encoding of what follows it wherever it appears); with no
// Charset such a document is refused. Encoding returns the first
// declaration's encoding label.
//
// MaxDepth bounds element nesting: an element deeper than MaxDepth (the root
// is at depth 1) ends the scan with ErrMaxDepth after its start tag was read.
package xmlscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Kind is the kind of a token.
type Kind uint8

const (
	StartElement Kind = iota + 1
	EndElement
	CharData
	ProcInst
	Directive
)

func (k Kind) String() string {
	switch k {
	case StartElement:
		return "StartElement"
	case EndElement:
		return "EndElement"
	case CharData:
		return "CharData"
	case ProcInst:
		return "ProcInst"
	case Directive:
		return "Directive"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// DefaultMaxDepth is the nesting bound when MaxDepth is 0 (etree's default).
const DefaultMaxDepth = 1024

// ErrMaxDepth ends a scan at an element nested deeper than MaxDepth.
var ErrMaxDepth = errors.New("xmlscan: element nesting exceeds the depth bound")

// SyntaxError is a document that is not well-formed.
type SyntaxError struct {
	Line   int // 1-based line of the offending byte
	Offset int // byte offset in the document (after a Charset switch: in the transcoded rest)
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("XML syntax error on line %d: %s", e.Line, e.Msg)
}

// Attr is one attribute of a start element. Value is decoded.
type Attr struct {
	Prefix, Local, Value []byte
}

type openElement struct {
	prefix, local []byte
	nsLen         int // len(Scanner.ns) before this element's bindings
}

type binding struct {
	prefix    []byte
	isDefault bool
	uri       []byte
}

// Scanner reads one document at a time; the zero value is ready for Reset. A
// Scanner is not safe for concurrent use; keep them in a sync.Pool.
type Scanner struct {
	// MaxDepth bounds element nesting; 0 means DefaultMaxDepth.
	MaxDepth int
	// Charset, when set, transcodes the rest of the document after an XML
	// declaration naming an encoding other than UTF-8. It returns the UTF-8
	// replacement for rest, or an error to refuse the encoding.
	Charset func(label string, rest []byte) ([]byte, error)

	doc []byte
	pos int

	kind          Kind
	prefix, local []byte
	text          []byte
	attrs         []Attr
	stack         []openElement
	ns            []binding
	pendingPop    bool // the last token was an EndElement
	selfClosing   bool // the last token was <a/>: its EndElement comes next
	encoding      []byte
	sawDecl       bool
	err           error

	buf  []byte // decoded text, append-only within a document
	abuf []byte // decoded attribute values, append-only within a document
}

// Reset starts scanning doc, keeping the scanner's buffers.
func (s *Scanner) Reset(doc []byte) {
	s.doc = doc
	s.pos = 0
	s.kind = 0
	s.prefix, s.local, s.text = nil, nil, nil
	s.attrs = s.attrs[:0]
	s.stack = s.stack[:0]
	s.ns = s.ns[:0]
	s.pendingPop, s.selfClosing = false, false
	s.encoding, s.sawDecl = nil, false
	s.err = nil
	s.buf = s.buf[:0]
	s.abuf = s.abuf[:0]
}

// Name returns the prefix and local name of the current start or end
// element, or of the target (as local) of a processing instruction.
func (s *Scanner) Name() (prefix, local []byte) { return s.prefix, s.local }

// Attrs returns the attributes of the current start element.
func (s *Scanner) Attrs() []Attr { return s.attrs }

// Text returns the decoded character data of a CharData token, or the content
// of a ProcInst or Directive.
func (s *Scanner) Text() []byte { return s.text }

// Depth is the number of open elements, counting the current start or end
// element: the root is at depth 1.
func (s *Scanner) Depth() int { return len(s.stack) }

// Encoding returns the encoding label of the first XML declaration, or nil.
func (s *Scanner) Encoding() []byte { return s.encoding }

// Offset is the byte offset of the next token.
func (s *Scanner) Offset() int { return s.pos }

// Namespace resolves the prefix of the current start or end element.
func (s *Scanner) Namespace() (uri []byte, ok bool) { return s.LookupPrefix(s.prefix) }

// LookupPrefix resolves a prefix ("" for the default namespace) in the scope of
// the current element.
func (s *Scanner) LookupPrefix(prefix []byte) (uri []byte, ok bool) {
	def := len(prefix) == 0
	for i := len(s.ns) - 1; i >= 0; i-- {
		b := &s.ns[i]
		if def {
			if b.isDefault {
				return b.uri, true
			}
		} else if !b.isDefault && bytes.Equal(b.prefix, prefix) {
			return b.uri, true
		}
	}
	return nil, false
}

func (s *Scanner) fail(at int, format string, args ...any) (Kind, error) {
	if at > len(s.doc) {
		at = len(s.doc)
	}
	line := 1 + bytes.Count(s.doc[:at], []byte{'\n'})
	s.err = &SyntaxError{Line: line, Offset: at, Msg: fmt.Sprintf(format, args...)}
	return 0, s.err
}

func (s *Scanner) eof() (Kind, error) { return s.fail(len(s.doc), "unexpected EOF") }

// Next reads the next token. At the end of a well-formed document it returns
// io.EOF; after any error it keeps returning that error.
func (s *Scanner) Next() (Kind, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.pendingPop {
		top := s.stack[len(s.stack)-1]
		s.ns = s.ns[:top.nsLen]
		s.stack = s.stack[:len(s.stack)-1]
		s.pendingPop = false
	}
	s.attrs = s.attrs[:0]
	if s.selfClosing {
		s.selfClosing = false
		s.pendingPop = true
		s.kind = EndElement
		return EndElement, nil
	}
	for {
		d := s.doc
		if s.pos >= len(d) {
			if len(s.stack) > 0 {
				top := s.stack[len(s.stack)-1]
				return s.fail(len(d), "unexpected EOF: element <%s> not closed", qname(top.prefix, top.local))
			}
			s.err = io.EOF
			return 0, io.EOF
		}
		if d[s.pos] != '<' {
			return s.scanText()
		}
		i := s.pos + 1
		if i >= len(d) {
			return s.eof()
		}
		switch d[i] {
		case '/':
			return s.scanEnd(i + 1)
		case '?':
			return s.scanProcInst(i + 1)
		case '!':
			i++
			if i >= len(d) {
				return s.eof()
			}
			switch d[i] {
			case '-':
				if i+1 >= len(d) {
					return s.eof()
				}
				if d[i+1] != '-' {
					return s.fail(i+1, "invalid sequence <!- not part of <!--")
				}
				body := i + 2
				k := bytes.Index(d[body:], []byte("--"))
				if k < 0 || body+k+2 >= len(d) {
					return s.eof()
				}
				if d[body+k+2] != '>' {
					return s.fail(body+k+2, `invalid sequence "--" not allowed in comments`)
				}
				s.pos = body + k + 3
				continue // comments are skipped
			case '[':
				return s.scanCDATA(i + 1)
			}
			return s.scanDirective(i)
		}
		return s.scanStart(i)
	}
}

func qname(prefix, local []byte) string {
	if len(prefix) == 0 {
		return string(local)
	}
	return string(prefix) + ":" + string(local)
}

// ---- names ----

// nameClass classifies bytes in names as encoding/xml reads them: it takes
// every name byte and every non-ASCII byte, then checks the whole name.
const (
	ncNot   = iota // ends a name
	ncInner        // digit, '.', '-': not first
	ncStart        // letter, '_', ':'
	ncColon        // ':' (a start byte too)
	ncWide         // non-ASCII: checked against the tables
)

var nameClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = ncWide
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', c == '_':
			t[c] = ncStart
		case c == ':':
			t[c] = ncColon
		case '0' <= c && c <= '9', c == '.', c == '-':
			t[c] = ncInner
		}
	}
	return t
}()

// nameEnd returns the end of the name-like run at i.
func nameEnd(d []byte, i int) int {
	for i < len(d) && nameClass[d[i]] != ncNot {
		i++
	}
	return i
}

// isName checks a name-like run as encoding/xml's isName does.
func isName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	ascii := true
	for _, c := range s {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		c := nameClass[s[0]]
		return c == ncStart || c == ncColon // the rest are name bytes by construction
	}
	c, n := utf8.DecodeRune(s)
	if c == utf8.RuneError && n == 1 || !unicode.Is(first, c) {
		return false
	}
	for n < len(s) {
		s = s[n:]
		c, n = utf8.DecodeRune(s)
		if c == utf8.RuneError && n == 1 {
			return false
		}
		if !unicode.Is(first, c) && !unicode.Is(second, c) {
			return false
		}
	}
	return true
}

// readNSName reads a name at i as encoding/xml's nsname does, in one pass.
// local is nil when there is no valid name there; msg then says why when it
// is invalid rather than absent.
func readNSName(d []byte, i int) (prefix, local []byte, end int, msg string) {
	start := i
	colon, colons := -1, 0
	wide := false
	for i < len(d) {
		c := nameClass[d[i]]
		if c == ncStart || c == ncInner {
			i++
			continue
		}
		if c == ncColon {
			colon = i - start
			colons++
		} else if c == ncWide {
			wide = true
		} else {
			break
		}
		i++
	}
	if i == start {
		return nil, nil, i, ""
	}
	name := d[start:i]
	if wide {
		if !isName(name) {
			return nil, nil, i, "invalid XML name: " + string(name)
		}
	} else if c := nameClass[name[0]]; c != ncStart && c != ncColon {
		return nil, nil, i, "invalid XML name: " + string(name)
	}
	if colons > 1 {
		return nil, nil, i, "more than one colon in name " + string(name)
	}
	if colon <= 0 || colon == len(name)-1 {
		return nil, name, i, ""
	}
	return name[:colon], name[colon+1:], i, ""
}

// hasQName reports whether the name at d[i:] is exactly prefix:local (local
// alone when prefix is empty), and where it ends.
func hasQName(d []byte, i int, prefix, local []byte) (int, bool) {
	if len(prefix) > 0 {
		if !bytes.HasPrefix(d[i:], prefix) || i+len(prefix) >= len(d) || d[i+len(prefix)] != ':' {
			return 0, false
		}
		i += len(prefix) + 1
	}
	if !bytes.HasPrefix(d[i:], local) {
		return 0, false
	}
	i += len(local)
	if i < len(d) && nameClass[d[i]] != ncNot {
		return 0, false
	}
	return i, true
}

func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\r', '\n', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// ---- elements ----

func (s *Scanner) scanStart(i int) (Kind, error) {
	d := s.doc
	if i >= len(d) {
		return s.eof()
	}
	prefix, local, i, msg := readNSName(d, i)
	if local == nil {
		if msg == "" {
			msg = "expected element name after <"
		}
		if i >= len(d) {
			return s.eof()
		}
		return s.fail(i, "%s", msg)
	}
	empty := false
	for {
		i = skipSpace(d, i)
		if i >= len(d) {
			return s.eof()
		}
		c := d[i]
		if c == '/' {
			if i+1 >= len(d) {
				return s.eof()
			}
			if d[i+1] != '>' {
				return s.fail(i+1, "expected /> in element")
			}
			i += 2
			empty = true
			break
		}
		if c == '>' {
			i++
			break
		}
		ap, al, j, msg := readNSName(d, i)
		if al == nil {
			if j >= len(d) {
				return s.eof()
			}
			if msg == "" {
				msg = "expected attribute name in element"
			}
			return s.fail(j, "%s", msg)
		}
		j = skipSpace(d, j)
		if j >= len(d) {
			return s.eof()
		}
		if d[j] != '=' {
			return s.fail(j, "attribute name without = in element")
		}
		j = skipSpace(d, j+1)
		if j >= len(d) {
			return s.eof()
		}
		q := d[j]
		if q != '"' && q != '\'' {
			return s.fail(j, "unquoted or missing attribute value in element")
		}
		val, next, err := s.attrValue(j+1, q)
		if err != nil {
			return 0, err
		}
		s.attrs = append(s.attrs, Attr{Prefix: ap, Local: al, Value: val})
		i = next
	}
	s.pos = i
	// Bindings of this element.
	nsLen := len(s.ns)
	for _, a := range s.attrs {
		if len(a.Prefix) == 0 && string(a.Local) == "xmlns" {
			s.ns = append(s.ns, binding{isDefault: true, uri: a.Value})
		} else if string(a.Prefix) == "xmlns" {
			s.ns = append(s.ns, binding{prefix: a.Local, uri: a.Value})
		}
	}
	s.stack = append(s.stack, openElement{prefix: prefix, local: local, nsLen: nsLen})
	max := s.MaxDepth
	if max <= 0 {
		max = DefaultMaxDepth
	}
	if len(s.stack) > max {
		s.err = ErrMaxDepth
		return 0, s.err
	}
	s.prefix, s.local = prefix, local
	s.selfClosing = empty
	s.kind = StartElement
	return StartElement, nil
}

func (s *Scanner) scanEnd(i int) (Kind, error) {
	d := s.doc
	if i >= len(d) {
		return s.eof()
	}
	if n := len(s.stack); n > 0 {
		// The common case: the name of the open element, which was read
		// and checked at its start.
		top := s.stack[n-1]
		if j, ok := hasQName(d, i, top.prefix, top.local); ok {
			j = skipSpace(d, j)
			if j < len(d) && d[j] == '>' {
				s.pos = j + 1
				s.prefix, s.local = top.prefix, top.local
				s.pendingPop = true
				s.kind = EndElement
				return EndElement, nil
			}
		}
	}
	prefix, local, i, msg := readNSName(d, i)
	if local == nil {
		if i >= len(d) {
			return s.eof()
		}
		if msg == "" {
			msg = "expected element name after </"
		}
		return s.fail(i, "%s", msg)
	}
	i = skipSpace(d, i)
	if i >= len(d) {
		return s.eof()
	}
	if d[i] != '>' {
		return s.fail(i, "invalid characters between </%s and >", local)
	}
	if len(s.stack) == 0 {
		return s.fail(i, "unexpected end element </%s>", qname(prefix, local))
	}
	top := s.stack[len(s.stack)-1]
	if !bytes.Equal(top.local, local) || !bytes.Equal(top.prefix, prefix) {
		return s.fail(i, "element <%s> closed by </%s>", qname(top.prefix, top.local), qname(prefix, local))
	}
	s.pos = i + 1
	s.prefix, s.local = prefix, local
	s.pendingPop = true
	s.kind = EndElement
	return EndElement, nil
}

// ---- text ----

// Classes of bytes in text (textClass) and in attribute values (attrClass).
const (
	clsPlain   = iota
	clsLT      // ends text; refused in attribute values
	clsAmp     // reference: decode
	clsCR      // newline normalisation: decode
	clsBracket // may start "]]>" in text
	clsQuote   // may end an attribute value
	clsBad     // not an XML Char
	clsWide    // non-ASCII: checked as UTF-8
)

var textClass, attrClass = func() (t, a [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = clsBad
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = clsWide
	}
	t['\t'], t['\n'] = clsPlain, clsPlain
	t['\r'] = clsCR
	t['<'] = clsLT
	t['&'] = clsAmp
	a = t
	t[']'] = clsBracket
	a['"'], a['\''] = clsQuote, clsQuote
	return t, a
}()

func isInCharacterRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// checkRune validates the non-ASCII character at d[i]; it returns its size, or
// 0 with the error message.
func checkRune(d []byte, i int) (int, string) {
	r, size := utf8.DecodeRune(d[i:])
	if r == utf8.RuneError && size == 1 {
		return 0, "invalid UTF-8"
	}
	if !isInCharacterRange(r) {
		return 0, fmt.Sprintf("illegal character code %U", r)
	}
	return size, ""
}

func (s *Scanner) scanText() (Kind, error) {
	d := s.doc
	start := s.pos
	i := start
	decode := false
	for i < len(d) {
		c := d[i]
		cls := textClass[c]
		if cls == clsPlain {
			i++
			continue
		}
		switch cls {
		case clsLT:
			goto done
		case clsAmp, clsCR:
			decode = true
		case clsBracket:
			if i+2 < len(d) && d[i+1] == ']' && d[i+2] == '>' {
				return s.fail(i, "unescaped ]]> not in CDATA section")
			}
		case clsBad:
			return s.fail(i, "illegal character code %U", rune(c))
		case clsWide:
			n, msg := checkRune(d, i)
			if n == 0 {
				return s.fail(i, "%s", msg)
			}
			i += n
			continue
		}
		i++
	}
done:
	raw := d[start:i]
	s.pos = i
	s.kind = CharData
	if !decode {
		s.text = raw
		return CharData, nil
	}
	out, msg, at := decodeText(s.buf, raw, true)
	if msg != "" {
		return s.fail(start+at, "%s", msg)
	}
	s.text = out[len(s.buf):]
	s.buf = out
	return CharData, nil
}

// decodeText appends raw (already checked for invalid characters) to dst with
// references resolved (when refs) and newlines normalised.
func decodeText(dst, raw []byte, refs bool) (out []byte, msg string, at int) {
	var prev byte
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '&' && refs:
			r, n, m := reference(raw[i:])
			if m != "" {
				return dst, m, i
			}
			dst = utf8.AppendRune(dst, r)
			i += n
			prev = 0
			continue
		case c == '\r':
			dst = append(dst, '\n')
		case c == '\n' && prev == '\r':
			// "\r\n": the "\n" was written for the "\r"
		default:
			dst = append(dst, c)
		}
		prev = c
		i++
	}
	return dst, "", 0
}

// reference decodes the entity or character reference at the start of b
// ("&..."), as encoding/xml does with no Entity map.
func reference(b []byte) (r rune, n int, msg string) {
	semi := bytes.IndexByte(b, ';')
	if len(b) > 1 && b[1] == '#' {
		i, base := 2, 10
		if len(b) > 2 && b[2] == 'x' {
			i, base = 3, 16
		}
		j := i
		for j < len(b) && ('0' <= b[j] && b[j] <= '9' || base == 16 && ('a' <= b[j] && b[j] <= 'f' || 'A' <= b[j] && b[j] <= 'F')) {
			j++
		}
		if j >= len(b) || b[j] != ';' {
			return 0, 0, "invalid character entity " + string(b[:j]) + " (no semicolon)"
		}
		v, err := strconv.ParseUint(string(b[i:j]), base, 64)
		if err != nil || v > unicode.MaxRune {
			return 0, 0, "invalid character entity " + string(b[:j+1])
		}
		r = rune(v)
		if !utf8.ValidRune(r) {
			r = utf8.RuneError // string(rune(v)) for a surrogate
		}
		if !isInCharacterRange(r) {
			return 0, 0, fmt.Sprintf("illegal character code %U", r)
		}
		return r, j + 1, ""
	}
	if semi > 0 {
		switch string(b[1:semi]) {
		case "lt":
			return '<', semi + 1, ""
		case "gt":
			return '>', semi + 1, ""
		case "amp":
			return '&', semi + 1, ""
		case "apos":
			return '\'', semi + 1, ""
		case "quot":
			return '"', semi + 1, ""
		}
	}
	end := nameEnd(b, 1)
	if end < len(b) && b[end] == ';' {
		return 0, 0, "invalid character entity " + string(b[:end+1])
	}
	return 0, 0, "invalid character entity " + string(b[:end]) + " (no semicolon)"
}

func (s *Scanner) scanCDATA(i int) (Kind, error) {
	d := s.doc
	const open = "CDATA["
	for k := 0; k < len(open); k++ {
		if i+k >= len(d) {
			return s.eof()
		}
		if d[i+k] != open[k] {
			return s.fail(i+k, "invalid <![ sequence")
		}
	}
	start := i + len(open)
	k := bytes.Index(d[start:], []byte("]]>"))
	if k < 0 {
		return s.fail(len(d), "unexpected EOF in CDATA section")
	}
	raw := d[start : start+k]
	decode := false
	for j := 0; j < len(raw); {
		c := raw[j]
		switch textClass[c] {
		case clsBad:
			return s.fail(start+j, "illegal character code %U", rune(c))
		case clsCR:
			decode = true
		case clsWide:
			n, msg := checkRune(raw, j)
			if n == 0 {
				return s.fail(start+j, "%s", msg)
			}
			j += n
			continue
		}
		j++
	}
	s.pos = start + k + 3
	s.kind = CharData
	if !decode {
		s.text = raw
		return CharData, nil
	}
	out, _, _ := decodeText(s.buf, raw, false)
	s.text = out[len(s.buf):]
	s.buf = out
	return CharData, nil
}

// attrValue reads a quoted value starting after the quote; next is after the
// closing quote.
func (s *Scanner) attrValue(i int, q byte) (val []byte, next int, err error) {
	d := s.doc
	start := i
	decode := false
	for {
		if i >= len(d) {
			_, err = s.eof()
			return nil, 0, err
		}
		c := d[i]
		cls := attrClass[c]
		if cls == clsPlain {
			i++
			continue
		}
		if c == q {
			break
		}
		switch cls {
		case clsLT:
			_, err = s.fail(i, "unescaped < inside quoted string")
			return nil, 0, err
		case clsAmp, clsCR:
			decode = true
		case clsBad:
			_, err = s.fail(i, "illegal character code %U", rune(c))
			return nil, 0, err
		case clsWide:
			n, msg := checkRune(d, i)
			if n == 0 {
				_, err = s.fail(i, "%s", msg)
				return nil, 0, err
			}
			i += n
			continue
		}
		i++
	}
	raw := d[start:i]
	if !decode {
		return raw, i + 1, nil
	}
	out, msg, at := decodeText(s.abuf, raw, true)
	if msg != "" {
		_, err = s.fail(start+at, "%s", msg)
		return nil, 0, err
	}
	val = out[len(s.abuf):]
	s.abuf = out
	return val, i + 1, nil
}

// ---- processing instructions and directives ----

func (s *Scanner) scanProcInst(i int) (Kind, error) {
	d := s.doc
	end := nameEnd(d, i)
	if end == i {
		if i >= len(d) {
			return s.eof()
		}
		return s.fail(i, "expected target name after <?")
	}
	target := d[i:end]
	if !isName(target) {
		return s.fail(i, "invalid XML name: %s", target)
	}
	body := skipSpace(d, end)
	k := bytes.Index(d[body:], []byte("?>"))
	if k < 0 {
		return s.eof()
	}
	content := d[body : body+k]
	s.pos = body + k + 2
	s.prefix, s.local, s.text = nil, target, content
	s.kind = ProcInst
	if string(target) == "xml" {
		if ver := DeclParam("version", content); len(ver) > 0 && string(ver) != "1.0" {
			s.err = fmt.Errorf("xml: unsupported version %q; only version 1.0 is supported", ver)
			return 0, s.err
		}
		enc := DeclParam("encoding", content)
		if !s.sawDecl {
			s.sawDecl = true
			s.encoding = enc
		}
		if len(enc) > 0 && !bytes.EqualFold(enc, []byte("utf-8")) {
			if s.Charset == nil {
				s.err = fmt.Errorf("xml: encoding %q declared but the scanner has no Charset", enc)
				return 0, s.err
			}
			rest, err := s.Charset(string(enc), d[s.pos:])
			if err != nil {
				s.err = fmt.Errorf("xml: opening charset %q: %w", enc, err)
				return 0, s.err
			}
			s.doc, s.pos = rest, 0
		}
	}
	return ProcInst, nil
}

// procInstParam is encoding/xml's procInst: the value of param="..." or
// param='...' in a declaration, found as loosely as encoding/xml finds it.
func DeclParam(param string, s []byte) []byte {
	lenp := len(param) + 1
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := indexParam(sub, param)
		if k < 0 || lenp+k >= len(sub) {
			return nil
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return nil
	}
	j := bytes.IndexByte(s[i:], sep)
	if j < 0 {
		return nil
	}
	return s[i : i+j]
}

// indexParam finds param followed by "=".
func indexParam(s []byte, param string) int {
	off := 0
	for {
		k := bytes.Index(s[off:], []byte(param))
		if k < 0 {
			return -1
		}
		k += off
		if k+len(param) < len(s) && s[k+len(param)] == '=' {
			return k
		}
		off = k + 1
	}
}

// scanDirective reads <!...> from the byte after "<!" exactly as encoding/xml
// does: quotes and nested <...> do not end it, comments inside are dropped.
func (s *Scanner) scanDirective(i int) (Kind, error) {
	d := s.doc
	start := i
	i++ // encoding/xml takes the first byte as is
	var inquote byte
	depth := 0
	for {
		if i >= len(d) {
			return s.eof()
		}
		b := d[i]
		i++
		if inquote == 0 && b == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case b == inquote:
			inquote = 0
		case inquote != 0:
		case b == '\'' || b == '"':
			inquote = b
		case b == '>':
			depth--
		case b == '<':
			const open = "!--"
			for k := 0; k < len(open); k++ {
				if i >= len(d) {
					return s.eof()
				}
				b = d[i]
				i++
				if b != open[k] {
					depth++
					goto handle
				}
			}
			// A comment inside the directive: up to "-->".
			var b0, b1 byte
			for {
				if i >= len(d) {
					return s.eof()
				}
				b = d[i]
				i++
				if b0 == '-' && b1 == '-' && b == '>' {
					break
				}
				b0, b1 = b1, b
			}
		}
	}
	s.pos = i
	s.prefix, s.local = nil, nil
	s.text = d[start : i-1]
	s.kind = Directive
	return Directive, nil
}
