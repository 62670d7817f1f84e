package admin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestHTTPErrorLogLines(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http: TLS handshake error from 10.0.0.1:51234: EOF\n", `level=WARN msg="admin: TLS handshake failed" remote=10.0.0.1:51234 err=EOF`},
		{"http: Accept error: accept tcp 127.0.0.1:8080: accept4: too many open files; retrying in 5ms\n",
			`level=WARN msg="admin: accept failed, retrying" err="accept tcp 127.0.0.1:8080: accept4: too many open files"`},
		{"http: panic serving 10.0.0.2:1: boom\n", `level=ERROR msg="admin: handler panicked" remote=10.0.0.2:1 err=boom`},
		{"http: something else\n", `level=WARN msg="admin: HTTP server" err="http: something else"`},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		l := httpErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})))
		l.Print(tc.in)
		if got := strings.TrimSpace(buf.String()); got != tc.want {
			t.Errorf("%q logged as\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
}
