package logguard

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestLogger(o Options) (*slog.Logger, *bytes.Buffer, *clock, *Handler) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	o.Now = c.now
	h := NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), o)
	return slog.New(h), &buf, c, h
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"short text", []byte("hello"), 10, "hello"},
		{"cut", []byte("abcdefghij"), 4, "abcd…(10 bytes)"},
		{"binary escaped", []byte{0xff, 0x00, 'a', '\n'}, 20, `\xff\x00a\n`},
		{"cut binary on the escaped length", bytes.Repeat([]byte{0xff}, 30000), 9, `\xff\xff…(30000 bytes)`},
		{"quotes and unicode", []byte(`a"b'é`), 50, `a\"b'\u00e9`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Excerpt(tc.in, tc.max); got != tc.want {
				t.Fatalf("Excerpt = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SUBSCRIBE sip:4001@x SIP/2.0\r\nAuthorization: Digest username=\"4001\", response=\"abc\"\r\nCall-ID: 1\r\n",
			"SUBSCRIBE sip:4001@x SIP/2.0\r\nAuthorization: [redacted]\r\nCall-ID: 1\r\n"},
		{"proxy-authorization : Digest x=1", "proxy-authorization : [redacted]"},
		{`bad credentials Digest username="a", response="b"`, `bad credentials Digest [redacted]`},
		{"nothing to see", "nothing to see"},
	}
	for _, tc := range tests {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A flood of one warning from one source is cut to Burst lines per window,
// the next window's first line says how many were suppressed, and another
// source is not starved by the first.
func TestRateLimitPerSource(t *testing.T) {
	log, buf, c, h := newTestLogger(Options{Burst: 3, MessageBurst: 100, Window: time.Second})
	for range 1000 {
		log.Warn("refused", "remote", "10.0.0.1:5060")
	}
	log.Warn("refused", "remote", "10.0.0.2:5060")
	got := lines(buf)
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 3 from the flooder and 1 from the other source:\n%s", len(got), buf)
	}
	if h.Suppressed() != 997 {
		t.Fatalf("Suppressed = %d, want 997", h.Suppressed())
	}
	buf.Reset()
	c.t = c.t.Add(time.Second)
	log.Warn("refused", "remote", "10.0.0.1:5060")
	if got := buf.String(); !strings.Contains(got, "suppressed=997") {
		t.Fatalf("first line of the next window = %q, want suppressed=997", got)
	}
}

// Sources given through With count as the line's source, and many sources
// together are still held to the per-message limit.
func TestRateLimitPerMessage(t *testing.T) {
	log, buf, _, _ := newTestLogger(Options{Burst: 5, MessageBurst: 20, Window: time.Second})
	for i := range 1000 {
		log.With("source", i).Info("datagram refused")
	}
	if n := len(lines(buf)); n != 20 {
		t.Fatalf("got %d lines, want the per-message limit 20", n)
	}
}

// Warnings without a source are held to the per-message limit; Info lines
// without one, and debug lines, are never suppressed.
func TestRateLimitScope(t *testing.T) {
	log, buf, _, _ := newTestLogger(Options{Burst: 1, MessageBurst: 2, Window: time.Second})
	for range 10 {
		log.Warn("no source")
	}
	if n := len(lines(buf)); n != 2 {
		t.Fatalf("warnings without source: %d lines, want 2", n)
	}
	buf.Reset()
	for range 10 {
		log.Info("startup step")
		log.Debug("detail", "remote", "1.2.3.4:1")
	}
	if n := len(lines(buf)); n != 20 {
		t.Fatalf("info without source and debug: %d lines, want all 20", n)
	}
}

// The key table is bounded: with more sources than MaxKeys, lines fall back
// to the per-message limit instead of growing the table.
func TestRateLimitTableBounded(t *testing.T) {
	log, _, _, h := newTestLogger(Options{Burst: 1, MessageBurst: 1 << 30, MaxKeys: 64, Window: time.Hour})
	for i := range 10000 {
		log.Warn("x", "source", i)
	}
	h.lim.mu.Lock()
	n := len(h.lim.perSource)
	h.lim.mu.Unlock()
	if n > 64 {
		t.Fatalf("per-source table has %d entries, cap 64", n)
	}
}

// Values from the wire are cut and escaped, credentials redacted, whatever
// the attribute's type; the message too.
func TestValuesBounded(t *testing.T) {
	log, buf, _, _ := newTestLogger(Options{MaxValueBytes: 50})
	junk := bytes.Repeat([]byte{0xff}, 30000)
	sipMsg := "SUBSCRIBE sip:a SIP/2.0\r\nAuthorization: Digest username=\"4001\", response=\"6629fae49393a05397450978507c4ef1\"\r\n"
	log.Error("failed to parse", "data", string(junk), "raw", junk, "err", errors.New(string(junk)), "msg2", sipMsg)
	log.Error(string(junk))
	type deviceID string
	log.Error("named types", "device", deviceID(junk), "list", []string{string(junk), "x"})
	out := buf.String()
	if len(out) > 2500 {
		t.Fatalf("log grew by %d bytes for 120 KB of junk: %s", len(out), out)
	}
	if strings.Contains(out, "6629fae4") {
		t.Fatalf("digest response reached the log: %s", out)
	}
	if strings.Count(out, "\n") != 3 {
		t.Fatalf("want 3 lines, got %q", out)
	}
}

// BenchmarkHandler: one Info line with a source through the guard, against
// the same line through the text handler alone; and a suppressed line.
func BenchmarkHandler(b *testing.B) {
	text := slog.NewTextHandler(io.Discard, nil)
	cases := []struct {
		name string
		h    slog.Handler
		srcs int
	}{
		{"text alone", text, 1000},
		{"guarded, passing", NewHandler(text, Options{Burst: 1 << 30, MessageBurst: 1 << 30}), 1000},
		{"guarded, suppressed", NewHandler(text, Options{Burst: 1, MessageBurst: 1, Window: time.Hour}), 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			log := slog.New(c.h)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				log.Info("CSTA request refused", "source", i%c.srcs, "invoke", 1234, "root", "SetAgentState", "reason", "unknown agent")
			}
		})
	}
}
