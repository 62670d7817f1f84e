package admin

import (
	"log"
	"log/slog"
	"strings"
)

// httpErrorLog is net/http's ErrorLog for the admin server. net/http writes
// free text with the peer's address inside it ("http: TLS handshake error
// from 10.0.0.1:51234: EOF"), which would make every line a message of its
// own to the log guard's rate limit (internal/logguard). It gives the lines a
// fixed message and the address as the "remote" attribute, so a handshake
// flood is limited per source and overall like every other refusal.
func httpErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{logger}, "", 0)
}

type errorLogWriter struct{ logger *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.HasPrefix(line, "http: TLS handshake error from "):
		rest := strings.TrimPrefix(line, "http: TLS handshake error from ")
		remote, reason, _ := strings.Cut(rest, ": ")
		w.logger.Warn("admin: TLS handshake failed", "remote", remote, "err", reason)
	case strings.HasPrefix(line, "http: Accept error: "):
		// "…; retrying in 5ms": the delay is left out so that the lines
		// of one outage are one kind (net/http backs off up to 1 s).
		reason, _, _ := strings.Cut(strings.TrimPrefix(line, "http: Accept error: "), "; retrying in")
		w.logger.Warn("admin: accept failed, retrying", "err", reason)
	case strings.HasPrefix(line, "http: panic serving "):
		rest := strings.TrimPrefix(line, "http: panic serving ")
		remote, reason, _ := strings.Cut(rest, ": ")
		w.logger.Error("admin: handler panicked", "remote", remote, "err", reason)
	default:
		w.logger.Warn("admin: HTTP server", "err", line)
	}
	return len(p), nil
}
