package xsi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const evFixtureDir = "../testdata/xml/xsi/events"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(evFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// documentFixtures are the single-document fixtures, in a stable order.
func documentFixtures(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(evFixtureDir, "*.xml"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures in %s: %v", evFixtureDir, err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// splitAll runs the splitter to the end and returns copies of the documents.
func splitAll(r io.Reader, max int) ([][]byte, error) {
	sp := newSplitter(r, max)
	var out [][]byte
	for {
		d, err := sp.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(d))
	}
}

// rootOf is the document with its declaration and surrounding space removed:
// what the splitter must return for it.
func rootOf(doc []byte) []byte {
	s := strings.TrimSpace(string(doc))
	if strings.HasPrefix(s, "<?xml") {
		s = strings.TrimSpace(s[strings.Index(s, "?>")+2:])
	}
	return []byte(s)
}

// chunkReader returns the chunks one per Read, like a chunked body.
type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// TestSplitterEveryBoundary: each fixture and the merged stream of all of
// them, cut into two reads at every byte boundary (and read one byte at a
// time), yields exactly the expected documents.
func TestSplitterEveryBoundary(t *testing.T) {
	names := documentFixtures(t)
	var merged []byte
	var want [][]byte
	for i, n := range names {
		doc := readFixture(t, n)
		want = append(want, rootOf(doc))
		merged = append(merged, doc...)
		if i%2 == 0 {
			merged = append(merged, "\n\r\n\t "...)
		}
	}
	check := func(t *testing.T, got [][]byte, err error, want [][]byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d documents, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("document %d:\n got %q\nwant %q", i, got[i], want[i])
			}
		}
	}
	for _, n := range names {
		doc := readFixture(t, n)
		for cut := 0; cut <= len(doc); cut++ {
			got, err := splitAll(&chunkReader{chunks: [][]byte{bytes.Clone(doc[:cut]), bytes.Clone(doc[cut:])}}, 0)
			check(t, got, err, [][]byte{rootOf(doc)})
		}
	}
	for cut := 0; cut <= len(merged); cut += 61 {
		got, err := splitAll(&chunkReader{chunks: [][]byte{merged[:cut], merged[cut:]}}, 0)
		check(t, got, err, want)
	}
	got, err := splitAll(iotest.OneByteReader(bytes.NewReader(merged)), 0)
	check(t, got, err, want)
	got, err = splitAll(bytes.NewReader(merged), 0)
	check(t, got, err, want)
}

// TestSplitterFramings: the stream fixtures (newline-separated,
// back-to-back, without declarations, and real HTTP/1.1 chunked framing
// with two documents in one chunk and one document across three chunks).
func TestSplitterFramings(t *testing.T) {
	wantRoots := []string{"Channel", "ChannelHeartBeat", "xsi:Event", "xsi:Event", "xsi:Event"}
	for _, name := range []string{"stream-newlines.txt", "stream-back-to-back.txt", "stream-no-decl.txt", "stream-chunked.http"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(readFixture(t, name))
			if strings.HasSuffix(name, ".http") {
				r = httputil.NewChunkedReader(bufio.NewReader(r))
			}
			docs, err := splitAll(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != len(wantRoots) {
				t.Fatalf("got %d documents, want %d", len(docs), len(wantRoots))
			}
			for i, d := range docs {
				if !bytes.HasPrefix(d, []byte("<"+wantRoots[i])) {
					t.Errorf("doc %d starts %q, want <%s", i, d[:min(len(d), 30)], wantRoots[i])
				}
				if _, err := ParseEvent(d); err != nil {
					t.Errorf("doc %d: %v", i, err)
				}
			}
		})
	}
}

func TestSplitterErrors(t *testing.T) {
	doc := readFixture(t, "agent-state-r19.xml")
	tests := []struct {
		name  string
		input []byte
		max   int
		want  error // nil: any non-EOF error
		docs  int
	}{
		{"cut mid-document", doc[:len(doc)/2], 0, io.ErrUnexpectedEOF, 0},
		{"cut mid-tag", doc[:bytes.Index(doc, []byte("<xsi:eventID"))+4], 0, io.ErrUnexpectedEOF, 0},
		{"cut after one doc", append(bytes.Clone(doc), doc[:100]...), 0, nil, 1},
		{"too large", doc, 200, ErrDocumentTooLarge, 0},
		{"whitespace flood", bytes.Repeat([]byte(" "), 5000), 1000, ErrDocumentTooLarge, 0},
		{"text between documents", append(append(bytes.Clone(doc), "garbage"...), doc...), 0, nil, 1},
		{"stray end tag", []byte("</Channel>"), 0, nil, 0},
		{"nested too deep", append(bytes.Clone(doc), strings.Repeat("<a>", maxEventDepth+1)...), 0, ErrDocumentTooDeep, 1},
		{"non-utf8 charset", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><Channel/>`), 0, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := splitAll(bytes.NewReader(tt.input), tt.max)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(docs) != tt.docs {
				t.Fatalf("got %d documents before the error, want %d", len(docs), tt.docs)
			}
		})
	}
	// Empty and whitespace-only streams end cleanly.
	for _, in := range []string{"", " \n ", `<?xml version="1.0"?>`} {
		if docs, err := splitAll(strings.NewReader(in), 0); err != nil || len(docs) != 0 {
			t.Errorf("%q: docs=%d err=%v", in, len(docs), err)
		}
	}
}

// TestSplitterBoundedMemory: a long stream of documents does not grow the
// recorder beyond one document.
func TestSplitterBoundedMemory(t *testing.T) {
	doc := readFixture(t, "agent-state-r19.xml")
	sp := newSplitter(bytes.NewReader(bytes.Repeat(doc, 2000)), 4096)
	n := 0
	for {
		_, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if cap(sp.buf) > 64<<10 {
			t.Fatalf("buffer grew to %d bytes", cap(sp.buf))
		}
	}
	if n != 2000 {
		t.Fatalf("got %d documents", n)
	}
	// A document that grows the buffer to the bound: never beyond the
	// bound plus one read.
	big := append(append([]byte("<a>"), bytes.Repeat([]byte("x"), 200<<10)...), "</a>"...)
	sp = newSplitter(iotest.HalfReader(bytes.NewReader(bytes.Repeat(big, 3))), len(big))
	for range 3 {
		if _, err := sp.Next(); err != nil {
			t.Fatal(err)
		}
		if cap(sp.buf) > len(big)+splitReadSize {
			t.Fatalf("buffer grew to %d bytes for a bound of %d", cap(sp.buf), len(big))
		}
	}
}

// FuzzSplitter: no panic; every document is within the bound, starts with
// '<' and ends with '>'; re-splitting the documents joined by newlines gives
// the same documents (the cut is stable).
func FuzzSplitter(f *testing.F) {
	m, _ := filepath.Glob(filepath.Join(evFixtureDir, "*"))
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b, uint16(len(b)/2))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		const max = 4096
		c := int(cut) % (len(data) + 1)
		docs, _ := splitAll(&chunkReader{chunks: [][]byte{bytes.Clone(data[:c]), bytes.Clone(data[c:])}}, max)
		for _, d := range docs {
			if len(d) > max || len(d) < 2 || d[0] != '<' || d[len(d)-1] != '>' {
				t.Fatalf("bad document %q", d)
			}
		}
		if len(docs) == 0 {
			return
		}
		again, err := splitAll(bytes.NewReader(bytes.Join(docs, []byte("\n"))), max)
		if err != nil {
			t.Fatalf("re-split: %v", err)
		}
		if len(again) != len(docs) {
			t.Fatalf("re-split gave %d documents, want %d", len(again), len(docs))
		}
		for i := range docs {
			if !bytes.Equal(docs[i], again[i]) {
				t.Fatalf("re-split doc %d differs", i)
			}
		}
	})
}

// FuzzParseEvent: the event parser never panics on any document the
// splitter can hand it (the fixtures and their mutations), gives the same
// answer twice, and what it accepts is one of the event kinds it knows.
func FuzzParseEvent(f *testing.F) {
	m, _ := filepath.Glob(filepath.Join(evFixtureDir, "*.xml"))
	for _, p := range m {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ev, err := ParseEvent(doc)
		again, err2 := ParseEvent(doc)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(ev, again) {
			t.Fatalf("two parses differ: %#v %v / %#v %v", ev, err, again, err2)
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("an error with an event: %#v", ev)
			}
			return
		}
		switch e := ev.(type) {
		case *Channel, *ChannelHeartBeat, *ChannelTerminatedEvent, *ErrorEvent:
		case *SubscriptionEvent:
			if e.Data == nil {
				t.Fatalf("subscription event without data: %#v", e)
			}
		default:
			t.Fatalf("unknown event kind %T", ev)
		}
	})
}

// TestSplitterMarkup: the constructs the byte-level splitter tracks by hand
// cut where a tokeniser would cut, at every chunk boundary.
func TestSplitterMarkup(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
		err   string // "" = clean end; else a substring of the error
	}{
		{"quoted > and /", `<a b='>' c="/>"/> <b x="'>">t</b>`, []string{`<a b='>' c="/>"/>`, `<b x="'>">t</b>`}, ""},
		{"comment, CDATA and PI inside", `<a><!-- </a> --><![CDATA[</a>]]><?pi </a>?></a>`, []string{`<a><!-- </a> --><![CDATA[</a>]]><?pi </a>?></a>`}, ""},
		{"DOCTYPE with an internal subset", `<!DOCTYPE a [ <!ENTITY x "<>"> <!-- > --> ]><a/>`, []string{`<a/>`}, ""},
		{"declarations and comments between", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<a/>\n<?xml version='1.0'?><!-- x --><b/>", []string{`<a/>`, `<b/>`}, ""},
		{"character references to white space between", "<a/>&#32;&#x9;\u00a0<![CDATA[ ]]><b/>", []string{`<a/>`, `<b/>`}, ""},
		{"character reference to a letter between", "<a/>&#65;<b/>", []string{`<a/>`}, "text outside"},
		{"CDATA text between", "<a/><![CDATA[x]]>", []string{`<a/>`}, "text outside"},
		{"XML 1.1", `<?xml version="1.1"?><a/>`, nil, "version"},
		{"latin-1", `<?xml version="1.0" encoding="latin1"?><a/>`, nil, "charset"},
		{"stray end tag", `<a/></a>`, []string{`<a/>`}, "unexpected end tag </a>"},
		{"double dash in a comment", `<!-- -- --><a/>`, nil, `"--"`},
		{"not a comment", `<!-x><a/>`, nil, "<!-"},
		{"not CDATA", `<![CDAT[x]]><a/>`, nil, "<!["},
		{"ends in the root start tag", `<a b="`, nil, "inside a start tag"},
		{"ends in a comment between", `<a/><!-- `, []string{`<a/>`}, "inside markup between documents"},
		{"ends in an element", `<a><b/>`, nil, io.ErrUnexpectedEOF.Error()},
		{"ends in CDATA inside", `<a><![CDATA[`, nil, io.ErrUnexpectedEOF.Error()},
		// What the splitter does not check is the parser's business: the
		// document is cut, ParseEvent rejects it, the stream goes on
		// (the encoding/xml-driven splitter ended the stream here).
		{"undefined entity inside", `<a>&bogus;</a> <b/>`, []string{`<a>&bogus;</a>`, `<b/>`}, ""},
		{"bad name inside", `<a><1/></a><b/>`, []string{`<a><1/></a>`, `<b/>`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for cut := 0; cut <= len(tt.input); cut++ {
				in := []byte(tt.input)
				docs, err := splitAll(&chunkReader{chunks: [][]byte{bytes.Clone(in[:cut]), bytes.Clone(in[cut:])}}, 0)
				if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
					t.Fatalf("cut %d: err = %v, want %q", cut, err, tt.err)
				}
				if len(docs) != len(tt.want) {
					t.Fatalf("cut %d: %d documents %q, want %q", cut, len(docs), docs, tt.want)
				}
				for i := range docs {
					if string(docs[i]) != tt.want[i] {
						t.Fatalf("cut %d: document %d = %q, want %q", cut, i, docs[i], tt.want[i])
					}
				}
			}
		})
	}
}

// TestSplitterBound: a document of exactly the bound passes, one byte more
// is too large; so is a run of white space longer than the bound.
func TestSplitterBound(t *testing.T) {
	doc := rootOf(readFixture(t, "agent-state-r19.xml"))
	for _, tt := range []struct {
		name  string
		input []byte
		max   int
		docs  int
		err   error
	}{
		{"exactly the bound", doc, len(doc), 1, nil},
		{"one byte over", doc, len(doc) - 1, 0, ErrDocumentTooLarge},
		{"two documents at the bound", append(append(bytes.Clone(doc), '\n'), doc...), len(doc), 2, nil},
		{"white space at the bound", append(bytes.Repeat([]byte(" "), 100), doc...), 100, 0, ErrDocumentTooLarge},
		{"unterminated comment", append([]byte("<!--"), bytes.Repeat([]byte("x"), 200)...), 100, 0, ErrDocumentTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := splitAll(iotest.HalfReader(bytes.NewReader(tt.input)), tt.max)
			if !errors.Is(err, tt.err) || len(docs) != tt.docs {
				t.Fatalf("%d documents, %v; want %d, %v", len(docs), err, tt.docs, tt.err)
			}
		})
	}
}

// TestEventPathAllocs holds the event path to its allocation budget
// (issue 17: at most 20 per event): the splitter allocates nothing per
// document once its buffer is warm, and ParseEvent stays within the
// budget for every fixture.
func TestEventPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	doc := readFixture(t, "agent-state-r19.xml")
	sp := newSplitter(bytes.NewReader(bytes.Repeat(doc, 1000)), 0)
	defer sp.release()
	if n := testing.AllocsPerRun(500, func() {
		if _, err := sp.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("splitter: %.1f allocations per document, want 0", n)
	}
	for _, name := range documentFixtures(t) {
		root := rootOf(readFixture(t, name))
		if n := testing.AllocsPerRun(100, func() {
			if _, err := ParseEvent(root); err != nil {
				t.Fatal(err)
			}
		}); n > 20 {
			t.Errorf("%s: %.1f allocations per event, want at most 20", name, n)
		}
	}
}
