package csta

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		length  int
		invoke  int
		wantErr bool
	}{
		{"binary zero format", "\x00\x00\x00\xeb0001", 235, 1, false},
		{"ascii 00 format", "00\x01\xa71234", 423, 1234, false},
		{"event invoke id", "\x00\x00\x00\x089999", 8, 9999, false},
		{"length shorter than header", "\x00\x00\x00\x070001", 0, 0, true},
		{"length zero", "\x00\x00\x00\x000001", 0, 0, true},
		{"non-digit invoke id", "\x00\x00\x00\x2000a1", 0, 0, true},
		{"space in invoke id", "\x00\x00\x00\x20 001", 0, 0, true},
		{"unknown format bytes", "\x01\x00\x00\x200001", 0, 0, true},
		{"xml instead of header", "<?xml ve", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			length, invoke, err := parseHeader([]byte(tt.header))
			if tt.wantErr {
				if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("err = %v, want ErrBadHeader", err)
				}
				return
			}
			if err != nil || length != tt.length || invoke != tt.invoke {
				t.Fatalf("got (%d, %d, %v), want (%d, %d, nil)", length, invoke, err, tt.length, tt.invoke)
			}
		})
	}
}

func TestAppendFrameIsByteExact(t *testing.T) {
	// psco-tech's MonitorStart fixture: 227 XML bytes, header 00 00 00 EB "0001" (research/csta.md §0.1).
	xml := `<MonitorStart xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><monitorObject><deviceObject typeOfNumber="dialingNumber">212700</deviceObject></monitorObject><monitorType>device</monitorType></MonitorStart>`
	got, err := AppendFrame(nil, 1, []byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x00\x00\x00\xeb0001" + xml; string(got) != want {
		t.Fatalf("header % x, want 00 00 00 eb 30 30 30 31", got[:8])
	}
	if _, err := AppendFrame(nil, 1, make([]byte, MaxFrameSize-HeaderSize+1)); err == nil {
		t.Fatal("a document too large for the 16-bit length was framed")
	}
}

// frameStream is three frames, one with the ASCII "00" variant, one with a
// multi-byte UTF-8 name so the length must count bytes.
func frameStream(t *testing.T) ([]byte, []Frame) {
	want := []Frame{
		{1, []byte(`<SystemStatus><systemStatus>normal</systemStatus></SystemStatus>`)},
		{42, []byte(`<GetDoNotDisturb><device>4711</device></GetDoNotDisturb>`)},
		{9999, []byte(`<X>Zentrale München ☎</X>`)},
	}
	var stream []byte
	for i, f := range want {
		var err error
		start := len(stream)
		stream, err = AppendFrame(stream, f.InvokeID, f.XML)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			stream[start], stream[start+1] = '0', '0'
		}
	}
	return stream, want
}

func readAll(t *testing.T, r io.Reader) []Frame {
	t.Helper()
	fr := NewFrameReader(r, MaxFrameSize)
	var got []Frame
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		got = append(got, f)
	}
}

func sameFrames(t *testing.T, got, want []Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].InvokeID != want[i].InvokeID || !bytes.Equal(got[i].XML, want[i].XML) {
			t.Fatalf("frame %d = %04d %q, want %04d %q", i, got[i].InvokeID, got[i].XML, want[i].InvokeID, want[i].XML)
		}
	}
}

// TestFrameReaderSplitAtEveryByte feeds the stream cut in two at every byte
// boundary, and then one byte per read, so every frame is split inside its
// header and its body, and merged with its neighbours.
func TestFrameReaderSplitAtEveryByte(t *testing.T) {
	stream, want := frameStream(t)
	for cut := 0; cut <= len(stream); cut++ {
		r := io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:]))
		sameFrames(t, readAll(t, r), want)
	}
	sameFrames(t, readAll(t, iotest.OneByteReader(bytes.NewReader(stream))), want)
	sameFrames(t, readAll(t, iotest.HalfReader(bytes.NewReader(stream))), want)
}

func TestFrameReaderErrors(t *testing.T) {
	stream, _ := frameStream(t)
	t.Run("truncated inside a frame", func(t *testing.T) {
		fr := NewFrameReader(bytes.NewReader(stream[:len(stream)-3]), MaxFrameSize)
		var err error
		for err == nil {
			_, err = fr.ReadFrame()
		}
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("truncated inside a header", func(t *testing.T) {
		fr := NewFrameReader(bytes.NewReader([]byte{0, 0, 0}), MaxFrameSize)
		if _, err := fr.ReadFrame(); err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("too large frame is skipped and the next one read", func(t *testing.T) {
		big, _ := AppendFrame(nil, 7, bytes.Repeat([]byte("a"), 200))
		next, _ := AppendFrame(nil, 8, []byte("<ok/>"))
		fr := NewFrameReader(bytes.NewReader(append(big, next...)), 100)
		_, err := fr.ReadFrame()
		var tl *FrameTooLargeError
		if !errors.As(err, &tl) || tl.InvokeID != 7 || tl.Length != 208 {
			t.Fatalf("err = %v, want FrameTooLargeError for invoke 7 of 208 bytes", err)
		}
		f, err := fr.ReadFrame()
		if err != nil || f.InvokeID != 8 || string(f.XML) != "<ok/>" {
			t.Fatalf("next frame = %v %q %v", f.InvokeID, f.XML, err)
		}
	})
}

func TestParseFrame(t *testing.T) {
	good, _ := AppendFrame(nil, 12, []byte("<a/>"))
	if f, err := ParseFrame(good, MaxFrameSize); err != nil || f.InvokeID != 12 || string(f.XML) != "<a/>" {
		t.Fatalf("ParseFrame = %v %q %v", f.InvokeID, f.XML, err)
	}
	for name, b := range map[string][]byte{
		"short":            good[:5],
		"length too large": append(append([]byte{}, good...), 'x'),
		"length too small": good[:len(good)-1],
	} {
		if _, err := ParseFrame(b, MaxFrameSize); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: err = %v, want ErrBadHeader", name, err)
		}
	}
}
