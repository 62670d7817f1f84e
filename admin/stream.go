package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// StreamLimits bound the live event stream at /api/v1/stream.
type StreamLimits struct {
	MaxClients   int           // connections beyond this get 503
	Queue        int           // events waiting per client; a client whose queue is full is dropped
	PingInterval time.Duration // how often the server pings
	PongWait     time.Duration // a client silent this long (no pong, no message) is dropped; > PingInterval
	WriteWait    time.Duration // one message's write, snapshot included
}

// DefaultStreamLimits suit a handful of dashboards.
func DefaultStreamLimits() StreamLimits {
	return StreamLimits{
		MaxClients:   64,
		Queue:        256,
		PingInterval: 30 * time.Second,
		PongWait:     60 * time.Second,
		WriteWait:    10 * time.Second,
	}
}

// streamReadLimit bounds what a client may send: the stream is one-way, a
// client only answers pings and closes.
const streamReadLimit = 512

// Snapshot is the first message on the stream: the state every later Event
// changes.
type Snapshot struct {
	Kind    string    `json:"kind"` // "snapshot"
	At      time.Time `json:"at"`
	Agents  []Agent   `json:"agents"`
	Devices []Device  `json:"devices"`
	Phones  []Phone   `json:"phones"`
	Links   []Link    `json:"links"`
}

// stream fans events out to WebSocket clients. Each client has one goroutine
// that is its only writer (the handler's own) and one reader that consumes
// pongs and notices the client leave. Lock order: stream.mu only; nothing is
// written to a connection while it is held.
type stream struct {
	server   *Server
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	closed  bool

	shutdown  chan struct{} // closed by close
	closeOnce sync.Once
	running   sync.WaitGroup // one per client handler
}

type streamClient struct {
	remote   string
	queue    chan []byte   // encoded events, bounded by StreamLimits.Queue
	kicked   chan struct{} // closed when Publish found the queue full
	kickOnce sync.Once
}

func (c *streamClient) kick() { c.kickOnce.Do(func() { close(c.kicked) }) }

func newStream(s *Server) *stream {
	st := &stream{
		server:   s,
		clients:  make(map[*streamClient]struct{}),
		shutdown: make(chan struct{}),
	}
	st.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.limits.ReadHeaderTimeout,
		ReadBufferSize:   1 << 10,
		WriteBufferSize:  4 << 10,
		CheckOrigin:      st.checkOrigin,
	}
	return st
}

// checkOrigin lets in clients without an Origin (not browsers; they still
// need the token), pages from the same host, and the configured origins. It
// keeps another site's page from using a browser's ?token= URL.
func (st *stream) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, allowed := range st.server.origins {
		if strings.EqualFold(origin, allowed) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// serve is /api/v1/stream. The token comes in the Authorization header or,
// for browsers (which cannot set headers on a WebSocket), as ?token=.
func (st *stream) serve(w http.ResponseWriter, r *http.Request) {
	s := st.server
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	if s.source == nil {
		writeError(w, http.StatusServiceUnavailable, "no source configured", "")
		return
	}
	client := &streamClient{
		remote: r.RemoteAddr,
		queue:  make(chan []byte, max(s.streamLimits.Queue, 1)),
		kicked: make(chan struct{}),
	}
	if status, message := st.add(client); status != 0 {
		writeError(w, status, message, "")
		return
	}
	defer st.running.Done()
	defer st.remove(client)
	conn, err := st.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.metrics.streamClients.Inc()
	defer s.metrics.streamClients.Dec()
	s.logger.Debug("admin: stream client connected", "remote", client.remote)
	st.run(conn, client)
	conn.Close()
}

// add registers client before its snapshot is taken, so an event published
// meanwhile is queued after the snapshot rather than lost (at worst the
// client sees a change twice; events carry whole views, so that is harmless).
func (st *stream) add(client *streamClient) (status int, message string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return http.StatusServiceUnavailable, "shutting down"
	}
	if len(st.clients) >= st.server.streamLimits.MaxClients {
		st.server.metrics.streamRejected.Inc()
		st.server.logger.Warn("admin: stream client refused, at the client limit", "remote", client.remote, "limit", st.server.streamLimits.MaxClients)
		return http.StatusServiceUnavailable, "too many stream clients"
	}
	st.clients[client] = struct{}{}
	st.running.Add(1)
	return 0, ""
}

func (st *stream) remove(client *streamClient) {
	st.mu.Lock()
	delete(st.clients, client)
	st.mu.Unlock()
}

// run is the connection's only writer; it returns when the client leaves, is
// too slow, stops answering pings, or the server shuts down.
func (st *stream) run(conn *websocket.Conn, client *streamClient) {
	s := st.server
	limits := s.streamLimits
	readerDone := make(chan struct{})
	pings := make(chan string, 1)
	go func() {
		defer close(readerDone)
		conn.SetReadLimit(streamReadLimit)
		conn.SetReadDeadline(time.Now().Add(limits.PongWait))
		conn.SetPongHandler(func(string) error {
			return conn.SetReadDeadline(time.Now().Add(limits.PongWait))
		})
		// The writer answers pings and closes; this goroutine never writes.
		conn.SetPingHandler(func(data string) error {
			select {
			case pings <- data:
			default: // one pending pong is enough
			}
			return nil
		})
		conn.SetCloseHandler(func(int, string) error { return nil })
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() {
		conn.Close() // ends the reader
		<-readerDone
	}()

	write := func(message []byte) bool {
		conn.SetWriteDeadline(time.Now().Add(limits.WriteWait))
		if err := conn.WriteMessage(websocket.TextMessage, message); err != nil {
			s.logger.Debug("admin: stream write failed", "remote", client.remote, "error", err)
			return false
		}
		return true
	}
	closeWith := func(code int, text string) {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(limits.WriteWait))
	}

	snapshot, err := json.Marshal(st.snapshot())
	if err != nil {
		s.logger.Error("admin: stream snapshot not encodable", "error", err)
		closeWith(websocket.CloseInternalServerErr, "")
		return
	}
	if !write(snapshot) {
		return
	}
	ping := time.NewTicker(limits.PingInterval)
	defer ping.Stop()
	for {
		// A dropped client goes at once, not after the backlog that got it dropped.
		select {
		case <-client.kicked:
			closeWith(websocket.ClosePolicyViolation, "too slow")
			return
		default:
		}
		select {
		case <-client.kicked:
			closeWith(websocket.ClosePolicyViolation, "too slow")
			return
		case <-st.shutdown:
			closeWith(websocket.CloseGoingAway, "shutting down")
			return
		case <-readerDone:
			closeWith(websocket.CloseNormalClosure, "")
			s.logger.Debug("admin: stream client left", "remote", client.remote)
			return
		case data := <-pings:
			if err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(limits.WriteWait)); err != nil {
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(limits.WriteWait)); err != nil {
				return
			}
		case message := <-client.queue:
			if !write(message) {
				return
			}
		}
	}
}

func (st *stream) snapshot() Snapshot {
	src := st.server.source
	return Snapshot{
		Kind:    "snapshot",
		At:      time.Now().UTC(),
		Agents:  sortedAgents(src.Agents()),
		Devices: sortedDevices(src.Devices()),
		Phones:  sortedPhones(src.Phones()),
		Links:   sortedLinks(src.Links()),
	}
}

// Publish queues ev for every stream client and never blocks: a client whose
// queue is full is disconnected (and logged), the others are not held up.
// Events reach each client in the order Publish was called; callers that
// publish from several goroutines order among themselves. A zero At is set
// to now.
func (s *Server) Publish(ev Event) {
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	st := s.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.clients) == 0 {
		return
	}
	message, err := json.Marshal(ev)
	if err != nil {
		s.logger.Error("admin: event not encodable", "kind", ev.Kind, "error", err)
		return
	}
	for client := range st.clients {
		select {
		case client.queue <- message:
		default:
			delete(st.clients, client)
			client.kick()
			s.metrics.streamDropped.Inc()
			s.logger.Warn("admin: stream client dropped, too slow", "remote", client.remote, "queue", cap(client.queue))
		}
	}
}

// close makes every stream client go and refuses new ones; wait waits for
// their handlers.
func (st *stream) close() {
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
	st.closeOnce.Do(func() { close(st.shutdown) })
}

func (st *stream) wait() { st.running.Wait() }
