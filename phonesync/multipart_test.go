package phonesync

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"testing"
)

func TestMultipartReadsBack(t *testing.T) {
	docs := FeatureEventDocs("1001", FeatureState{
		DoNotDisturb: true,
		Forwarding:   []Forwarding{{Type: ForwardImmediate, Active: true, Number: "2424"}, {Type: ForwardBusy}, {Type: ForwardNoAns, RingCount: 3}},
		Agent:        &AgentState{AgentID: "a1", State: AgentReady},
	})
	ct, body := Multipart(docs, FeatureEventContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("content type %q: %v %v", ct, mt, err)
	}
	if !bytes.HasSuffix(body, []byte("--"+params["boundary"]+"--\r\n")) {
		t.Fatalf("body does not end with the close delimiter:\n%s", body)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		part, err := r.NextRawPart()
		if err == io.EOF {
			if i != len(docs) {
				t.Fatalf("%d parts, want %d", i, len(docs))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, docs[i]) {
			t.Errorf("part %d:\n%q\nwant\n%q", i, got, docs[i])
		}
		if h := part.Header.Get("Content-Type"); h != FeatureEventContentType {
			t.Errorf("part %d Content-Type %q", i, h)
		}
		if h := part.Header.Get("Content-Length"); h != strconv.Itoa(len(docs[i])) {
			t.Errorf("part %d Content-Length %q, want %d", i, h, len(docs[i]))
		}
		if _, err := decodeEventDoc(got); err != nil {
			t.Errorf("part %d: %v", i, err)
		}
	}
}

func TestMultipartBoundaries(t *testing.T) {
	doc := []byte("<x/>")
	seen := map[string]bool{}
	for range 100 {
		ct, _ := Multipart([][]byte{doc}, "text/plain")
		if seen[ct] {
			t.Fatalf("boundary repeated: %s", ct)
		}
		seen[ct] = true
	}
	// A document that happens to contain a boundary's prefix is fine; the
	// boundary never occurs inside a part.
	ct, body := Multipart([][]byte{[]byte("--bwc- inside"), doc}, "text/plain")
	_, params, _ := mime.ParseMediaType(ct)
	if bytes.Count(body, []byte(params["boundary"])) != 3 {
		t.Fatalf("boundary count wrong in\n%s", body)
	}
}

func TestMultipartEmpty(t *testing.T) {
	ct, body := Multipart(nil, FeatureEventContentType)
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "--"+params["boundary"]+"--\r\n" {
		t.Fatalf("body %q", body)
	}
}
