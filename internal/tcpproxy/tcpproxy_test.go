package tcpproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/internal/testtool"
)

// echoServer answers every line with the same line, until closed.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 64)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

// read is the next line, or the error; it waits at most wait.
func (c *client) read(wait time.Duration) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(wait))
	line, err := c.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func (c *client) echo(line string) {
	c.t.Helper()
	c.send(line)
	if got, err := c.read(5 * time.Second); err != nil || got != line {
		c.t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// silent checks that nothing arrives for a while (a partition answers
// nothing: a wrong proxy fails this, a right one cannot).
func (c *client) silent() {
	c.t.Helper()
	if got, err := c.read(300 * time.Millisecond); !isTimeout(err) {
		c.t.Fatalf("read through a blackhole: %q, %v; want nothing", got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reset checks that the connection was reset (or closed), not left hanging.
func (c *client) reset() {
	c.t.Helper()
	got, err := c.read(5 * time.Second)
	if err == nil || isTimeout(err) {
		c.t.Fatalf("read on a refused connection: %q, %v; want a reset", got, err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && err != io.EOF {
		c.t.Fatalf("read on a refused connection: %v; want ECONNRESET", err)
	}
}

// Every proxy goroutine ends with Close (and the tests' own servers with
// their cleanups).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// refused checks that a new connection to addr is reset: at once (the
// kernel accepted it and the proxy reset it before the dial returned) or
// at the first read.
func refused(t *testing.T, addr string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v, want a reset", err)
		}
		return
	}
	defer nc.Close()
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	nc.Write([]byte("refused?\n")) // may fail already: reset
	c.reset()
}

func TestProxy(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, p *Proxy)
	}{
		{"forwards", func(t *testing.T, p *Proxy) {
			a, b := dial(t, p.Addr()), dial(t, p.Addr())
			a.echo("one")
			b.echo("two")
			a.echo(strings.Repeat("x", 200_000)) // larger than one chunk
		}},
		{"refuse resets current and new connections", func(t *testing.T, p *Proxy) {
			a := dial(t, p.Addr())
			a.echo("before")
			p.Set(Refuse)
			a.reset()
			refused(t, p.Addr())
			p.Set(Forward)
			dial(t, p.Addr()).echo("after")
		}},
		{"blackhole holds bytes both ways and delivers them on forward", func(t *testing.T, p *Proxy) {
			a := dial(t, p.Addr())
			a.echo("before")
			p.Set(Blackhole)
			a.send("held")
			a.silent()
			b := dial(t, p.Addr()) // accepted, never answered
			b.send("new")
			b.silent()
			if p.Mode() != Blackhole {
				t.Fatalf("mode %v", p.Mode())
			}
			p.Set(Forward)
			if got, err := a.read(5 * time.Second); err != nil || got != "held" {
				t.Fatalf("held line after forward: %q, %v", got, err)
			}
			if got, err := b.read(5 * time.Second); err != nil || got != "new" {
				t.Fatalf("new connection's line after forward: %q, %v", got, err)
			}
			a.echo("after")
		}},
		{"blackhole then refuse resets what was held", func(t *testing.T, p *Proxy) {
			a := dial(t, p.Addr())
			a.echo("before")
			p.Set(Blackhole)
			a.send("held")
			b := dial(t, p.Addr())
			b.send("new")
			a.silent()
			p.Set(Refuse)
			a.reset()
			b.reset()
		}},
		{"reset all keeps forwarding new connections", func(t *testing.T, p *Proxy) {
			a := dial(t, p.Addr())
			a.echo("before")
			p.ResetAll()
			a.reset()
			dial(t, p.Addr()).echo("after")
		}},
		{"a close passes on as a close", func(t *testing.T, p *Proxy) {
			a := dial(t, p.Addr())
			a.echo("before")
			a.nc.(*net.TCPConn).CloseWrite()
			if got, err := a.read(5 * time.Second); err != io.EOF {
				t.Fatalf("after a half close: %q, %v; want EOF (the echo server closes)", got, err)
			}
			waitFor(t, "the proxy to forget the connection", func() bool { return p.Conns() == 0 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newProxy(t, echoServer(t)))
		})
	}
}

func TestProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := newProxy(t, target)
	refused(t, p.Addr())
}

func TestProxyBadTarget(t *testing.T) {
	if _, err := New("no-port"); err == nil || !strings.Contains(err.Error(), `tcpproxy: target "no-port"`) {
		t.Fatalf("New(no-port): %v", err)
	}
}

func TestProxyCloseWhileHeld(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	a := dial(t, p.Addr())
	a.echo("before")
	p.Set(Blackhole)
	a.send("held")
	b := dial(t, p.Addr())
	b.send("new")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	a.reset()
	b.reset()
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 10*time.Second, what, cond)
}
