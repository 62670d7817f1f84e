package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/admin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startServer(t *testing.T, opts ...admin.Option) *admin.Server {
	t.Helper()
	s := admin.New("127.0.0.1:0", opts...)
	s.Handle("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t *testing.T, s *admin.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeHandlersAddedBeforeAndAfterStart(t *testing.T) {
	s := startServer(t)
	s.Handle("/late", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	base := "http://" + s.Addr().String()

	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/hello", http.StatusOK, "hello"},
		{"/late", http.StatusAccepted, ""},
		{"/nothing", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		if status, body := get(t, client, base+tt.path); status != tt.status || body != tt.body {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, status, body, tt.status, tt.body)
		}
	}
}

func TestAddr(t *testing.T) {
	s := admin.New("127.0.0.1:0")
	if s.Addr() != nil {
		t.Errorf("Addr before Start = %v, want nil", s.Addr())
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, s)
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Errorf("Addr = %v, want a bound loopback port", s.Addr())
	}
}

func TestStartErrors(t *testing.T) {
	taken := startServer(t)
	err := admin.New(taken.Addr().String()).Start()
	if err == nil || !strings.HasPrefix(err.Error(), "admin: ") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start on a taken port = %v, want an admin: bind error", err)
	}
	if err := taken.Start(); err == nil || err.Error() != "admin: already started" {
		t.Errorf("second Start = %v", err)
	}
}

func TestShutdownWithoutStartAndTwice(t *testing.T) {
	shutdown(t, admin.New("127.0.0.1:0"))
	s := startServer(t)
	shutdown(t, s) // and once more in Cleanup
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestLimits(t *testing.T) {
	limits := admin.DefaultLimits()
	limits.ReadHeaderTimeout = 100 * time.Millisecond
	limits.MaxHeaderBytes = 1024
	s := startServer(t, admin.WithLimits(limits))

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: x\r\n") // never finishes the headers
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("want the server to close the connection, got %v", err)
		}
	})
	t.Run("oversized headers are refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr().String()+"/hello", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 8<<10))
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status = %d, want 431", resp.StatusCode)
		}
	})
}
