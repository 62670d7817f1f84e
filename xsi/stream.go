package xsi

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxDocument bounds one document on the event channel (and the
// whitespace or declarations between documents). Real events are a few
// kilobytes; a larger one means a broken or hostile stream.
const DefaultMaxDocument = 1 << 20

// ErrDocumentTooLarge is returned by the splitter when a document (or the
// gap before it) exceeds the configured bound.
var ErrDocumentTooLarge = errors.New("xsi: event channel document too large")

// ErrDocumentTooDeep is returned by the splitter for a document nested
// deeper than maxEventDepth (BroadWorks' events are under ten levels deep).
var ErrDocumentTooDeep = fmt.Errorf("xsi: event channel document nested deeper than %d elements", maxEventDepth)

const maxEventDepth = 64

// splitter cuts the de-chunked byte stream of an event channel into complete
// XML documents (research/xsi.md §0.2). Chunk boundaries mean nothing: one
// document may span many reads, many documents may arrive in one read, each
// may carry its own <?xml?> declaration, and whitespace may separate them.
//
// It drives an encoding/xml.Decoder over a recording byte reader: the
// decoder finds token boundaries (InputOffset), the recorder keeps the raw
// bytes of the document in progress so the caller can parse them with etree.
// Memory is bounded by maxDoc.
type splitter struct {
	rec  *recorder
	dec  *xml.Decoder
	done int64 // end offset of the document returned last, dropped on the next call
}

// recorder is the io.ByteReader the decoder reads from. It keeps every byte
// from base on, so that rec.buf[off-base] is the byte at stream offset off.
type recorder struct {
	src    *bufio.Reader
	buf    []byte
	base   int64 // stream offset of buf[0]
	maxDoc int
}

func (r *recorder) ReadByte() (byte, error) {
	if len(r.buf) >= r.maxDoc {
		return 0, ErrDocumentTooLarge
	}
	b, err := r.src.ReadByte()
	if err != nil {
		return 0, err
	}
	r.buf = append(r.buf, b)
	return b, nil
}

// Read is needed for io.Reader; the decoder only uses ReadByte.
func (r *recorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// discard drops the recorded bytes before stream offset off.
func (r *recorder) discard(off int64) {
	n := int(off - r.base)
	if n <= 0 {
		return
	}
	if n > len(r.buf) {
		n = len(r.buf)
	}
	rest := copy(r.buf, r.buf[n:])
	r.buf = r.buf[:rest]
	r.base += int64(n)
	// Do not keep a huge backing array after a large document.
	if cap(r.buf) > 64<<10 && len(r.buf) < 4<<10 {
		r.buf = append(make([]byte, 0, 4<<10), r.buf...)
	}
}

// newSplitter reads documents from r; maxDoc <= 0 means DefaultMaxDocument.
func newSplitter(r io.Reader, maxDoc int) *splitter {
	if maxDoc <= 0 {
		maxDoc = DefaultMaxDocument
	}
	rec := &recorder{src: bufio.NewReaderSize(r, 16<<10), maxDoc: maxDoc, buf: make([]byte, 0, 4<<10)}
	dec := xml.NewDecoder(rec)
	dec.Strict = true
	// Events are UTF-8 (research/xsi.md §0.12). Accepting only UTF-8
	// labels keeps the byte offsets of the decoder and the recorder equal.
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(strings.TrimSpace(label)) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return in, nil
		}
		return nil, fmt.Errorf("xsi: event channel charset %q not supported", label)
	}
	return &splitter{rec: rec, dec: dec}
}

// Next returns the raw bytes of the next complete document (from its root
// start tag to its root end tag; declarations are not included). The slice
// is only valid until the next call. At a clean end of stream between
// documents it returns io.EOF; a stream that ends inside a document returns
// io.ErrUnexpectedEOF.
func (s *splitter) Next() ([]byte, error) {
	if s.done > 0 {
		s.rec.discard(s.done)
		s.done = 0
	}
	depth := 0
	var start int64 = -1
	for {
		before := s.dec.InputOffset()
		tok, err := s.dec.RawToken()
		if err != nil {
			if errors.Is(err, ErrDocumentTooLarge) {
				return nil, ErrDocumentTooLarge
			}
			if err == io.EOF {
				if start < 0 && depth == 0 {
					return nil, io.EOF
				}
				return nil, io.ErrUnexpectedEOF
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) && start >= 0 && strings.Contains(se.Msg, "unexpected EOF") {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("xsi: event channel: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start = before
			}
			depth++
			if depth > maxEventDepth {
				return nil, ErrDocumentTooDeep
			}
		case xml.EndElement:
			if depth == 0 {
				return nil, fmt.Errorf("xsi: event channel: unexpected end tag </%s>", t.Name.Local)
			}
			depth--
			if depth == 0 {
				end := s.dec.InputOffset()
				// The caller gets a copy-free view: drop everything before
				// start now and the document itself on the next call.
				s.rec.discard(start)
				s.done = end
				return s.rec.buf[:end-start], nil
			}
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) != 0 {
				return nil, errors.New("xsi: event channel: text outside a document")
			}
		}
		if depth == 0 && start < 0 {
			// Between documents: declarations, comments, whitespace.
			s.rec.discard(s.dec.InputOffset())
		}
	}
}
