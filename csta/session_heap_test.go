package csta

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Idle sessions (issue 17: at most 16 KiB of heap per idle CTI session).
// The clients run in a child process (this test binary again, with
// idleClientsEnv set), so that the figures measured here are the server's
// alone: heap and goroutine stacks of every connection that started an
// application session and then sits idle.

const (
	idleClientsEnv = "CSTA_IDLE_CLIENTS" // "tcp|websocket ADDR N MONITORS"
	idleSessions   = 1000
	// idleHeapProfileEnv names a file prefix: the benchmark then writes the
	// server's heap profile with the sessions open to PREFIX.KIND.MONITORS.
	idleHeapProfileEnv = "CSTA_IDLE_HEAP_PROFILE"
)

func init() {
	// Before TestMain: the child process only runs the clients.
	if spec := os.Getenv(idleClientsEnv); spec != "" {
		os.Exit(runIdleClients(spec))
	}
}

// runIdleClients opens the connections, starts a session on each (and
// monitors as many devices), says READY, and holds them until stdin closes.
func runIdleClients(spec string) int {
	var kind, addr string
	var n, monitors int
	if _, err := fmt.Sscan(spec, &kind, &addr, &n, &monitors); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		return 2
	}
	type conn interface {
		send(frame []byte) error
		read() ([]byte, error)
	}
	conns := make([]conn, 0, n)
	for i := range n {
		var c conn
		switch kind {
		case "tcp":
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			c = &idleTCP{nc: nc, fr: NewFrameReader(bufio.NewReaderSize(nc, 1024), MaxFrameSize)}
		case "websocket":
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/csta", nil)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			c = idleWS{ws}
		}
		reqs := []string{startEd6}
		for m := range monitors {
			reqs = append(reqs, fmt.Sprintf(`<MonitorStart %s><monitorObject><deviceObject>dev-%d-%d</deviceObject></monitorObject></MonitorStart>`, ns6, i, m))
		}
		for id, xml := range reqs {
			frame, _ := AppendFrame(nil, id+1, []byte(xml))
			if err := c.send(frame); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			b, err := c.read()
			if err != nil || !strings.Contains(string(b), "Response") {
				fmt.Fprintf(os.Stderr, "answer %q: %v\n", b, err)
				return 1
			}
		}
		conns = append(conns, c)
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(conns)
	return 0
}

type idleTCP struct {
	nc net.Conn
	fr *FrameReader
}

func (c *idleTCP) send(frame []byte) error { _, err := c.nc.Write(frame); return err }
func (c *idleTCP) read() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.fr.ReadFrame()
	return f.XML, err
}

type idleWS struct{ ws *websocket.Conn }

func (c idleWS) send(frame []byte) error { return c.ws.WriteMessage(websocket.BinaryMessage, frame) }
func (c idleWS) read() ([]byte, error) {
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ws.ReadMessage()
	return b, err
}

// serverFootprint is what the server process holds: Go heap in use, stack
// in use, and goroutines.
type serverFootprint struct {
	heap, stack uint64
	goroutines  int
}

func measureFootprint() serverFootprint {
	// Several cycles: a goroutine's stack is shrunk by half at most once a
	// cycle when it uses under a quarter of it, and sync.Pools empty over two.
	for range 8 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return serverFootprint{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// idleSessionFootprint starts n idle sessions (with monitors each) over
// kind in a child process and returns the server's footprint per session.
func idleSessionFootprint(tb testing.TB, kind string, n, monitors int) (heap, stack, goroutines float64) {
	cfg := testConfig()
	cfg.MaxConnections = n + 10
	cfg.MaxConnectionsPerSource = n + 10
	cfg.MaxSessionDuration = time.Hour
	// A real handler: a connection's logger pre-formats its attributes.
	s := NewServer(cfg, noopService{}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	addr := s.Addr().String()
	var hs *httptest.Server
	if kind == "websocket" {
		mux := http.NewServeMux()
		mux.Handle("/csta", s.WebSocketHandler())
		hs = httptest.NewServer(mux)
		addr = strings.TrimPrefix(hs.URL, "http://")
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if hs != nil {
			hs.Close()
		}
	}()

	before := measureFootprint()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d", idleClientsEnv, kind, addr, n, monitors))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "READY\n" {
		tb.Fatalf("clients said %q: %v", line, err)
	}
	// Every answer is read, but a request's goroutine may still be on its
	// way out: wait until the goroutines settle.
	after := measureFootprint()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		next := measureFootprint()
		if next.goroutines == after.goroutines {
			break
		}
		after = next
	}
	if path := os.Getenv(idleHeapProfileEnv); path != "" {
		// Where the bytes are: go tool pprof -sample_index=inuse_space FILE
		f, err := os.Create(fmt.Sprintf("%s.%s.%d", path, kind, monitors))
		if err != nil {
			tb.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if got := s.Stats().Connections; got != n {
		tb.Fatalf("%d connections open, want %d", got, n)
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return per(after.heap, before.heap), per(after.stack, before.stack),
		float64(after.goroutines-before.goroutines) / float64(n)
}

// BenchmarkIdleSessionHeap reports the server's Go heap and goroutine
// stacks per idle CTI session, over 1,000 real connections. One measurement
// per run: use -benchtime=1x.
//
//	go test -run='^$' -bench=IdleSessionHeap -benchtime=1x ./csta/
func BenchmarkIdleSessionHeap(b *testing.B) {
	for _, kind := range []string{"tcp", "websocket"} {
		for _, monitors := range []int{0, 1} {
			b.Run(fmt.Sprintf("transport=%s/monitors=%d", kind, monitors), func(b *testing.B) {
				var heap, stack, goroutines float64
				for b.Loop() {
					heap, stack, goroutines = idleSessionFootprint(b, kind, idleSessions, monitors)
				}
				b.ReportMetric(heap, "heap-B/session")
				b.ReportMetric(stack, "stack-B/session")
				b.ReportMetric(heap+stack, "B/session")
				b.ReportMetric(goroutines, "goroutines/session")
			})
		}
	}
}

// TestIdleSessionGoroutines holds an idle session to its read and write
// loops: no goroutine per timer, per monitor or per request left behind.
func TestIdleSessionGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 connections in a child process")
	}
	for _, kind := range []string{"tcp", "websocket"} {
		t.Run(kind, func(t *testing.T) {
			_, _, goroutines := idleSessionFootprint(t, kind, 200, 2)
			if goroutines != 2 {
				t.Errorf("%s goroutines per idle session, want 2 (read and write loops)", strconv.FormatFloat(goroutines, 'f', 2, 64))
			}
		})
	}
}
