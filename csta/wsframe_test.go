package csta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zultysFixture reads a Zultys-dialect text message from testdata/zultys.
// The files were made with Python's base64 module, not with this package,
// as csta-to-tapi's ZultysPacketCodec.Encode lays them out.
func zultysFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "zultys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTextFrame(t *testing.T) {
	const xml = `<a/>`
	cases := []struct {
		name    string
		msg     []byte // or file
		file    string
		maxSize int
		invoke  int    // want, when wantErr and tooLarge are unset
		wantXML string // prefix of the XML, when not xml
		wantErr string // an ErrBadHeader with this text
		tooBig  bool   // a *FrameTooLargeError
	}{
		{name: "capture layout", file: "monitor_start.msg", invoke: 1, wantXML: `<?xml version="1.0" encoding="utf-8"?><MonitorStart`},
		{name: "unpadded base64", file: "monitor_start_unpadded.msg", invoke: 2, wantXML: `<?xml`},
		{name: "ASCII 00 format bytes", file: "monitor_start_ascii_format.msg", invoke: 3, wantXML: `<?xml`},
		{name: "length counts UTF-8 bytes", file: "set_dnd_utf8.msg", invoke: 9998, wantXML: `<SetDoNotDisturb`},
		{name: "length counted in characters", file: "set_dnd_length_in_chars.msg", wantErr: "header says 190 bytes, message carries 192"},
		{name: "12 bytes, handmade", msg: []byte("\x0cAAAADDAwMDE=" + xml), invoke: 1, wantXML: xml},
		{name: "event invoke ID", msg: []byte("\x0cAAAADDk5OTk=" + xml), invoke: EventInvokeID, wantXML: xml},
		{name: "empty XML", msg: []byte("\x0cAAAACDAwMDc="), invoke: 7, wantXML: ""},

		{name: "empty message", msg: nil, wantErr: "empty text message, no header length character"},
		{name: "no header length character", msg: []byte("AAAADDAwMDE=" + xml), wantErr: "header length character 0x41, want 0x0c"},
		{name: "length character as a digit", msg: []byte("12AAAADDAwMDE=" + xml), wantErr: "header length character 0x31, want 0x0c"},
		{name: "binary frame sent as text", msg: []byte("\x00\x00\x00\x0c0001" + xml), wantErr: "header length character 0x00, want 0x0c"},
		{name: "truncated header", msg: []byte("\x0cAAAADDAw"), wantErr: "text message of 9 bytes ends inside its 12-character header"},
		{name: "bad base64 character", msg: []byte("\x0cAAAA*DAwMDE=" + xml), wantErr: `header "AAAA*DAwMDE=" is not base64 of 8 bytes`},
		{name: "base64 of 9 bytes", msg: []byte("\x0cAAAADDAwMDEx" + xml), wantErr: "is not base64 of 8 bytes"},
		{name: "line break in the header", msg: []byte("\x0cAAAADDAw\nMDE" + xml), wantErr: "is not base64 of 8 bytes"},
		{name: "non-zero padding bits", msg: []byte("\x0cAAAADDAwMDF=" + xml), wantErr: "is not base64 of 8 bytes"},
		{name: "padding without a padded length", msg: []byte("\x0bAAAADDAwMD=" + xml), wantErr: "is not base64 of 8 bytes"},
		{name: "bad format bytes", msg: []byte("\x0cAQAADDAwMDE=" + xml), wantErr: "format bytes 0x01 0x00, want 00 00"},
		{name: "non-digit invoke ID", msg: []byte("\x0cAAAADDAwMGE=" + xml), wantErr: `invoke ID "000a" is not 4 digits`},
		{name: "length longer than the message", msg: []byte("\x0cAAAAZDAwMDE=" + xml), wantErr: "header says 100 bytes, message carries 12"},
		{name: "length shorter than the header", msg: []byte("\x0cAAAABDAwMDE=" + xml), wantErr: "length 4 is shorter than the header"},
		{name: "over the limit", file: "monitor_start.msg", maxSize: 100, tooBig: true},
		{name: "at the limit", msg: []byte("\x0cAAAADDAwMDE=" + xml), maxSize: 12, invoke: 1, wantXML: xml},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg
			if tc.file != "" {
				msg = zultysFixture(t, tc.file)
			}
			maxSize := tc.maxSize
			if maxSize == 0 {
				maxSize = MaxFrameSize
			}
			f, err := ParseTextFrame(msg, maxSize)
			var tooLarge *FrameTooLargeError
			switch {
			case tc.tooBig:
				if !errors.As(err, &tooLarge) || tooLarge.Limit != maxSize {
					t.Fatalf("got %v, want a frame too large for %d", err, maxSize)
				}
			case tc.wantErr != "":
				if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want ErrBadHeader with %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case f.InvokeID != tc.invoke || !bytes.HasPrefix(f.XML, []byte(tc.wantXML)):
				t.Fatalf("got %04d %q, want %04d %q…", f.InvokeID, f.XML, tc.invoke, tc.wantXML)
			}
		})
	}
}

// TestTextFrameRoundTrip: what AppendTextFrame makes of a frame is the
// fixture byte for byte, and parses back to it.
func TestTextFrameRoundTrip(t *testing.T) {
	for _, name := range []string{"monitor_start.msg", "set_dnd_utf8.msg"} {
		want := zultysFixture(t, name)
		f, err := ParseTextFrame(want, MaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		frame, err := AppendFrame(nil, f.InvokeID, f.XML)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendTextFrame([]byte("keep"), frame)
		if err != nil || !bytes.Equal(got, append([]byte("keep"), want...)) {
			t.Fatalf("%s: AppendTextFrame = %q, %v; want the fixture %q", name, got, err, want)
		}
	}
	if _, err := AppendTextFrame(nil, []byte("\x00\x00\x00")); err == nil {
		t.Fatal("AppendTextFrame took a frame without a header")
	}
}

func TestCloseReasonText(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	cases := []struct{ in, want string }{
		{"idle timeout", "idle timeout"},
		{strings.Repeat("x", 123), strings.Repeat("x", 123)},
		{strings.Repeat("x", 124), strings.Repeat("x", 123)},
		{long, strings.Repeat("é", 61)}, // 122 bytes: the 62nd would be cut in half
		{"bad \xff byte", "bad ? byte"},
	}
	for _, tc := range cases {
		if got := closeReasonText(tc.in); got != tc.want {
			t.Errorf("closeReasonText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkTextFrame: the Zultys dialect's cost per message over the
// binary one — parse a request, transcode an answer.
func BenchmarkTextFrame(b *testing.B) {
	msg := zultysFixture(b, "monitor_start.msg")
	frame, _ := AppendFrame(nil, 1, msg[13:])
	b.Run("ParseTextFrame", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseTextFrame(msg, MaxFrameSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseFrame", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseFrame(frame, MaxFrameSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendTextFrame", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = AppendTextFrame(buf[:0], frame)
		}
	})
}
