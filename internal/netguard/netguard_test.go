package netguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// guard bounds a wait that should end promptly; reaching it is a failure,
// not a timing assertion.
const guard = 30 * time.Second

// echoServer serves l: each connection is echoed until it ends. closed gets
// each connection's last Read error.
type echoServer struct {
	l      *Listener
	wg     sync.WaitGroup
	closed chan error
	refuse atomic.Int64
}

func startEcho(t *testing.T, c Config) *echoServer {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{closed: make(chan error, 1024)}
	prev := c.OnRefuse
	c.OnRefuse = func(reason string) {
		e.refuse.Add(1)
		if prev != nil {
			prev(reason)
		}
	}
	e.l = NewListener(inner, c)
	e.wg.Go(func() {
		for {
			conn, err := e.l.Accept()
			if err != nil {
				return
			}
			e.wg.Go(func() {
				defer conn.Close()
				buf := make([]byte, 512)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						conn.Close() // before reporting: the slot is free when the test hears
						e.closed <- err
						return
					}
					if _, err := conn.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		e.l.Close()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.l.Addr().String() }

// dialFrom connects from the local IP from ("" for any).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: guard}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// served says whether the server echoes on c (true) or closed it (false).
func served(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetDeadline(time.Now().Add(guard))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return false
		}
		t.Fatalf("reading the echo: %v", err)
	}
	return string(buf) == "ping"
}

func TestListenerLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		budget int // 0: none
		// conns are the local IPs of successive connections; want says
		// which of them are served.
		conns []string
		want  []bool
	}{
		{"max conns", Limits{MaxConns: 2}, 0,
			[]string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, []bool{true, true, false}},
		{"per source", Limits{MaxConnsPerSource: 2}, 0,
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"}, []bool{true, true, false, true}},
		{"budget", Limits{}, 2, // half the budget: 1
			[]string{"127.0.0.1", "127.0.0.2"}, []bool{true, false}},
		{"max conns clamped to half the budget", Limits{MaxConns: 100}, 6,
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}, []bool{true, true, true, false}},
		{"no limits", Limits{}, 0,
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}, []bool{true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b *Budget
			if tc.budget > 0 {
				b = NewBudget(tc.budget)
			}
			e := startEcho(t, Config{Name: "test", Limits: tc.limits, Budget: b})
			refused := 0
			for i, from := range tc.conns {
				c := dialFrom(t, from, e.addr())
				if got := served(t, c); got != tc.want[i] {
					t.Fatalf("connection %d from %s served = %v, want %v", i, from, got, tc.want[i])
				}
				if !tc.want[i] {
					refused++
				}
			}
			if got := e.refuse.Load(); got != int64(refused) {
				t.Errorf("OnRefuse called %d times, want %d", got, refused)
			}
			if got, want := e.l.Gate().Open(), len(tc.conns)-refused; got != want {
				t.Errorf("Open() = %d, want %d", got, want)
			}
			if b != nil && b.InUse() != len(tc.conns)-refused {
				t.Errorf("budget in use %d, want %d", b.InUse(), len(tc.conns)-refused)
			}
		})
	}
}

func TestRefusalReasons(t *testing.T) {
	tests := []struct {
		limits Limits
		budget *Budget
		want   string
	}{
		{Limits{MaxConns: 1}, nil, RefuseMaxConns},
		{Limits{MaxConnsPerSource: 1}, nil, RefusePerSource},
		{Limits{MaxConns: 5}, func() *Budget { b := NewBudget(100); b.used.Store(100); return b }(), RefuseBudget},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			reasons := make(chan string, 4)
			e := startEcho(t, Config{Name: "test", Limits: tc.limits, Budget: tc.budget,
				OnRefuse: func(r string) { reasons <- r }})
			if tc.want != RefuseBudget {
				if !served(t, dialFrom(t, "", e.addr())) {
					t.Fatal("the first connection was refused")
				}
			}
			if served(t, dialFrom(t, "", e.addr())) {
				t.Fatal("a connection over the limit was served")
			}
			if got := <-reasons; got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// A shared Gate caps two listeners together, and a slot freed on one is
// taken on the other.
func TestSharedGateAndRelease(t *testing.T) {
	b := NewBudget(1000)
	g := NewGate(Limits{MaxConns: 2}, b)
	e1 := startEcho(t, Config{Name: "one", Gate: g})
	e2 := startEcho(t, Config{Name: "two", Gate: g})
	a := dialFrom(t, "", e1.addr())
	if !served(t, a) || !served(t, dialFrom(t, "", e2.addr())) {
		t.Fatal("connections under the cap refused")
	}
	if served(t, dialFrom(t, "", e2.addr())) {
		t.Fatal("third connection across the shared gate served")
	}
	a.Close()
	if err := <-e1.closed; !errors.Is(err, io.EOF) {
		t.Fatalf("server side ended with %v", err)
	}
	if g.Open() != 1 {
		t.Fatalf("Open() = %d after a close, want 1", g.Open())
	}
	if !served(t, dialFrom(t, "", e2.addr())) {
		t.Fatal("a freed slot was not taken again")
	}
	if b.InUse() != 2 {
		t.Errorf("budget in use %d, want 2", b.InUse())
	}
}

func TestConnCloseReleasesOnce(t *testing.T) {
	b := NewBudget(10)
	g := NewGate(Limits{}, b)
	server, client := net.Pipe()
	defer client.Close()
	if r := g.admit(netip.Addr{}); r != "" {
		t.Fatal(r)
	}
	c := &Conn{Conn: server, gate: g}
	for range 3 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if g.Open() != 0 || b.InUse() != 0 {
		t.Fatalf("after Close: open %d, budget %d", g.Open(), b.InUse())
	}
}

func TestIdleTimeout(t *testing.T) {
	e := startEcho(t, Config{Name: "test", Limits: Limits{IdleTimeout: 20 * time.Millisecond}})
	c := dialFrom(t, "", e.addr())
	if !served(t, c) {
		t.Fatal("not served")
	}
	err := <-e.closed // the idle timeout, however long the machine takes
	if !errors.Is(err, ErrIdle) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read ended with %v, want ErrIdle (net.ErrClosed)", err)
	}
	c.SetReadDeadline(time.Now().Add(guard))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the peer of an idle-closed connection read data")
	}
	if n := e.l.Gate().Open(); n != 0 {
		t.Fatalf("Open() = %d after the idle close", n)
	}
}

// A read deadline set by the user, earlier than the idle timeout, gives the
// user its timeout; the connection stays open.
func TestUserDeadlineBeforeIdle(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{Limits: Limits{IdleTimeout: time.Hour}})
	defer l.Close()
	client := dialFrom(t, "", l.Addr().String())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err = sc.Read(make([]byte, 1))
	if !isTimeout(err) || errors.Is(err, ErrIdle) {
		t.Fatalf("Read = %v, want the user's timeout", err)
	}
	sc.SetReadDeadline(time.Time{})
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read after the user's timeout: %v", err)
	}
}

// fakeListener returns errs in turn, then a connection (or blocks until
// closed).
type fakeListener struct {
	mu     sync.Mutex
	errs   []error
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		if len(f.errs) > 1 || err != errForever {
			f.errs = f.errs[1:]
		}
		f.mu.Unlock()
		if err == errForever {
			return nil, syscall.EMFILE
		}
		return nil, err
	}
	c := f.conn
	f.conn = nil
	f.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-f.closed
	return nil, net.ErrClosed
}

var errForever = errors.New("EMFILE for ever")

func (f *fakeListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func opErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestAcceptErrors(t *testing.T) {
	permanent := errors.New("listener broke")
	tests := []struct {
		name    string
		errs    []error
		wantErr error // nil: a connection is returned
	}{
		{"EMFILE then a connection", []error{opErr(syscall.EMFILE), opErr(syscall.EMFILE), opErr(syscall.EMFILE)}, nil},
		{"ENFILE, ECONNABORTED, ENOBUFS, ENOMEM", []error{opErr(syscall.ENFILE), opErr(syscall.ECONNABORTED), opErr(syscall.ENOBUFS), opErr(syscall.ENOMEM)}, nil},
		{"timeout", []error{&net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}}, nil},
		{"permanent", []error{permanent}, permanent},
		{"closed underneath", []error{net.ErrClosed}, net.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			f := &fakeListener{errs: tc.errs, conn: server, closed: make(chan struct{})}
			var logged strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logged.Write(p)
			}), nil))
			l := NewListener(f, Config{Name: "fake", Log: log})
			defer l.Close()
			c, err := l.Accept()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Accept = %v, want a connection", err)
				}
				c.Close()
				if l.Err() != nil {
					t.Errorf("Err() = %v while serving", l.Err())
				}
				mu.Lock()
				defer mu.Unlock()
				if n := strings.Count(logged.String(), "accept failed; retrying"); n != len(tc.errs) {
					t.Errorf("%d retries logged, want %d:\n%s", n, len(tc.errs), logged.String())
				}
				if !strings.Contains(logged.String(), "listener=fake") {
					t.Errorf("the log does not name the listener:\n%s", logged.String())
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Accept = %v, want %v", err, tc.wantErr)
			}
			if !errors.Is(l.Err(), tc.wantErr) || !strings.Contains(l.Err().Error(), "fake") {
				t.Errorf("Err() = %v, want %v naming the listener", l.Err(), tc.wantErr)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// Close ends an Accept that is backing off, with net.ErrClosed and no Err.
func TestCloseDuringBackoff(t *testing.T) {
	f := &fakeListener{errs: []error{errForever}, closed: make(chan struct{})}
	retrying := make(chan struct{}, 1)
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		select {
		case retrying <- struct{}{}:
		default:
		}
		return len(p), nil
	}), nil))
	l := NewListener(f, Config{Name: "fake", Log: log})
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	<-retrying
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
	if l.Err() != nil {
		t.Fatalf("Err() = %v after Close", l.Err())
	}
}

func TestTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{opErr(syscall.EMFILE), true},
		{opErr(syscall.ENFILE), true},
		{opErr(syscall.ECONNABORTED), true},
		{opErr(syscall.ENOBUFS), true},
		{opErr(syscall.ENOMEM), true},
		{&net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, true},
		{opErr(syscall.EBADF), false},
		{opErr(syscall.EINVAL), false},
		{net.ErrClosed, false},
		{fmt.Errorf("wrapped: %w", net.ErrClosed), false},
		{errors.New("other"), false},
	}
	for _, tc := range tests {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBudgetFor(t *testing.T) {
	tests := []struct {
		limit uint64
		want  int
	}{
		{64, 32},          // reserve 64 would leave nothing: half
		{256, 192},        // reserve 64
		{1024, 896},       // reserve 128 (1/8)
		{1 << 20, 917504}, // reserve 1/8
		{^uint64(0), (1 << 30) - (1<<30)/8},
		{1, 1},
	}
	for _, tc := range tests {
		if got := budgetFor(tc.limit); got != tc.want {
			t.Errorf("budgetFor(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

func TestBudget(t *testing.T) {
	b := NewBudget(2)
	if !b.Acquire() || !b.Acquire() || b.Acquire() {
		t.Fatal("a budget of 2 did not give exactly 2")
	}
	b.Release()
	if !b.Acquire() {
		t.Fatal("a released part was not given again")
	}
	var nb *Budget
	if !nb.Acquire() || nb.Cap() <= 0 || nb.InUse() != 0 {
		t.Fatal("a nil budget must cap nothing")
	}
	nb.Release()
}

func TestProcessBudget(t *testing.T) {
	b, limit, err := ProcessBudget()
	if err != nil {
		t.Fatal(err)
	}
	if limit == 0 || b.Cap() <= 0 || uint64(b.Cap()) >= limit {
		t.Fatalf("budget %d for a limit of %d", b.Cap(), limit)
	}
}

// fakePacketConn fails its first reads with errs.
type fakePacketConn struct {
	net.PacketConn
	mu   sync.Mutex
	errs []error
}

func (f *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return 0, nil, err
	}
	f.mu.Unlock()
	return f.PacketConn.ReadFrom(b)
}

func TestPacketConnRetries(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePacketConn{PacketConn: pc, errs: []error{
		&net.OpError{Op: "read", Err: os.NewSyscallError("recvfrom", syscall.ENOBUFS)},
		&net.OpError{Op: "read", Err: os.NewSyscallError("recvfrom", syscall.ECONNREFUSED)},
	}}
	g := NewPacketConn(f, "udp", nil)
	defer g.Close()
	sender, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	if _, err := sender.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, err := g.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("ReadFrom = %q, %v", buf[:n], err)
	}

	// A deadline the caller set is its own: the timeout comes back.
	g.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, _, err := g.ReadFrom(buf); !isTimeout(err) {
		t.Fatalf("ReadFrom past a deadline = %v", err)
	}
	g.SetReadDeadline(time.Time{})

	done := make(chan error, 1)
	go func() { _, _, err := g.ReadFrom(buf); done <- err }()
	g.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom after Close = %v", err)
	}
}

// Close ends a ReadFrom that is backing off.
func TestPacketConnCloseDuringBackoff(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 1000)
	for i := range errs {
		errs[i] = &net.OpError{Op: "read", Err: os.NewSyscallError("recvfrom", syscall.ENOMEM)}
	}
	retrying := make(chan struct{}, 1)
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		select {
		case retrying <- struct{}{}:
		default:
		}
		return len(p), nil
	}), nil))
	g := NewPacketConn(&fakePacketConn{PacketConn: pc, errs: errs}, "udp", log)
	done := make(chan error, 1)
	go func() { _, _, err := g.ReadFrom(make([]byte, 8)); done <- err }()
	<-retrying
	g.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom after Close = %v", err)
	}
}

// ---- real EMFILE, in a child process with a lowered descriptor limit ----

const childEnv = "NETGUARD_EMFILE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(emfileChild())
	}
	os.Exit(m.Run())
}

// emfileChild lowers its descriptor limit to 64, serves a guarded echo
// listener without caps, prints "addr <host:port>", "EMFILE" once accept
// failed so, and exits when its stdin closes, printing "stopped <err>" if
// the listener ever stopped.
func emfileChild() int {
	rl := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Println("setrlimit", err)
		return 1
	}
	var once sync.Once
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "errno=EMFILE") {
			once.Do(func() { fmt.Println("EMFILE") })
		}
		return len(p), nil
	}), nil))
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen", err)
		return 1
	}
	l := NewListener(inner, Config{Name: "child", Log: log})
	fmt.Println("addr", l.Addr())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					fmt.Println("stopped", err)
				}
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	l.Close()
	if err := l.Err(); err != nil {
		fmt.Println("stopped", err)
		return 1
	}
	return 0
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the child ended early")
			}
			return l
		case <-ctx.Done():
			t.Fatal("no word from the child")
		}
		return ""
	}
	addr, ok := strings.CutPrefix(next(), "addr ")
	if !ok {
		t.Fatalf("child: want its address")
	}

	// The flood: more connections than the child has descriptors. The
	// kernel completes them in the listen queue; the child's accept fails
	// with EMFILE once its table is full.
	var flood []net.Conn
	for range 200 {
		c, err := net.DialTimeout("tcp", addr, guard)
		if err != nil {
			t.Fatalf("flood dial: %v", err)
		}
		flood = append(flood, c)
	}
	if l := next(); l != "EMFILE" {
		t.Fatalf("child said %q, want EMFILE", l)
	}
	for _, c := range flood {
		c.Close()
	}

	// After the flood, a new client is served: the accept loop backed off
	// instead of returning.
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !served(t, c) {
		t.Fatal("a client after the flood was not served")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	for l := range lines {
		if strings.HasPrefix(l, "stopped") {
			t.Fatalf("child: %s", l)
		}
	}
}
