// Package udpphones is a crowd of light SIP phones for load tests: N
// phones on a few UDP sockets that subscribe to as-feature-event, answer
// every request 200 (NOTIFYs, liveness OPTIONS) and hand each NOTIFY to
// the caller with its arrival time. A phone parses only what it needs
// (start line, Call-ID, Content-Type), so that thousands of them cost the
// test little next to what it measures. Used by the NOTIFY benchmark of
// phonesync and by connector-bench (exact NOTIFY arrival times, which sipp
// does not give).
package udpphones

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the crowd.
type Config struct {
	N       int                // phones
	Sockets int                // UDP sockets they share (phone i on socket i % Sockets); 0: min(N, 4)
	Server  string             // the notifier's UDP address, host:port
	DN      func(i int) string // phone i's number (the user part of its URIs)
	Tag     string             // Call-ID prefix, "<Tag>-<i>", and From-tag / branch stem
	Window  int                // SubscribeAll: phones at most waiting for their full state; 0: 64
	Resend  time.Duration      // SubscribeAll: resend a SUBSCRIBE without full state after this; 0: 2 s
	Notify  func(n Notify)     // called for every NOTIFY, on the socket's reader goroutine
}

// Notify is one NOTIFY a phone got.
type Notify struct {
	Phone     int    // the phone's index
	FullState bool   // a multipart body (the full state: the first one after SUBSCRIBE, or a coalesced one)
	Body      []byte // valid during the call only
	At        int64  // arrival, unix ns
}

// Phones is a started crowd; Close stops it.
type Phones struct {
	cfg    Config
	server *net.UDPAddr
	conns  []*net.UDPConn
	wg     sync.WaitGroup

	initSeen []atomic.Bool  // phone i got its full-state NOTIFY
	sentAt   []atomic.Int64 // when phone i's latest SUBSCRIBE left (unix ns)
	attempt  []atomic.Int32
	initDone chan int // phone indexes, as their full state arrives
	initial  atomic.Int64
	rejected atomic.Int64 // non-2xx answers to SUBSCRIBE
	resends  atomic.Int64
}

// Start opens the sockets and their readers.
func Start(cfg Config) (*Phones, error) {
	sa, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Sockets <= 0 {
		cfg.Sockets = min(cfg.N, 4)
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.Resend <= 0 {
		cfg.Resend = 2 * time.Second
	}
	p := &Phones{cfg: cfg, server: sa, initSeen: make([]atomic.Bool, cfg.N), sentAt: make([]atomic.Int64, cfg.N),
		attempt: make([]atomic.Int32, cfg.N), initDone: make(chan int, cfg.N)}
	for range cfg.Sockets {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("udpphones: socket: %w", err)
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		p.conns = append(p.conns, c)
	}
	for _, c := range p.conns {
		p.wg.Go(func() { p.readLoop(c) })
	}
	return p, nil
}

// Close closes the sockets and waits for their readers.
func (p *Phones) Close() {
	for _, c := range p.conns {
		c.Close()
	}
	p.wg.Wait()
}

// Initial, Rejected and Resends count the phones with their full state,
// the non-2xx answers to SUBSCRIBE and the SUBSCRIBEs sent again.
func (p *Phones) Initial() int64  { return p.initial.Load() }
func (p *Phones) Rejected() int64 { return p.rejected.Load() }
func (p *Phones) Resends() int64  { return p.resends.Load() }

// Subscribe sends phone i's initial SUBSCRIBE (a new branch per attempt).
func (p *Phones) Subscribe(i int) {
	c := p.conns[i%len(p.conns)]
	port := c.LocalAddr().(*net.UDPAddr).Port
	dn, tag := p.cfg.DN(i), p.cfg.Tag
	a := p.attempt[i].Add(1)
	msg := fmt.Sprintf("SUBSCRIBE sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s-%d-%d;rport\r\n"+
		"From: <sip:%s@127.0.0.1>;tag=%st%d\r\n"+
		"To: <sip:%s@127.0.0.1>\r\n"+
		"Call-ID: %s-%d\r\n"+
		"CSeq: %d SUBSCRIBE\r\n"+
		"Contact: <sip:%s@127.0.0.1:%d>\r\n"+
		"Max-Forwards: 70\r\n"+
		"Event: as-feature-event\r\n"+
		"Accept: application/x-as-feature-event+xml\r\n"+
		"Expires: 3600\r\n"+
		"Content-Length: 0\r\n\r\n",
		dn, p.server, port, tag, i, a, dn, tag, i, dn, tag, i, a, dn, port)
	p.sentAt[i].Store(time.Now().UnixNano())
	_, _ = c.WriteToUDP([]byte(msg), p.server)
}

// SubscribeAll subscribes every phone, at most Config.Window of them
// waiting for their full state at a time, resending a SUBSCRIBE that got
// no full state within Config.Resend, until all have it or ctx ends.
func (p *Phones) SubscribeAll(ctx context.Context) error {
	sem := make(chan struct{}, p.cfg.Window)
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // releases window slots as full states arrive
		for range p.cfg.N {
			select {
			case <-p.initDone:
				<-sem
			case <-stop:
				return
			}
		}
	})
	wg.Go(func() { // resends
		t := time.NewTicker(p.cfg.Resend / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				for i := range int(sent.Load()) {
					if !p.initSeen[i].Load() && now.UnixNano()-p.sentAt[i].Load() > int64(p.cfg.Resend) {
						p.resends.Add(1)
						p.Subscribe(i)
					}
				}
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	fail := func(err error) error {
		return fmt.Errorf("udpphones: %d of %d phones have their full state (%d resends, %d rejected): %w",
			p.initial.Load(), p.cfg.N, p.resends.Load(), p.rejected.Load(), err)
	}
	for i := range p.cfg.N {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		p.Subscribe(i)
		sent.Store(int64(i + 1))
	}
	for p.initial.Load() < int64(p.cfg.N) {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (p *Phones) readLoop(c *net.UDPConn) {
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 1024)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		rx := time.Now().UnixNano()
		out = p.handle(buf[:n], rx, out[:0])
		if len(out) > 0 {
			_, _ = c.WriteToUDP(out, from)
		}
	}
}

// handle takes one datagram and returns the answer to send (none for
// responses).
func (p *Phones) handle(msg []byte, rx int64, out []byte) []byte {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	startLine, headers, _ := bytes.Cut(head, []byte("\r\n"))
	var callID, ctype []byte
	isResponse := bytes.HasPrefix(startLine, []byte("SIP/2.0 "))
	if !isResponse {
		out = append(out, "SIP/2.0 200 OK\r\n"...)
	}
	for len(headers) > 0 {
		var line []byte
		line, headers, _ = bytes.Cut(headers, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case headerIs(name, "Call-ID", "i"):
			callID = bytes.TrimSpace(value)
		case headerIs(name, "Content-Type", "c"):
			ctype = value
		}
		if !isResponse && (headerIs(name, "Via", "v") || headerIs(name, "From", "f") || headerIs(name, "To", "t") ||
			headerIs(name, "Call-ID", "i") || headerIs(name, "CSeq", "")) {
			out = append(out, line...)
			out = append(out, "\r\n"...)
		}
	}
	i := -1
	if rest, ok := bytes.CutPrefix(callID, []byte(p.cfg.Tag+"-")); ok {
		if v, err := strconv.Atoi(string(rest)); err == nil && v >= 0 && v < p.cfg.N {
			i = v
		}
	}
	if isResponse {
		code := startLine[len("SIP/2.0 "):]
		if !bytes.HasPrefix(code, []byte("2")) && !bytes.HasPrefix(code, []byte("1")) {
			p.rejected.Add(1)
		}
		return out[:0]
	}
	out = append(out, "Content-Length: 0\r\n\r\n"...)
	if !bytes.HasPrefix(startLine, []byte("NOTIFY ")) || i < 0 {
		return out
	}
	full := bytes.Contains(ctype, []byte("multipart/"))
	if full && !p.initSeen[i].Swap(true) {
		p.initial.Add(1)
		p.initDone <- i
	}
	if p.cfg.Notify != nil {
		p.cfg.Notify(Notify{Phone: i, FullState: full, Body: body, At: rx})
	}
	return out
}

func headerIs(name []byte, long, compact string) bool {
	return bytes.EqualFold(name, []byte(long)) || (compact != "" && bytes.EqualFold(name, []byte(compact)))
}
