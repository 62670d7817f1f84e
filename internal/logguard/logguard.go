// Package logguard keeps the connector's log from being turned into a weapon
// (issue 13): nothing from the wire is written whole, credentials never are,
// and a line an attacker can trigger at will is rate limited per source with
// a count of what was suppressed.
//
// It is an slog.Handler in front of the real one, installed once by
// cmd/connector, so every package's lines — sipgo's included, once routed
// through the connector's logger — share the same bounds:
//
//   - every string (named string types too), []byte, list, error and
//     fmt.Stringer attribute is cut to an escaped excerpt of at most Options.MaxValueBytes (see Excerpt), and the
//     message itself too;
//   - SIP Authorization / Proxy-Authorization header values and digest
//     credentials ("Digest username=…") are replaced by "[redacted]";
//   - records at Info or above that name a source (an attribute in
//     Options.SourceKeys: "source", "remote", "raddr", …) pass at most
//     Options.Burst times per Options.Window for each (message, source), and
//     at most Options.MessageBurst times per window for each message whatever
//     the source; Warn and above without a source get the per-message limit.
//     The first line let through after a suppression carries
//     suppressed=<count>. Debug lines are bounded but never suppressed: an
//     operator who turns debug on asked for them.
//
// The limiter's table is bounded (Options.MaxKeys); when it is full, lines
// fall back to the per-message limit, so spoofed source addresses cannot
// grow memory or get past the limit.
package logguard

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults of Options.
const (
	DefaultMaxValueBytes = 512 // any attribute: long enough for a wrapped error chain
	WireExcerptBytes     = 200 // what a package quotes of a peer's bytes (Excerpt)
	DefaultBurst         = 10
	DefaultMessageBurst  = 100
	DefaultWindow        = 10 * time.Second
	DefaultMaxKeys       = 4096
)

// DefaultSourceKeys are attribute names whose value says where a line's cause
// came from on the network.
var DefaultSourceKeys = []string{"source", "remote", "raddr", "remote_addr", "peer"}

// Options bound what reaches the next handler. Zero values take the defaults.
type Options struct {
	MaxValueBytes int           // longest attribute value written, in bytes of input
	Burst         int           // lines per (message, source) per window
	MessageBurst  int           // lines per message per window, all sources together
	Window        time.Duration // the rate limit's fixed window
	MaxKeys       int           // (message, source) pairs tracked at once
	SourceKeys    []string      // attribute names that identify a source
	Now           func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxValueBytes <= 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MessageBurst <= 0 {
		o.MessageBurst = DefaultMessageBurst
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.SourceKeys == nil {
		o.SourceKeys = DefaultSourceKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Handler is the guard; see the package doc.
type Handler struct {
	next   slog.Handler
	lim    *limiter
	opts   *Options
	source string // a source attribute given by WithAttrs, "" if none
	group  bool   // WithGroup was used: attributes below are namespaced
}

// NewHandler guards next.
func NewHandler(next slog.Handler, opts Options) *Handler {
	o := opts.withDefaults()
	return &Handler{next: next, opts: &o, lim: newLimiter(o)}
}

// Suppressed is the number of lines dropped by the rate limit so far.
func (h *Handler) Suppressed() uint64 { return h.lim.suppressedTotal.Load() }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	source := h.source
	if source == "" && !h.group {
		r.Attrs(func(a slog.Attr) bool {
			if h.isSourceKey(a.Key) {
				source = a.Value.String()
				return false
			}
			return true
		})
	}
	var suppressed uint64
	if r.Level >= slog.LevelInfo && (source != "" || r.Level >= slog.LevelWarn) {
		pass, n := h.lim.allow(r.Message, source, r.Level)
		if !pass {
			return nil
		}
		suppressed = n
	}
	out := slog.NewRecord(r.Time, r.Level, h.bound(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.boundAttr(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Uint64("suppressed", suppressed))
	}
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	bounded := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		if c.source == "" && !h.group && h.isSourceKey(a.Key) {
			c.source = a.Value.String()
		}
		bounded[i] = h.boundAttr(a)
	}
	c.next = h.next.WithAttrs(bounded)
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	if name != "" {
		c.group = true
	}
	return &c
}

func (h *Handler) isSourceKey(k string) bool {
	for _, s := range h.opts.SourceKeys {
		if k == s {
			return true
		}
	}
	return false
}

func (h *Handler) bound(s string) string {
	return boundString(s, h.opts.MaxValueBytes)
}

func (h *Handler) boundAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.bound(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = h.boundAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case []byte:
			return slog.String(a.Key, boundString(string(x), h.opts.MaxValueBytes))
		case error:
			return slog.String(a.Key, h.bound(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, h.bound(x.String()))
		case string:
			return slog.String(a.Key, h.bound(x))
		}
		// Named string types (csta.DeviceID) and lists carry wire text too.
		switch reflect.ValueOf(v.Any()).Kind() {
		case reflect.String:
			return slog.String(a.Key, h.bound(reflect.ValueOf(v.Any()).String()))
		case reflect.Slice, reflect.Array:
			return slog.String(a.Key, h.bound(fmt.Sprint(v.Any())))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// boundString redacts credentials and, when s is long or not printable
// text, cuts it to an escaped excerpt.
func boundString(s string, max int) string {
	s = Redact(s)
	if len(s) <= max && printable(s) {
		return s
	}
	return Excerpt([]byte(s), max)
}

func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// Excerpt is b as Go-escaped ASCII text (control and invalid bytes as \x..
// escapes, so a log line stays one line of text) of at most max bytes,
// followed by "…(N bytes)" when b was cut. The bound is on the escaped text:
// 30 KB of 0xff bytes give max bytes, not 4 × max.
func Excerpt(b []byte, max int) string {
	if max <= 0 {
		max = WireExcerptBytes
	}
	out := make([]byte, 0, min(max, 4*len(b)))
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		var piece []byte
		if r == utf8.RuneError && size == 1 {
			piece = []byte(`\x` + hex2(b[i]))
		} else {
			q := strconv.QuoteRuneToASCII(r)
			piece = []byte(q[1 : len(q)-1])
			if r == '\'' {
				piece = []byte("'")
			} else if r == '"' {
				piece = []byte(`\"`)
			}
		}
		if len(out)+len(piece) > max {
			break
		}
		out = append(out, piece...)
		i += size
	}
	if i < len(b) {
		return string(out) + "…(" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(out)
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// Redact replaces the values of SIP Authorization and Proxy-Authorization
// headers, and anything that follows "Digest " (a credential or challenge),
// by "[redacted]". Digest responses copied from a log could otherwise be
// replayed (issue 13, attack 5).
func Redact(s string) string {
	if !strings.Contains(s, "uthorization") && !strings.Contains(s, "igest ") && !strings.Contains(s, "IGEST ") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		line, rest, found := strings.Cut(s, "\n")
		b.WriteString(redactLine(line))
		if found {
			b.WriteByte('\n')
		}
		s = rest
	}
	return b.String()
}

func redactLine(line string) string {
	lower := strings.ToLower(line)
	trimmed := strings.TrimLeft(lower, " \t")
	for _, name := range []string{"authorization", "proxy-authorization"} {
		if strings.HasPrefix(trimmed, name) {
			after := strings.TrimLeft(trimmed[len(name):], " \t")
			if strings.HasPrefix(after, ":") {
				i := strings.IndexByte(line, ':')
				return line[:i+1] + " [redacted]" + trailingCR(line)
			}
		}
	}
	if i := strings.Index(lower, "digest "); i >= 0 {
		return line[:i+len("digest ")] + "[redacted]" + trailingCR(line)
	}
	return line
}

func trailingCR(line string) string {
	if strings.HasSuffix(line, "\r") {
		return "\r"
	}
	return ""
}

// ---- rate limit ----

type window struct {
	start      time.Time
	count      int
	suppressed uint64 // dropped since the last line let through
	last       time.Time
}

type limiter struct {
	opts            Options
	mu              sync.Mutex
	perSource       map[[2]string]*window
	perMessage      map[string]*window
	suppressedTotal atomic.Uint64
}

func newLimiter(o Options) *limiter {
	return &limiter{opts: o, perSource: make(map[[2]string]*window), perMessage: make(map[string]*window)}
}

// allow says whether a line may pass, and how many of its kind were
// suppressed since the last one that did.
func (l *limiter) allow(msg, source string, level slog.Level) (bool, uint64) {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	mw := windowFor(l.perMessage, msg, now, l.opts.Window, l.opts.MaxKeys)
	var sw *window
	if source != "" {
		sw = windowFor(l.perSource, [2]string{msg, source}, now, l.opts.Window, l.opts.MaxKeys)
	}
	if mw == nil {
		// The message table is full of distinct messages (they come from
		// code, not the wire, so this means a bug); let Errors through.
		if level >= slog.LevelError {
			return true, 0
		}
		l.suppressedTotal.Add(1)
		return false, 0
	}
	over := mw.count >= l.opts.MessageBurst
	if sw != nil && sw.count >= l.opts.Burst {
		over = true
	}
	if over {
		l.suppressedTotal.Add(1)
		if sw != nil {
			sw.suppressed++
		} else {
			mw.suppressed++
		}
		return false, 0
	}
	mw.count++
	var n uint64
	if sw != nil {
		sw.count++
		n, sw.suppressed = sw.suppressed, 0
	} else {
		n, mw.suppressed = mw.suppressed, 0
	}
	return true, n
}

// windowFor finds or makes key's window, starting a new one when the old
// one is over. nil when the table is full even after dropping windows idle
// for two periods (their suppressed count, if any, stays in the total).
func windowFor[K comparable](m map[K]*window, key K, now time.Time, every time.Duration, max int) *window {
	w := m[key]
	if w == nil {
		if len(m) >= max {
			for k, o := range m {
				if now.Sub(o.last) >= 2*every {
					delete(m, k)
				}
			}
			if len(m) >= max {
				return nil
			}
		}
		w = &window{start: now}
		m[key] = w
	}
	if now.Sub(w.start) >= every {
		w.start, w.count = now, 0
	}
	w.last = now
	return w
}
