package xsi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/broadworks-connector/connector/internal/xmlscan"
)

// DefaultMaxDocument bounds one document on the event channel (and each
// run of white space, comment or declaration between documents). Real
// events are a few kilobytes; a larger one means a broken or hostile stream.
const DefaultMaxDocument = 1 << 20

// ErrDocumentTooLarge is returned by the splitter when a document (or the
// gap before it) exceeds the configured bound.
var ErrDocumentTooLarge = errors.New("xsi: event channel document too large")

// ErrDocumentTooDeep is returned by the splitter for a document nested
// deeper than maxEventDepth (BroadWorks' events are under ten levels deep).
var ErrDocumentTooDeep = fmt.Errorf("xsi: event channel document nested deeper than %d elements", maxEventDepth)

const maxEventDepth = 64

// splitReadSize is the least room the splitter offers each Read; its
// buffers start at this size and return to splitBufs.
const splitReadSize = 16 << 10

var splitBufs = sync.Pool{New: func() any { b := make([]byte, 0, splitReadSize); return &b }}

// splitState is where the splitter is in the markup grammar; every state
// is resumable at any byte, so chunk boundaries mean nothing.
type splitState uint8

const (
	spTop        splitState = iota // at a token boundary
	spText                         // in character data (checked between documents)
	spLT                           // after '<'
	spStartTag                     // in a start tag, outside quotes
	spAttrValue                    // in a quoted attribute value (s.quote)
	spEndTag                       // in an end tag
	spPI                           // in a processing instruction or <?xml?> declaration
	spBang                         // after "<!"
	spBangDash                     // after "<!-"
	spComment                      // in a comment
	spCDATAOpen                    // matching "CDATA[" after "<!["
	spCDATA                        // in a CDATA section
	spDirective                    // in a <!DOCTYPE ...>-like directive
	spDirLT                        // in a directive, after '<' (matching "!--")
	spDirComment                   // in a comment inside a directive
)

// splitter cuts the de-chunked byte stream of an event channel into complete
// XML documents (research/xsi.md §0.2). Chunk boundaries mean nothing: one
// document may span many reads, many documents may arrive in one read, each
// may carry its own <?xml?> declaration, and whitespace may separate them.
//
// It reads the raw bytes once and tracks element depth: start, end and
// self-closing tags, quoted attribute values (which may hold '>' or '/'),
// comments, CDATA sections, processing instructions, <?xml?> declarations
// (whose version and encoding it checks) and directives such as DOCTYPE
// (quotes and nested brackets as encoding/xml reads them). It checks what
// decides where documents end and nothing more: names, entities and
// characters inside a document are the parser's business. Between
// documents only white space (also as character references or CDATA),
// comments, declarations and directives may appear.
//
// A document or a token between documents longer than maxDoc bytes is
// ErrDocumentTooLarge; memory is the read buffer plus at most maxDoc bytes.
type splitter struct {
	src    io.Reader
	bufp   *[]byte // from splitBufs, nil after release
	buf    []byte  // buf[keep:pos] is the document or gap token in progress
	pos    int     // next byte to scan
	maxDoc int
	rerr   error // the source's error, reported once its bytes are scanned
	err    error // sticky: the error Next returned
	empty  int   // consecutive empty reads

	st    splitState
	depth int
	start int // index of the root's '<', -1 between documents
	tok   int // index where the current token began
	quote byte
	b0    byte // the two bytes before the current one, where a state needs them
	b1    byte
	n     int  // bytes of a fixed sequence matched
	dnest int  // directive nesting
	slash bool // the last start-tag byte outside quotes was '/'
}

// newSplitter reads documents from r; maxDoc <= 0 means DefaultMaxDocument.
func newSplitter(r io.Reader, maxDoc int) *splitter {
	if maxDoc <= 0 {
		maxDoc = DefaultMaxDocument
	}
	bp := splitBufs.Get().(*[]byte)
	return &splitter{src: r, bufp: bp, buf: (*bp)[:0], maxDoc: maxDoc, start: -1}
}

// release returns the splitter's buffer to the pool; the last document
// returned is invalid from then on, and so is the splitter.
func (s *splitter) release() {
	if s.bufp == nil {
		return
	}
	if cap(s.buf) <= 4*splitReadSize {
		*s.bufp = s.buf[:0]
		splitBufs.Put(s.bufp)
	}
	s.bufp, s.buf = nil, nil
	s.err = errors.New("xsi: event channel splitter released")
}

// Next returns the raw bytes of the next complete document (from its root
// start tag to its root end tag; declarations are not included). The slice
// is only valid until the next call. At a clean end of stream between
// documents it returns io.EOF; a stream that ends inside a document returns
// io.ErrUnexpectedEOF. Errors are sticky.
func (s *splitter) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.start = -1
	for {
		doc, err := s.scan()
		if doc != nil || err != nil {
			if err != nil {
				s.err = err
			}
			return doc, err
		}
		// At the bound, or out of bytes.
		if s.pos-s.base() >= s.maxDoc {
			s.err = ErrDocumentTooLarge
			return nil, s.err
		}
		if s.pos < len(s.buf) {
			continue // stopped at a bound computed for an earlier token
		}
		if err := s.fill(); err != nil {
			s.err = s.atEnd(err)
			return nil, s.err
		}
	}
}

// base is the first byte that must be kept: the document's or the
// current token's start.
func (s *splitter) base() int {
	switch {
	case s.start >= 0:
		return s.start
	case s.st != spTop:
		return s.tok
	}
	return s.pos
}

// fill drops what is no longer needed and reads more bytes.
func (s *splitter) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	if keep := s.base(); keep > 0 {
		n := copy(s.buf, s.buf[keep:])
		s.buf = s.buf[:n]
		s.pos -= keep
		s.tok -= keep
		if s.start >= 0 {
			s.start -= keep
		}
		// Do not keep a huge backing array after a large document.
		if cap(s.buf) > 4*splitReadSize && n < splitReadSize && s.bufp != nil {
			s.buf = append((*s.bufp)[:0], s.buf...)
		}
	}
	if cap(s.buf)-len(s.buf) < splitReadSize/4 {
		// What is kept is under maxDoc bytes (Next checked), so the
		// buffer never exceeds maxDoc plus one read.
		nb := make([]byte, len(s.buf), min(max(2*cap(s.buf), len(s.buf)+splitReadSize), s.maxDoc+splitReadSize))
		copy(nb, s.buf)
		s.buf = nb
	}
	n, err := s.src.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if err != nil {
		s.rerr = err
		if n == 0 {
			return err
		}
	}
	if n == 0 {
		if s.empty++; s.empty > 100 {
			s.rerr = io.ErrNoProgress
			return s.rerr
		}
	} else {
		s.empty = 0
	}
	return nil
}

// atEnd turns the end of the source, with every byte scanned, into what
// Next reports.
func (s *splitter) atEnd(err error) error {
	if err != io.EOF {
		return fmt.Errorf("xsi: event channel: %w", err)
	}
	switch {
	case s.depth > 0:
		return io.ErrUnexpectedEOF
	case s.start >= 0:
		return errors.New("xsi: event channel: stream ended inside a start tag")
	case s.st == spText:
		if !gapIsSpace(s.buf[s.tok:s.pos]) {
			return errTextOutside
		}
		return io.EOF
	case s.st != spTop:
		return errors.New("xsi: event channel: stream ended inside markup between documents")
	}
	return io.EOF
}

var errTextOutside = errors.New("xsi: event channel: text outside a document")

// scan consumes buffered bytes up to the bound: a complete document, an
// error, or (nil, nil) when it needs more bytes.
func (s *splitter) scan() ([]byte, error) {
	limit := min(len(s.buf), s.base()+s.maxDoc)
	buf := s.buf[:limit]
	for s.pos < len(buf) {
		c := buf[s.pos]
		switch s.st {
		case spTop:
			s.tok = s.pos
			if c == '<' {
				s.st = spLT
				s.pos++
				continue
			}
			s.st = spText
			continue
		case spText:
			i := bytes.IndexByte(buf[s.pos:], '<')
			if i < 0 {
				s.pos = len(buf)
				continue
			}
			s.pos += i
			s.st = spTop
			if s.depth == 0 && !gapIsSpace(buf[s.tok:s.pos]) {
				return nil, errTextOutside
			}
			continue
		case spLT:
			switch c {
			case '/':
				s.st = spEndTag
			case '?':
				s.st = spPI
				s.b0 = 0
			case '!':
				s.st = spBang
			default:
				if s.depth == 0 {
					s.start = s.tok
				}
				s.st, s.slash = spStartTag, false
				continue // c is the name's first byte
			}
		case spStartTag:
			// Names and white space: skip to the next byte that matters.
			if c != '>' && c != '"' && c != '\'' && c != '/' {
				s.slash = false
				i := s.pos + 1
				for i < len(buf) {
					if b := buf[i]; b == '>' || b == '"' || b == '\'' || b == '/' {
						break
					}
					i++
				}
				s.pos = i
				continue
			}
			switch c {
			case '>':
				s.depth++
				if s.depth > maxEventDepth {
					return nil, ErrDocumentTooDeep
				}
				s.st = spTop
				if s.slash {
					s.depth--
					if s.depth == 0 {
						return s.cut(), nil
					}
				}
			case '"', '\'':
				s.st, s.quote, s.slash = spAttrValue, c, false
			case '/':
				s.slash = true
			}
		case spAttrValue:
			i := bytes.IndexByte(buf[s.pos:], s.quote)
			if i < 0 {
				s.pos = len(buf)
				continue
			}
			s.pos += i
			s.st = spStartTag
		case spEndTag:
			i := bytes.IndexByte(buf[s.pos:], '>')
			if i < 0 {
				s.pos = len(buf)
				continue
			}
			s.pos += i
			s.st = spTop
			if s.depth == 0 {
				name := strings.TrimSpace(string(buf[s.tok+2 : s.pos]))
				return nil, fmt.Errorf("xsi: event channel: unexpected end tag </%s>", name)
			}
			s.depth--
			if s.depth == 0 {
				return s.cut(), nil
			}
		case spPI:
			if s.b0 == '?' && c == '>' {
				s.st = spTop
				if err := checkDeclaration(buf[s.tok+2 : s.pos-1]); err != nil {
					return nil, err
				}
			}
			s.b0 = c
		case spBang:
			switch c {
			case '-':
				s.st = spBangDash
			case '[':
				s.st, s.n = spCDATAOpen, 0
			default:
				// encoding/xml takes this first byte as it is, even a quote.
				s.st, s.quote, s.dnest = spDirective, 0, 0
			}
		case spBangDash:
			if c != '-' {
				return nil, errors.New("xsi: event channel: invalid sequence <!- not part of <!--")
			}
			s.st, s.b0, s.b1 = spComment, 0, 0
		case spComment:
			if s.b0 == '-' && s.b1 == '-' {
				if c != '>' {
					return nil, errors.New(`xsi: event channel: "--" inside a comment`)
				}
				s.st = spTop
			}
			s.b0, s.b1 = s.b1, c
		case spCDATAOpen:
			if c != "CDATA["[s.n] {
				return nil, errors.New("xsi: event channel: invalid <![ sequence")
			}
			if s.n++; s.n == 6 {
				s.st, s.b0, s.b1 = spCDATA, 0, 0
			}
		case spCDATA:
			if s.b0 == ']' && s.b1 == ']' && c == '>' {
				s.st = spTop
				if s.depth == 0 && len(bytes.TrimSpace(buf[s.tok+9:s.pos-2])) != 0 {
					return nil, errTextOutside
				}
			}
			s.b0, s.b1 = s.b1, c
		case spDirective:
			if s.quote == 0 && c == '>' && s.dnest == 0 {
				s.st = spTop
				break
			}
			s.directiveByte(c)
		case spDirLT:
			if c != "!--"[s.n] {
				s.st = spDirective
				s.dnest++
				s.directiveByte(c)
				break
			}
			if s.n++; s.n == 3 {
				s.st, s.b0, s.b1 = spDirComment, 0, 0
			}
		case spDirComment:
			if s.b0 == '-' && s.b1 == '-' && c == '>' {
				s.st = spDirective
			}
			s.b0, s.b1 = s.b1, c
		}
		s.pos++
	}
	return nil, nil
}

// directiveByte is encoding/xml's handling of one directive byte: quotes
// hide brackets, '<' and '>' nest, "<!--" opens a comment.
func (s *splitter) directiveByte(c byte) {
	switch {
	case c == s.quote:
		s.quote = 0
	case s.quote != 0:
	case c == '\'' || c == '"':
		s.quote = c
	case c == '>':
		s.dnest--
	case c == '<':
		s.st, s.n = spDirLT, 0
	}
}

// cut returns the document ending at the current byte and arranges for the
// next call to start after it.
func (s *splitter) cut() []byte {
	s.pos++
	doc := s.buf[s.start:s.pos]
	s.start = -1
	s.st = spTop
	return doc
}

// checkDeclaration checks an <?xml?> declaration (the bytes between "<?"
// and "?>") the way encoding/xml does: version 1.0 if given, and an
// encoding that is UTF-8 or ASCII (research/xsi.md §0.12). Other
// processing instructions pass.
func checkDeclaration(pi []byte) error {
	i := 0
	for i < len(pi) && (pi[i] >= utf8.RuneSelf || isNameByte(pi[i])) {
		i++
	}
	if string(pi[:i]) != "xml" {
		return nil
	}
	content := bytes.TrimLeft(pi[i:], " \r\n\t")
	if ver := xmlscan.DeclParam("version", content); len(ver) != 0 && string(ver) != "1.0" {
		return fmt.Errorf("xsi: event channel: XML version %q not supported", ver)
	}
	enc := xmlscan.DeclParam("encoding", content)
	if len(enc) == 0 || bytes.EqualFold(enc, utf8Label) {
		return nil
	}
	switch strings.ToLower(strings.TrimSpace(string(enc))) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return nil
	}
	return fmt.Errorf("xsi: event channel charset %q not supported", enc)
}

var (
	utf8Label = []byte("utf-8")
)

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-'
}

// gapIsSpace reports whether character data between documents is white
// space once decoded as XML (character references included): what the
// encoding/xml-driven splitter this one replaced accepted there.
func gapIsSpace(b []byte) bool {
	for len(b) > 0 {
		c := b[0]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			b = b[1:]
		case c == '&':
			r, n := charRef(b)
			if n == 0 || !unicode.IsSpace(r) {
				return false
			}
			b = b[n:]
		case c < utf8.RuneSelf:
			return false
		default:
			r, n := utf8.DecodeRune(b)
			if !unicode.IsSpace(r) {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

// charRef decodes a character reference (&#N; or &#xH;) at the start of b;
// n is 0 when there is none.
func charRef(b []byte) (r rune, n int) {
	if len(b) < 3 || b[1] != '#' {
		return 0, 0
	}
	i, base := 2, 10
	if b[i] == 'x' {
		i, base = 3, 16
	}
	j := i
	for j < len(b) && ('0' <= b[j] && b[j] <= '9' || base == 16 && ('a' <= b[j] && b[j] <= 'f' || 'A' <= b[j] && b[j] <= 'F')) {
		j++
	}
	if j >= len(b) || b[j] != ';' {
		return 0, 0
	}
	v, err := strconv.ParseUint(string(b[i:j]), base, 64)
	if err != nil || v > unicode.MaxRune {
		return 0, 0
	}
	return rune(v), j + 1
}
