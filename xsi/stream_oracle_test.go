package xsi

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// oracleSplitter is the encoding/xml-driven splitter the byte-level
// splitter replaced, kept as the oracle of FuzzSplitterAgainstOracle.
// It cuts the de-chunked byte stream of an event channel into complete
// XML documents (research/xsi.md §0.2). Chunk boundaries mean nothing: one
// document may span many reads, many documents may arrive in one read, each
// may carry its own <?xml?> declaration, and whitespace may separate them.
//
// It drives an encoding/xml.Decoder over a recording byte reader: the
// decoder finds token boundaries (InputOffset), the oracleRecorder keeps the raw
// bytes of the document in progress so the caller can parse them with etree.
// Memory is bounded by maxDoc.
type oracleSplitter struct {
	rec  *oracleRecorder
	dec  *xml.Decoder
	done int64 // end offset of the document returned last, dropped on the next call
}

// oracleRecorder is the io.ByteReader the decoder reads from. It keeps every byte
// from base on, so that rec.buf[off-base] is the byte at stream offset off.
type oracleRecorder struct {
	src    *bufio.Reader
	buf    []byte
	base   int64 // stream offset of buf[0]
	maxDoc int
}

func (r *oracleRecorder) ReadByte() (byte, error) {
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
func (r *oracleRecorder) Read(p []byte) (int, error) {
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
func (r *oracleRecorder) discard(off int64) {
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

// newOracleSplitter reads documents from r; maxDoc <= 0 means DefaultMaxDocument.
func newOracleSplitter(r io.Reader, maxDoc int) *oracleSplitter {
	if maxDoc <= 0 {
		maxDoc = DefaultMaxDocument
	}
	rec := &oracleRecorder{src: bufio.NewReaderSize(r, 16<<10), maxDoc: maxDoc, buf: make([]byte, 0, 4<<10)}
	dec := xml.NewDecoder(rec)
	dec.Strict = true
	// Events are UTF-8 (research/xsi.md §0.12). Accepting only UTF-8
	// labels keeps the byte offsets of the decoder and the oracleRecorder equal.
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(strings.TrimSpace(label)) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return in, nil
		}
		return nil, fmt.Errorf("xsi: event channel charset %q not supported", label)
	}
	return &oracleSplitter{rec: rec, dec: dec}
}

// Next returns the raw bytes of the next complete document (from its root
// start tag to its root end tag; declarations are not included). The slice
// is only valid until the next call. At a clean end of stream between
// documents it returns io.EOF; a stream that ends inside a document returns
// io.ErrUnexpectedEOF.
func (s *oracleSplitter) Next() ([]byte, error) {
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

// splitWith runs a splitter's Next to the end, copying the documents.
func splitWith(next func() ([]byte, error)) ([][]byte, error) {
	var out [][]byte
	for {
		d, err := next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(d))
	}
}

// splitErrClass names the errors the splitters must agree on. "other" is
// a syntax error of encoding/xml that the byte-level splitter does not
// look for (names, entities, characters inside a document).
func splitErrClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrDocumentTooDeep):
		return "too deep"
	case errors.Is(err, ErrDocumentTooLarge):
		return "too large"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case strings.Contains(err.Error(), "text outside a document"):
		return "text outside"
	case strings.Contains(err.Error(), "unexpected end tag"):
		return "end tag"
	case strings.Contains(err.Error(), `charset "`): // names hold no quotes
		return "charset"
	case strings.Contains(err.Error(), `unsupported version "`), strings.Contains(err.Error(), `XML version "`):
		return "version"
	}
	return "other"
}

// diffSplitters compares the byte-level splitter with the oracle on one
// input read in two chunks. What "same" means:
//
//   - a stream the oracle splits cleanly is split into the same documents,
//     cleanly;
//   - when the oracle fails after k documents, the splitter returns the
//     same k documents first;
//   - when the oracle's error is structural (nesting too deep, the stream
//     ending inside a document, text between documents, a stray end tag, a
//     declaration's charset or version), the splitter fails right after
//     those k documents with the same class of error;
//   - when the oracle's error is a syntax error the splitter does not look
//     for ("other": names, entities, characters, "--" placement in a PI
//     target...), the splitter may go on: the parser rejects such a
//     document, and the splitter's depth tracking is the same up to it.
func diffSplitters(t *testing.T, data []byte, cut int) {
	t.Helper()
	max := len(data) + 64
	chunks := func() io.Reader {
		return &chunkReader{chunks: [][]byte{bytes.Clone(data[:cut]), bytes.Clone(data[cut:])}}
	}
	want, werr := splitWith(newOracleSplitter(chunks(), max).Next)
	sp := newSplitter(chunks(), max)
	got, gerr := splitWith(sp.Next)
	sp.release()
	wc, gc := splitErrClass(werr), splitErrClass(gerr)
	if len(got) < len(want) {
		t.Fatalf("splitter cut %d documents (%v), oracle %d (%v)", len(got), gerr, len(want), werr)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("document %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	switch wc {
	case "ok":
		if gerr != nil || len(got) != len(want) {
			t.Fatalf("oracle splits cleanly into %d documents; splitter: %d documents, %v", len(want), len(got), gerr)
		}
	case "other":
	default:
		if gc != wc || len(got) != len(want) {
			t.Fatalf("oracle: %d documents, %v (%s); splitter: %d documents, %v (%s)", len(want), werr, wc, len(got), gerr, gc)
		}
	}
	// Chunk boundaries mean nothing: one byte per read gives the same.
	one, oerr := splitWith(newSplitter(iotest.OneByteReader(bytes.NewReader(data)), max).Next)
	if splitErrClass(oerr) != gc || len(one) != len(got) {
		t.Fatalf("one byte per read: %d documents, %v; two chunks: %d, %v", len(one), oerr, len(got), gerr)
	}
	for i := range one {
		if !bytes.Equal(one[i], got[i]) {
			t.Fatalf("one byte per read: document %d differs", i)
		}
	}
}

// splitterSeeds are streams that exercise what the byte-level splitter
// tracks by hand.
var splitterSeeds = []string{
	`<a b='>' c="/>"/><b x="'>"></b>`,
	`<?xml version="1.0" encoding="us-ascii"?><a><!-- </a> --><![CDATA[</a>]]><?pi </a>?></a>`,
	`<!DOCTYPE a [ <!ENTITY x "<>"> <!-- > --> ]><a/>`,
	"<a/>&#32;&#x9;\u00a0<!-- c --><?p?><b/>",
	"<a/>&#65;<b/>",
	`<a/><![CDATA[ ]]><b/><![CDATA[x]]>`,
	`<?xml version="1.1"?><a/>`,
	`<?xml encoding="latin1"?><a/>`,
	`<a><b></a>`,
	`</a>`,
	`<a/><!-- -- --><b/>`,
	`<!-><a/>`,
	`<![CDAT[x]]><a/>`,
	`<!'>'><a/>`,
	`<!a<!-b>><a/>`,
	`<a`,
	`<a/><b`,
	`<a/><!--`,
	`<a x="1"/ >`,
	"\ufeff<a/>",
}

// FuzzSplitterAgainstOracle holds the byte-level splitter to the
// encoding/xml-driven one it replaced (see diffSplitters for what "same"
// means on malformed input).
func FuzzSplitterAgainstOracle(f *testing.F) {
	m, _ := filepath.Glob(filepath.Join(evFixtureDir, "*"))
	for _, p := range m {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, uint16(len(b)/2))
		}
	}
	for _, s := range splitterSeeds {
		f.Add([]byte(s), uint16(len(s)/3))
	}
	f.Add([]byte(strings.Repeat("<a>", maxEventDepth)+"<b/>"+strings.Repeat("</a>", maxEventDepth)), uint16(7))
	f.Add([]byte(strings.Repeat("<a>", maxEventDepth-1)+"<b/>"+strings.Repeat("</a>", maxEventDepth-1)), uint16(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		diffSplitters(t, data, int(cut)%(len(data)+1))
	})
}

// TestSplitterAgainstOracle runs the seeds through diffSplitters at every
// cut, so the definition of "same" is checked without -fuzz too.
func TestSplitterAgainstOracle(t *testing.T) {
	for _, s := range splitterSeeds {
		for cut := 0; cut <= len(s); cut++ {
			diffSplitters(t, []byte(s), cut)
		}
	}
}
