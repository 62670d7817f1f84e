package xmlscan

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// render scans doc and writes its tokens in a compact form; the error, if
// any, ends the rendering.
func render(doc []byte, maxDepth int, charset func(string, []byte) ([]byte, error)) (string, error) {
	var s Scanner
	s.MaxDepth = maxDepth
	s.Charset = charset
	s.Reset(doc)
	var b strings.Builder
	var text []byte
	inText := false
	flush := func() {
		if inText {
			fmt.Fprintf(&b, "C%q ", text)
			text, inText = text[:0], false
		}
	}
	for {
		k, err := s.Next()
		if err == io.EOF {
			flush()
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		switch k {
		case StartElement:
			flush()
			p, l := s.Name()
			ns, _ := s.Namespace()
			fmt.Fprintf(&b, "S(%s:%s{%s}", p, l, ns)
			for _, a := range s.Attrs() {
				fmt.Fprintf(&b, " %s:%s=%q", a.Prefix, a.Local, a.Value)
			}
			b.WriteString(") ")
		case EndElement:
			flush()
			p, l := s.Name()
			fmt.Fprintf(&b, "E(%s:%s) ", p, l)
		case CharData:
			text = append(text, s.Text()...)
			inText = true
		case ProcInst:
			flush()
			_, l := s.Name()
			fmt.Fprintf(&b, "P(%s %q) ", l, s.Text())
		case Directive:
			flush()
			b.WriteString("D ")
		}
	}
}

// renderStd renders doc the same way through encoding/xml's RawToken plus the
// structural checks etree and Token add (matching end tags, nothing left open).
// Namespaces are resolved from the xmlns attributes in scope, last one wins.
func renderStd(doc []byte, maxDepth int) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	type open struct {
		name  xml.Name
		attrs []xml.Attr
	}
	var stack []open
	lookup := func(prefix string) string {
		for i := len(stack) - 1; i >= 0; i-- {
			for j := len(stack[i].attrs) - 1; j >= 0; j-- {
				a := stack[i].attrs[j]
				if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" ||
					prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
					return a.Value
				}
			}
		}
		return ""
	}
	var b strings.Builder
	var text []byte
	inText := false
	flush := func() {
		if inText {
			fmt.Fprintf(&b, "C%q ", text)
			text, inText = text[:0], false
		}
	}
	for {
		t, err := d.RawToken()
		if err == io.EOF {
			if len(stack) > 0 {
				return b.String(), errors.New("unclosed")
			}
			flush()
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		switch t := t.(type) {
		case xml.StartElement:
			flush()
			stack = append(stack, open{t.Name, t.Attr})
			if len(stack) > maxDepth {
				return b.String(), ErrMaxDepth
			}
			fmt.Fprintf(&b, "S(%s:%s{%s}", t.Name.Space, t.Name.Local, lookup(t.Name.Space))
			for _, a := range t.Attr {
				fmt.Fprintf(&b, " %s:%s=%q", a.Name.Space, a.Name.Local, a.Value)
			}
			b.WriteString(") ")
		case xml.EndElement:
			flush()
			if len(stack) == 0 || stack[len(stack)-1].name != t.Name {
				return b.String(), errors.New("mismatched end")
			}
			stack = stack[:len(stack)-1]
			fmt.Fprintf(&b, "E(%s:%s) ", t.Name.Space, t.Name.Local)
		case xml.CharData:
			text = append(text, t...)
			inText = true
		case xml.ProcInst:
			flush()
			fmt.Fprintf(&b, "P(%s %q) ", t.Target, t.Inst)
		case xml.Directive:
			flush()
			b.WriteString("D ")
		}
	}
}

func TestScannerTokens(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"empty", ``, ``},
		{"self-closing", `<a/>`, `S(:a{}) E(:a) `},
		{"text", `<a>x y</a>`, `S(:a{}) C"x y" E(:a) `},
		{"entities", `<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#xd800;</a>`, `S(:a{}) C"<>&'\"AB�" E(:a) `},
		{"newlines", "<a>1\r\n2\r3\n</a>", `S(:a{}) C"1\n2\n3\n" E(:a) `},
		{"cdata", `<a>x<![CDATA[<&]]>y</a>`, `S(:a{}) C"x<&y" E(:a) `},
		{"cdata newline", "<a><![CDATA[\r\n]]></a>", `S(:a{}) C"\n" E(:a) `},
		{"comment skipped", `<a>x<!-- c -->y</a>`, `S(:a{}) C"xy" E(:a) `},
		{"declaration", `<?xml version="1.0" encoding="UTF-8"?><a/>`, `P(xml "version=\"1.0\" encoding=\"UTF-8\"") S(:a{}) E(:a) `},
		{"pi", `<a><?p x?></a>`, `S(:a{}) P(p "x") E(:a) `},
		{"directive", `<!DOCTYPE a [<!ENTITY x "y">]><a/>`, `D S(:a{}) E(:a) `},
		{"attributes", `<a x="1" y = '2&amp;'z="&#10;"/>`, `S(:a{} :x="1" :y="2&" :z="\n") E(:a) `},
		{"default namespace", `<a xmlns="urn:a"><b/></a>`, `S(:a{urn:a} :xmlns="urn:a") S(:b{urn:a}) E(:b) E(:a) `},
		{"prefix", `<p:a xmlns:p="urn:p"><p:b/><c/></p:a>`, `S(p:a{urn:p} xmlns:p="urn:p") S(p:b{urn:p}) E(p:b) S(:c{}) E(:c) E(p:a) `},
		{"undeclared prefix", `<q:a/>`, `S(q:a{}) E(q:a) `},
		{"scope ends", `<a><b xmlns="urn:b"/><c/></a>`, `S(:a{}) S(:b{urn:b} :xmlns="urn:b") E(:b) S(:c{}) E(:c) E(:a) `},
		{"undeclared default", `<a xmlns="urn:a"><b xmlns=""/></a>`, `S(:a{urn:a} :xmlns="urn:a") S(:b{} :xmlns="") E(:b) E(:a) `},
		{"duplicate binding", `<a xmlns="urn:1" xmlns="urn:2"/>`, `S(:a{urn:2} :xmlns="urn:1" :xmlns="urn:2") E(:a) `},
		{"two roots", `<a/><b/>`, `S(:a{}) E(:a) S(:b{}) E(:b) `},
		{"odd colons", `<:a b:="1"/>`, `S(::a{} :b:="1") E(::a) `},
		{"text outside", " x <a/> y ", `C" x " S(:a{}) E(:a) C" y " `},
		{"unicode name", `<äb/>`, `S(:äb{}) E(:äb) `},
		{"bracket ok", `<a>]]</a>`, `S(:a{}) C"]]" E(:a) `},
		{"bracket in attribute", `<a x="]]>"/>`, `S(:a{} :x="]]>") E(:a) `},
		{"directive odd", `<!x<a>><!--c-->'>'>`, `D C"'>'>" `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := render([]byte(c.doc), 0, nil)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			std, err := renderStd([]byte(c.doc), DefaultMaxDepth)
			if err != nil || std != got {
				t.Errorf("encoding/xml: %s %v", std, err)
			}
		})
	}
}

func TestScannerRejects(t *testing.T) {
	cases := []struct{ name, doc string }{
		{"unclosed", `<a>`},
		{"unclosed inner", `<a><b></a>`},
		{"mismatch", `<a></b>`},
		{"prefix mismatch", `<p:a></q:a>`},
		{"end without start", `</a>`},
		{"end after root", `<a/></a>`},
		{"unquoted", `<a x=1/>`},
		{"no value", `<a x/>`},
		{"lt in attribute", `<a x="<"/>`},
		{"bad name", `<1a/>`},
		{"two colons", `<a:b:c/>`},
		{"space after lt", `< a/>`},
		{"undefined entity", `<a>&nbsp;</a>`},
		{"no semicolon", `<a>&amp</a>`},
		{"bad char ref", `<a>&#xZ;</a>`},
		{"nul char ref", `<a>&#0;</a>`},
		{"huge char ref", `<a>&#x110000;</a>`},
		{"control char", "<a>\x01</a>"},
		{"invalid utf8", "<a>\xff</a>"},
		{"invalid utf8 attribute", "<a x='\xff'/>"},
		{"cdata end in text", `<a>]]></a>`},
		{"unclosed cdata", `<a><![CDATA[x</a>`},
		{"bad cdata", `<a><![CDATX[x]]></a>`},
		{"double dash comment", `<a><!-- -- --></a>`},
		{"bad comment", `<a><!-x--></a>`},
		{"unclosed comment", `<a><!-- x`},
		{"version", `<?xml version="1.1"?><a/>`},
		{"encoding without charset", `<?xml version="1.0" encoding="ISO-8859-1"?><a/>`},
		{"unclosed pi", `<a><?p x</a>`},
		{"bad slash", `<a/ >`},
		{"junk in end tag", `<a></a x>`},
		{"eof in tag", `<a x="1"`},
		{"lone lt", `<`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, err := render([]byte(c.doc), 0, nil); err == nil {
				t.Errorf("accepted: %s", got)
			}
			if _, err := renderStd([]byte(c.doc), DefaultMaxDepth); err == nil {
				t.Errorf("encoding/xml accepts it: the case is wrong")
			}
		})
	}
}

func TestScannerMaxDepth(t *testing.T) {
	for _, c := range []struct {
		doc   string
		depth int
		err   bool
	}{
		{`<a><b/></a>`, 2, false},
		{`<a><b><c/></b></a>`, 2, true},
		{`<a/><b><c/></b>`, 2, false},
		{strings.Repeat("<a>", 1024) + strings.Repeat("</a>", 1024), 0, false},
		{strings.Repeat("<a>", 1025) + strings.Repeat("</a>", 1025), 0, true},
	} {
		_, err := render([]byte(c.doc), c.depth, nil)
		if got := errors.Is(err, ErrMaxDepth); got != c.err {
			t.Errorf("%.40s depth %d: err %v", c.doc, c.depth, err)
		}
	}
}

func TestScannerCharset(t *testing.T) {
	latin1 := func(label string, rest []byte) ([]byte, error) {
		if !strings.EqualFold(label, "iso-8859-1") {
			return nil, fmt.Errorf("unsupported %q", label)
		}
		var out []byte
		for _, c := range rest {
			out = fmt.Appendf(out, "%c", rune(c))
		}
		return out, nil
	}
	got, err := render([]byte("<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>"), 0, latin1)
	if err != nil || !strings.Contains(got, `C"é"`) {
		t.Errorf("latin1: %s %v", got, err)
	}
	if _, err := render([]byte("<?xml version='1.0' encoding='UTF-16'?><a/>"), 0, latin1); err == nil {
		t.Error("UTF-16 accepted")
	}
	var s Scanner
	s.Reset([]byte(`<?xml version="1.0" encoding="us-ascii"?><a/>`))
	s.Charset = func(string, []byte) ([]byte, error) { return []byte("<b/>"), nil }
	s.Next()
	if string(s.Encoding()) != "us-ascii" {
		t.Errorf("Encoding %q", s.Encoding())
	}
	s.Next()
	if _, l := s.Name(); string(l) != "b" {
		t.Errorf("after the switch: %s", l)
	}
}

// TestScannerSlicesStable holds the scanner to its promise: slices stay valid
// until Reset even when later tokens are decoded.
func TestScannerSlicesStable(t *testing.T) {
	var s Scanner
	s.Reset([]byte(`<a x="&amp;1"><b>&lt;2</b><c y="&gt;3">&amp;4</c></a>`))
	var texts, vals [][]byte
	for {
		k, err := s.Next()
		if err != nil {
			break
		}
		switch k {
		case StartElement:
			for _, a := range s.Attrs() {
				vals = append(vals, a.Value)
			}
		case CharData:
			texts = append(texts, s.Text())
		}
	}
	if fmt.Sprintf("%s %s", texts, vals) != "[<2 &4] [&1 >3]" {
		t.Errorf("got %s %s", texts, vals)
	}
}

func TestScannerAllocations(t *testing.T) {
	doc := []byte(`<?xml version="1.0" encoding="UTF-8"?><SetAgentState xmlns="urn:x" xmlns:p="urn:p"><device>4711</device><p:x a="&amp;">&lt;y</p:x><!-- c --></SetAgentState>`)
	var s Scanner
	scan := func() {
		s.Reset(doc)
		for {
			if _, err := s.Next(); err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				return
			}
		}
	}
	scan()
	if n := testing.AllocsPerRun(100, scan); n != 0 {
		t.Errorf("%v allocations per document with warm buffers", n)
	}
}

func FuzzScanner(f *testing.F) {
	for _, seed := range []string{
		`<a/>`, `<a x="1">t<b/>&amp;<![CDATA[c]]><!--c--><?p i?></a>`,
		`<?xml version="1.0"?><p:a xmlns:p="urn:p" xmlns="urn:d"><b xmlns=""/></p:a>`,
		`<!DOCTYPE a [<!ENTITY e "x">]><a>&#65;&#x42;</a>`, "<a>\r\n</a>", `<a></b>`, `<a>]]></a>`,
		`<a><a><a/></a></a>`, `<a:b:c/>`, `<ä/>`, "<a>\xff</a>", `<a x='"' y="'"/>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := render(doc, 4, nil)
		want, stdErr := renderStd(doc, 4)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("scanner error %v, encoding/xml error %v\nscanner:      %s\nencoding/xml: %s", err, stdErr, got, want)
		}
		if err == nil && got != want {
			t.Fatalf("scanner:      %s\nencoding/xml: %s", got, want)
		}
		if errors.Is(stdErr, ErrMaxDepth) != errors.Is(err, ErrMaxDepth) {
			t.Fatalf("depth: scanner %v, encoding/xml %v", err, stdErr)
		}
	})
}
