package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// goPhones are light Go SIP phones on a few UDP sockets, for exact NOTIFY
// arrival times: phone i (0-based) is desk i+1's phone, lives on socket
// i % len(conns) with Call-ID "bp-<i>", subscribes to as-feature-event
// without credentials (the bench's connector does not challenge), answers
// every request 200 (NOTIFYs and liveness OPTIONS) and hands each agent
// event NOTIFY to the tracker.
type goPhones struct {
	n      int
	server *net.UDPAddr
	conns  []*net.UDPConn
	track  *tracker
	wg     sync.WaitGroup

	initSeen []atomic.Bool
	sentAt   []atomic.Int64
	attempt  []atomic.Int32
	initDone chan int
	initial  atomic.Int64
	rejected atomic.Int64
	resends  atomic.Int64
}

func newGoPhones(n int, server string, track *tracker) (*goPhones, error) {
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	p := &goPhones{n: n, server: sa, track: track, initSeen: make([]atomic.Bool, n),
		sentAt: make([]atomic.Int64, n), attempt: make([]atomic.Int32, n), initDone: make(chan int, n)}
	for range min(n, 4) {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("bench: Go phones' UDP socket: %w", err)
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

func (p *goPhones) close() {
	for _, c := range p.conns {
		c.Close()
	}
	p.wg.Wait()
}

func (p *goPhones) subscribe(i int) {
	c := p.conns[i%len(p.conns)]
	port := c.LocalAddr().(*net.UDPAddr).Port
	dn := deskID(i + 1)
	a := p.attempt[i].Add(1)
	msg := fmt.Sprintf("SUBSCRIBE sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-bp-%d-%d;rport\r\n"+
		"From: <sip:%s@127.0.0.1>;tag=bpt%d\r\n"+
		"To: <sip:%s@127.0.0.1>\r\n"+
		"Call-ID: bp-%d\r\n"+
		"CSeq: %d SUBSCRIBE\r\n"+
		"Contact: <sip:%s@127.0.0.1:%d>\r\n"+
		"Max-Forwards: 70\r\n"+
		"Event: as-feature-event\r\n"+
		"Accept: application/x-as-feature-event+xml\r\n"+
		"Expires: 3600\r\n"+
		"Content-Length: 0\r\n\r\n",
		dn, p.server, port, i, a, dn, i, dn, i, a, dn, port)
	p.sentAt[i].Store(time.Now().UnixNano())
	_, _ = c.WriteToUDP([]byte(msg), p.server)
}

// subscribeAll subscribes every phone, at most 64 waiting for their full
// state at a time, resending what got none within 2 s.
func (p *goPhones) subscribeAll(ctx context.Context) error {
	sem := make(chan struct{}, 64)
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for range p.n {
			select {
			case <-p.initDone:
				<-sem
			case <-stop:
				return
			}
		}
	})
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				for i := range int(sent.Load()) {
					if !p.initSeen[i].Load() && now.UnixNano()-p.sentAt[i].Load() > int64(2*time.Second) {
						p.resends.Add(1)
						p.subscribe(i)
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
		return fmt.Errorf("bench: Go phones: %d of %d have their full state (%d resends, %d rejected): %w",
			p.initial.Load(), p.n, p.resends.Load(), p.rejected.Load(), err)
	}
	for i := range p.n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		p.subscribe(i)
		sent.Store(int64(i + 1))
	}
	for p.initial.Load() < int64(p.n) {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (p *goPhones) readLoop(c *net.UDPConn) {
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
func (p *goPhones) handle(msg []byte, rx int64, out []byte) []byte {
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
	if rest, ok := bytes.CutPrefix(callID, []byte("bp-")); ok {
		if v, err := strconv.Atoi(string(rest)); err == nil && v >= 0 && v < p.n {
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
	if bytes.Contains(ctype, []byte("multipart/")) {
		if !p.initSeen[i].Swap(true) {
			p.initial.Add(1)
			p.initDone <- i
		}
		return out
	}
	if k := bytes.Index(body, []byte("<Agent")); k >= 0 {
		rest := body[k+1:]
		end := bytes.IndexAny(rest, " >/\r\n")
		if end > 0 {
			p.track.seen(seenNotify, i+1, string(rest[:end]), rx)
		}
	}
	return out
}

func headerIs(name []byte, long, compact string) bool {
	return bytes.EqualFold(name, []byte(long)) || (compact != "" && bytes.EqualFold(name, []byte(compact)))
}

// sippScenario is one phone per call: subscribe to as-feature-event for
// the DN of the -inf line, then answer every NOTIFY 200 until the one
// that terminates the subscription (the connector's shutdown sends it), so
// that sipp's exit status says every phone stayed subscribed to the end.
// The jumps ride on the recv and send themselves (see internal/sipptest).
const sippScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="connector-bench phone">
  <send retrans="500"><![CDATA[

      SUBSCRIBE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 SUBSCRIBE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: as-feature-event
      Accept: application/x-as-feature-event+xml
      Expires: 3600
      Content-Length: 0

    ]]></send>
  <recv response="200" rrs="true"/>
  <label id="w"/>
  <recv request="NOTIFY" test="end" next="y">
    <action><ereg regexp="terminated" search_in="hdr" header="Subscription-State:" check_it="false" assign_to="end"/></action>
  </recv>
  <send next="w"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <label id="y"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <pause milliseconds="200"/>
</scenario>
`

// sippPhones is one sipp process playing phones for desks from..to.
type sippPhones struct {
	cmd   *exec.Cmd
	out   *logBuffer
	dir   string
	done  chan error
	ended atomic.Bool // done was received
}

// startSipp starts sipp with one call per desk from..to (1-based,
// inclusive), at rate new phones per second, against the connector's SIP
// address; the calls last until the connector ends the subscriptions.
func startSipp(sipp, dir, server string, from, to int, rate int, maxDuration time.Duration) (*sippPhones, error) {
	n := to - from + 1
	var csv bytes.Buffer
	csv.WriteString("SEQUENTIAL\n")
	for i := from; i <= to; i++ {
		csv.WriteString(deskID(i) + ";\n")
	}
	scenario, dns := filepath.Join(dir, "bench-phone.xml"), filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(scenario, []byte(sippScenario), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(dns, csv.Bytes(), 0o600); err != nil {
		return nil, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	s := &sippPhones{out: &logBuffer{}, dir: dir, done: make(chan error, 1)}
	s.cmd = exec.Command(sipp, server, "-sf", scenario, "-inf", dns,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-m", strconv.Itoa(n), "-l", strconv.Itoa(n), "-r", strconv.Itoa(rate), "-rp", "1000",
		"-aa", "-buff_size", strconv.Itoa(4<<20), "-nostdin",
		"-timeout", strconv.Itoa(int(maxDuration.Seconds()))+"s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "sipp-errors.log"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting sipp: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s, nil
}

// failure describes why sipp failed, with its output and error file.
func (s *sippPhones) failure(err error) error {
	errs, _ := os.ReadFile(filepath.Join(s.dir, "sipp-errors.log"))
	if len(errs) > 3000 {
		errs = errs[len(errs)-3000:]
	}
	return fmt.Errorf("bench: sipp: %v\n--- sipp output (tail) ---\n%s\n--- sipp errors (tail) ---\n%s", err, s.out.Tail(3000), errs)
}

// wait waits for sipp to end; a nonzero exit means some phone did not stay
// subscribed to the end.
func (s *sippPhones) wait(timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.ended.Store(true)
		if err != nil {
			return s.failure(err)
		}
		return nil
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		err := <-s.done
		s.ended.Store(true)
		return s.failure(fmt.Errorf("still running %v after the connector stopped (killed: %v)", timeout, err))
	}
}

func (s *sippPhones) kill() {
	if s == nil || s.ended.Load() {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.ended.Store(true)
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: no free UDP port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

var errNoSipp = errors.New("bench: sipp not found on PATH; install Debian's sip-tester (apt-get install sip-tester), or run with -phones equal to -go-phones to use only the Go phones")
