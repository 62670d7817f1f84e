// Package tcpproxy is a TCP proxy on 127.0.0.1 that a test controls: it
// forwards every connection to one target until the test partitions the
// path, and restores it later. It stands between a connector and its
// PostgreSQL in the split-brain test (issue 18).
//
// Two ways to cut the path, because they fail differently:
//
//   - Refuse is a crash on the far side: every current connection is reset
//     (RST, both sides) and every new one is reset as soon as it is
//     accepted. The client learns at once.
//   - Blackhole is a silent partition, the realistic case: nothing is
//     closed, nothing answers. Bytes sent on current connections are held
//     (not delivered, not refused), new connections are accepted and left
//     unanswered. The client learns only from its own deadlines. Restoring
//     (Forward) delivers what was held, as TCP retransmission would once
//     the network heals — so a write sent before the cut can still land
//     after it, which is what fencing tokens are for.
package tcpproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

const (
	Forward   Mode = iota // pass every byte both ways
	Refuse                // reset current and new connections
	Blackhole             // hold every byte, answer nothing
)

func (m Mode) String() string {
	switch m {
	case Forward:
		return "forward"
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// MaxConns bounds the connections one proxy holds; more are reset.
const MaxConns = 1024

// dialTimeout bounds connecting to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards connections accepted on its 127.0.0.1 address to its
// target.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	mode    Mode
	changed chan struct{} // closed and replaced at every mode change
	conns   map[*pair]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// pair is one proxied connection: the client's side and, once dialled,
// the target's.
type pair struct {
	client   net.Conn
	mu       sync.Mutex
	target   net.Conn // nil until dialled
	wasReset bool
}

// New listens on a free 127.0.0.1 port and forwards to target (host:port).
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("tcpproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	p := &Proxy{target: target, ln: ln, changed: make(chan struct{}), conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode is the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Conns is how many connections the proxy holds now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Set changes the mode. Refuse resets every current connection at once;
// Blackhole holds them; Forward releases what was held.
func (p *Proxy) Set(m Mode) {
	if m != Forward && m != Refuse && m != Blackhole {
		panic(fmt.Sprintf("tcpproxy: unknown mode %d", int(m)))
	}
	p.mu.Lock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	var reset []*pair
	if m == Refuse {
		for c := range p.conns {
			reset = append(reset, c)
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		c.reset()
	}
}

// ResetAll resets every current connection, whatever the mode (new ones
// are treated by the mode).
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	var all []*pair
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.reset()
	}
}

// Close stops listening, resets every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}

// gate waits until bytes may pass: nil in Forward, an error once the
// connection must end (Refuse, Close). In Blackhole it waits.
func (p *Proxy) gate() error {
	for {
		p.mu.Lock()
		mode, changed, closed := p.mode, p.changed, p.closed
		p.mu.Unlock()
		switch {
		case closed:
			return net.ErrClosed
		case mode == Forward:
			return nil
		case mode == Refuse:
			return errRefused
		}
		<-changed
	}
}

var errRefused = errors.New("tcpproxy: refused")

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: try again
			continue
		}
		c := &pair{client: nc}
		p.mu.Lock()
		if p.closed || len(p.conns) >= MaxConns {
			p.mu.Unlock()
			c.reset()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// serve dials the target once the gate opens and pumps both ways until
// both directions ended.
func (p *Proxy) serve(c *pair) {
	defer p.wg.Done()
	defer p.forget(c)
	if p.gate() != nil {
		c.reset()
		return
	}
	tc, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		c.reset()
		return
	}
	if !c.setTarget(tc) { // a Refuse or Close while dialling reset it
		resetConn(tc)
		return
	}
	clean := make(chan bool, 2)
	go func() { clean <- p.pump(tc, c.client) }()
	go func() { clean <- p.pump(c.client, tc) }()
	// A close passes on as a half close; anything else (a reset, a
	// refusal) ends both directions with a reset.
	if !<-clean {
		c.reset()
	}
	if !<-clean {
		c.reset()
	}
	c.client.Close()
	tc.Close()
}

// pump copies src to dst, holding each chunk (and the end) at the gate. It
// reports whether src ended cleanly and the end was passed on.
func (p *Proxy) pump(dst, src net.Conn) bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.gate() != nil {
				return false
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err == io.EOF {
			if p.gate() != nil {
				return false
			}
			dst.(*net.TCPConn).CloseWrite()
			return true
		}
		if err != nil {
			return false
		}
	}
}

func (p *Proxy) forget(c *pair) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// setTarget records the target's side; false when c was reset meanwhile.
func (c *pair) setTarget(tc net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wasReset {
		return false
	}
	c.target = tc
	return true
}

// reset ends both sides of c with an RST.
func (c *pair) reset() {
	c.mu.Lock()
	c.wasReset = true
	target := c.target
	c.mu.Unlock()
	resetConn(c.client)
	if target != nil {
		resetConn(target)
	}
}

func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // close sends RST, not FIN
	}
	nc.Close()
}
