package phonesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/broadworks-connector/connector/internal/logguard"
	"github.com/broadworks-connector/connector/internal/netguard"
)

// The SIP edge against hostile peers (issue 13): listeners that survive
// their errors and report when they stop, TCP connection caps and an idle
// timeout (netguard), and input that cannot be SIP refused before sipgo
// parses it, because sipgo logs an unparsable message whole at ERROR.

func withTCPDefaults(cfg Config) Config {
	def := DefaultConfig()
	if cfg.TCPMaxConnections <= 0 {
		cfg.TCPMaxConnections = def.TCPMaxConnections
	}
	if cfg.TCPMaxConnectionsPerSource <= 0 {
		cfg.TCPMaxConnectionsPerSource = def.TCPMaxConnectionsPerSource
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = def.TCPIdleTimeout
	}
	return cfg
}

func tcpLimits(cfg Config) netguard.Limits {
	return netguard.Limits{
		MaxConns:          cfg.TCPMaxConnections,
		MaxConnsPerSource: cfg.TCPMaxConnectionsPerSource,
		IdleTimeout:       cfg.TCPIdleTimeout,
	}
}

// guard puts a SIP stream listener behind the TCP gate, shared by TCP and
// TLS.
func (s *Server) guard(ln net.Listener, name string) *netguard.Listener {
	return netguard.NewListener(ln, netguard.Config{
		Name: name, Log: s.log, Gate: s.tcpGate, OnRefuse: s.metrics.connectionRefused,
	})
}

// serveEnded notes a serve loop's end. Before Close it means phones on that
// transport are no longer served: logged and kept for Health. (sipgo's UDP
// loop returns nil whatever ended it.)
func (s *Server) serveEnded(name string, err error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return
	}
	if err == nil {
		err = errors.New("its read loop ended")
	}
	s.stopMu.Lock()
	if s.stopped == nil {
		s.stopped = make(map[string]error)
	}
	s.stopped[name] = err
	s.stopMu.Unlock()
	s.log.Error("SIP listener stopped; phones on it are not served until a restart", "listener", name, "err", err)
}

// Health is nil while every SIP listener serves (and before Start), else an
// error naming each listener that stopped and why. cmd/connector's /readyz
// reports it.
func (s *Server) Health() error {
	s.stopMu.Lock()
	stopped := make(map[string]error, len(s.stopped)+2)
	for name, err := range s.stopped {
		stopped[name] = err
	}
	s.stopMu.Unlock()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if !closing {
		// A listener's Accept failing for good is known before its serve
		// loop returns.
		for _, g := range []*netguard.Listener{s.tcpGuard, s.tlsGuard} {
			if g == nil {
				continue
			}
			if err := g.Err(); err != nil {
				name := "sip/tcp"
				if g == s.tlsGuard {
					name = "sip/tls"
				}
				if _, ok := stopped[name]; !ok {
					stopped[name] = err
				}
			}
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(stopped)) {
		errs = append(errs, fmt.Errorf("SIP listener %s stopped: %w", name, stopped[name]))
	}
	return errors.Join(errs...)
}

// TCPConnections is the number of SIP connections open over TCP and TLS.
func (s *Server) TCPConnections() int { return s.tcpGate.Open() }

// errNotSIP is what the read filter returns for a stream read that cannot
// be SIP; sipgo logs it (never the data) and closes the connection.
type errNotSIP struct{ reason string }

func (e errNotSIP) Error() string { return "phonesync: not SIP: " + e.reason }

// screen refuses reads that cannot be SIP (RFC 3261 §7): a datagram must be
// one whole message whose start line and header section are text; a stream
// read, cut wherever TCP chose, must be text. What it refuses is counted,
// and a refused datagram is logged as a rate-limited line with a short
// excerpt, cut before any Authorization header.
func (s *Server) screen(props sip.TransportReadProps, data []byte) error {
	var reason string
	if props.Transport == "UDP" {
		reason = datagramProblem(data)
	} else {
		reason = textProblem(data, true)
	}
	if reason == "" {
		return nil
	}
	s.metrics.malformed(props.Transport)
	if props.Transport != "UDP" {
		return errNotSIP{reason} // logged by sipgo, without the data, with the source
	}
	source := ""
	if props.RemoteAddr != nil {
		source = props.RemoteAddr.String()
		if ap, err := netip.ParseAddrPort(source); err == nil {
			source = ap.Addr().Unmap().String() // one source however many ports it sends from
		}
	}
	s.log.Warn("SIP datagram refused: not SIP", "source", source, "reason", reason,
		"bytes", len(data), "excerpt", wireExcerpt(data))
	return errNotSIP{reason}
}

// wireExcerpt is the start of data for a log line: at most
// logguard.WireExcerptBytes, escaped, short enough that logguard does not
// cut (and escape) it again, and nothing from an Authorization or
// Proxy-Authorization header on: a digest response could be replayed.
func wireExcerpt(data []byte) string {
	cut := data[:min(len(data), logguard.WireExcerptBytes)]
	redacted := ""
	if i := bytes.Index(bytes.ToLower(cut), []byte("authorization")); i >= 0 {
		cut, redacted = cut[:i], "[redacted]"
	}
	out := logguard.Excerpt(cut, len(cut))
	for len(out) > maxExcerptText && len(cut) > 0 {
		cut = cut[:len(cut)/2] // escapes take up to 4 characters a byte
		out = logguard.Excerpt(cut, len(cut))
	}
	out += redacted
	if len(cut) < len(data) {
		out += "…(" + strconv.Itoa(len(data)) + " bytes)"
	}
	return out
}

// maxExcerptText keeps an excerpt under logguard's bound of an attribute.
const maxExcerptText = logguard.DefaultMaxValueBytes - 64

// sipgoLogHandler is the handler of sipgo's loggers. sipgo logs a message
// it cannot parse whole, as "data", at ERROR (the connector's filter
// refuses most such input first; a bad value of a header sipgo parses
// still gets here): that attribute becomes a wireExcerpt, the line a WARN.
type sipgoLogHandler struct{ slog.Handler }

func (h sipgoLogHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if r.Message == "failed to parse" && level > slog.LevelWarn {
		level = slog.LevelWarn // a peer's mistake, not the connector's error
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "data" {
			a = slog.String("data", wireExcerpt([]byte(a.Value.String())))
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h sipgoLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sipgoLogHandler{h.Handler.WithAttrs(as)}
}

func (h sipgoLogHandler) WithGroup(name string) slog.Handler {
	return sipgoLogHandler{h.Handler.WithGroup(name)}
}

// datagramProblem says why a datagram cannot be a SIP message, "" when it
// may be one (sipgo parses it then). Leading CRLFs are allowed (§7.5), and
// a datagram of CRLFs alone is a keep-alive (RFC 5626 §3.5.1).
func datagramProblem(data []byte) string {
	msg := bytes.TrimLeft(data, "\r\n")
	if len(msg) == 0 {
		return ""
	}
	line, _, _ := bytes.Cut(msg, []byte("\n"))
	if p := startLineProblem(bytes.TrimSuffix(line, []byte("\r"))); p != "" {
		return p
	}
	head := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		head = msg[:i]
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		head = msg[:i]
	} else {
		return "no blank line ends the header section"
	}
	if p := textProblem(head, false); p != "" {
		return p + " in the header section"
	}
	for n, line := range bytes.Split(head, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if n == 0 || len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue // the start line; a folded header's continuation
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || !isToken(name) {
			return "a header line is not name: value"
		}
		if p := headerValueProblem(name, bytes.TrimSpace(value)); p != "" {
			return p
		}
	}
	return ""
}

// headerValueProblem checks the numeric headers sipgo's parser refuses a
// message for (§20.14, §20.16, §20.22), so their mistakes are answered
// here instead of being logged by sipgo. The others it parses (Via, From,
// To, Contact) are left to it.
func headerValueProblem(name, value []byte) string {
	switch {
	case bytes.EqualFold(name, []byte("CSeq")):
		num, method, ok := bytes.Cut(value, []byte(" "))
		if !ok || len(num) == 0 || len(num) > 10 || !isDigits(num) || !isToken(bytes.TrimSpace(method)) {
			return "a bad CSeq"
		}
	case bytes.EqualFold(name, []byte("Content-Length")), bytes.EqualFold(name, []byte("l")),
		bytes.EqualFold(name, []byte("Max-Forwards")):
		if len(value) == 0 || len(value) > 9 || !isDigits(value) {
			return "a bad " + string(name)
		}
	}
	return ""
}

// startLineProblem checks a Request-Line (Method SP Request-URI SP
// SIP-Version) or a Status-Line (SIP-Version SP 3DIGIT SP Reason), §7.1/7.2.
func startLineProblem(line []byte) string {
	const version = "SIP/2.0"
	if rest, ok := bytes.CutPrefix(line, []byte(version+" ")); ok {
		if len(rest) < 3 || !isDigits(rest[:3]) || len(rest) > 3 && rest[3] != ' ' {
			return "a bad status line"
		}
		return ""
	}
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !isToken(method) {
		return "no SIP method or version at the start"
	}
	uri, ver, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(uri) == 0 || !bytes.EqualFold(ver, []byte(version)) {
		return "a bad request line"
	}
	var u sip.Uri
	if sip.ParseUri(string(uri), &u) != nil {
		return "a bad Request-URI"
	}
	return ""
}

// textProblem refuses control bytes other than HT, CR and LF and bytes that
// are not UTF-8 (SIP is UTF-8 text, §7.3.1; the bodies phones send are XML
// or text). A stream read may start or end inside a character.
func textProblem(b []byte, stream bool) string {
	if stream {
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && b[0]&0xC0 == 0x80; i++ {
			b = b[1:]
		}
	}
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
				return "control bytes"
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			if stream && !utf8.FullRune(b) {
				return "" // the rest of the character comes with the next read
			}
			return "bytes that are not UTF-8"
		}
		b = b[size:]
	}
	return ""
}

// isToken: RFC 3261 §25.1 token characters.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-.!%*_+`'~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
