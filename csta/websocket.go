package csta

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket transport: the same protocol at /csta on the admin listener, one
// binary message carrying one framed message exactly as over TCP
// (CONTRACT.md "Wire formats").

type wsTransport struct {
	ws        *websocket.Conn
	closeOnce sync.Once
}

func (t *wsTransport) readFrame(maxSize int) (Frame, error) {
	t.ws.SetReadLimit(int64(maxSize))
	_, b, err := t.ws.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			// The message cannot be answered: its invoke ID was never parsed as a frame.
			return Frame{}, errors.Join(ErrBadHeader, err)
		}
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			return Frame{}, errEOF
		}
		return Frame{}, err
	}
	return ParseFrame(b, maxSize)
}

func (t *wsTransport) setReadDeadline(d time.Time) error { return t.ws.SetReadDeadline(d) }

func (t *wsTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := t.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	for _, f := range frames {
		if err := t.ws.WriteMessage(websocket.BinaryMessage, f); err != nil {
			return err
		}
	}
	return nil
}

func (t *wsTransport) remoteAddr() string { return t.ws.RemoteAddr().String() }

func (t *wsTransport) close() {
	t.closeOnce.Do(func() {
		t.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		t.ws.Close()
	})
}

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
			ReadBufferSize:   4096,
			WriteBufferSize:  4096,
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
