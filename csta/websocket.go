package csta

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// WebSocket transport: the same protocol at /csta on the admin listener, one
// message carrying one framed message (CONTRACT.md "Wire formats"), in one
// of two dialects, fixed by the client's first message:
//   - binary messages holding the frame exactly as over TCP;
//   - text messages in the Zultys MX dialect (wsframe.go).
// Every message to the client goes in its dialect. A message before the
// client's first (a SystemStatus on a link change) goes as binary.

type wsDialect int32

const (
	dialectUnknown wsDialect = iota
	dialectBinary
	dialectText
)

func (d wsDialect) String() string {
	switch d {
	case dialectBinary:
		return "binary"
	case dialectText:
		return "text"
	}
	return "unknown"
}

// maxCloseReason is what a Close frame's reason may hold: a control frame
// carries at most 125 bytes, 2 of them the status code (RFC 6455 §5.5).
const maxCloseReason = 123

// closeLinger bounds the writing of the Close frame.
const closeLinger = time.Second

type wsTransport struct {
	ws *websocket.Conn
	// dialect is set by the reader at the first message and read by the
	// writer; it never changes after that.
	dialect atomic.Int32
	text    []byte // the writer's scratch for text messages

	mu          sync.Mutex
	closeCode   closeCode
	closeReason string
	closeOnce   sync.Once
}

// wsCloseError is a framing error that ends a WebSocket connection with
// its own close code instead of 1002.
type wsCloseError struct {
	code closeCode
	err  error
}

func (e *wsCloseError) Error() string { return e.err.Error() }
func (e *wsCloseError) Unwrap() error { return e.err }

func (t *wsTransport) readFrame(maxSize int) (Frame, error) {
	typ, r, err := t.ws.NextReader()
	if err != nil {
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			return Frame{}, errEOF
		}
		return Frame{}, err
	}
	d := dialectBinary
	limit := maxSize
	if typ == websocket.TextMessage {
		d, limit = dialectText, maxSize+textFrameOverhead
	}
	// The limit is applied here, not with SetReadLimit: past it gorilla
	// closes with 1009 and no reason, and a client should learn which
	// limit it hit. Only limit+1 bytes are read; the rest is never.
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return Frame{}, err
	}
	if len(b) > limit {
		return Frame{}, &wsCloseError{closeMessageTooBig,
			fmt.Errorf("%w: message over %d bytes (csta.limits.max_frame_bytes)", ErrBadHeader, maxSize)}
	}
	if prev := wsDialect(t.dialect.Load()); prev == dialectUnknown {
		t.dialect.Store(int32(d))
	} else if prev != d {
		return Frame{}, &wsCloseError{closeProtocolError,
			fmt.Errorf("%w: %s message on a connection that spoke %s", ErrBadHeader, d, prev)}
	}
	var f Frame
	if d == dialectText {
		// RFC 6455 §8.1: a text message that is not UTF-8 fails the connection.
		if !utf8.Valid(b) {
			return Frame{}, &wsCloseError{closeInvalidPayload, fmt.Errorf("%w: text message is not UTF-8", ErrBadHeader)}
		}
		f, err = ParseTextFrame(b, maxSize)
	} else {
		f, err = ParseFrame(b, maxSize)
	}
	var tooLarge *FrameTooLargeError
	if errors.As(err, &tooLarge) {
		// Not answered as over TCP: a message's size is not bounded by a
		// 16-bit field here, so the connection ends at the limit.
		return Frame{}, &wsCloseError{closeMessageTooBig,
			fmt.Errorf("%w: message of %d bytes over %d (csta.limits.max_frame_bytes)", ErrBadHeader, tooLarge.Length, tooLarge.Limit)}
	}
	return f, err
}

func (t *wsTransport) setReadDeadline(d time.Time) error { return t.ws.SetReadDeadline(d) }

func (t *wsTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := t.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	text := wsDialect(t.dialect.Load()) == dialectText
	for _, f := range frames {
		typ, msg := websocket.BinaryMessage, f
		if text {
			var err error
			if t.text, err = AppendTextFrame(t.text[:0], f); err != nil {
				return err
			}
			typ, msg = websocket.TextMessage, t.text
		}
		if err := t.ws.WriteMessage(typ, msg); err != nil {
			return err
		}
	}
	return nil
}

func (t *wsTransport) remoteAddr() string { return t.ws.RemoteAddr().String() }

func (t *wsTransport) closing(code closeCode, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closeCode == 0 { // the first cause is the one
		t.closeCode, t.closeReason = code, reason
	}
}

func (t *wsTransport) close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		code, reason := t.closeCode, t.closeReason
		t.mu.Unlock()
		if code == 0 {
			code = closeNormal
		}
		// Fails harmlessly when a Close was already sent (gorilla's own
		// 1002 on a bad frame, or the echo of the client's Close).
		t.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(int(code), closeReasonText(reason)), time.Now().Add(closeLinger))
		t.ws.Close()
	})
}

// closeReasonText fits reason into a Close frame: valid UTF-8 (RFC 6455
// §5.5.1) cut at a character boundary to maxCloseReason bytes.
func closeReasonText(reason string) string {
	reason = strings.ToValidUTF8(reason, "?")
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

const wsReadBufferSize = 1024

// wsWriteBufferPool lends every WebSocket connection its write buffer for
// the time of one message.
var wsWriteBufferPool sync.Pool

// WebSocketHandler serves CSTA over WebSocket; mount it at "/csta".
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := s.config()
		source := sourceOf(r.RemoteAddr)
		if ok, reason, limit := s.admit("websocket", source); !ok {
			s.refused("websocket", r.RemoteAddr, source, reason, limit)
			msg := "csta: server shutting down"
			if reason != "" {
				msg = fmt.Sprintf("csta: %s %d reached", strings.ReplaceAll(reason, "_", " "), limit)
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		up := websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			// Small sessions (issue 17): a small read buffer (a message
			// larger than it is read past it), and a write buffer taken
			// from a pool for each message.
			ReadBufferSize:  wsReadBufferSize,
			WriteBufferSize: 4096,
			WriteBufferPool: &wsWriteBufferPool,
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			s.release("websocket", source)
			s.log.Info("CSTA WebSocket upgrade failed", "source", source, "remote", r.RemoteAddr, "err", err)
			return // Upgrade already answered with an HTTP error
		}
		s.startConn(&wsTransport{ws: ws}, "websocket", source)
	})
}
