package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/internal/udpphones"
)

// startGoPhones starts n light Go phones (internal/udpphones), for exact
// NOTIFY arrival times: phone i (0-based) is desk i+1's phone, with Call-ID
// "bp-<i>", subscribes to as-feature-event without credentials (the
// bench's connector does not challenge), and hands each agent event NOTIFY
// to the tracker.
func startGoPhones(n int, server string, track *tracker) (*udpphones.Phones, error) {
	p, err := udpphones.Start(udpphones.Config{
		N: n, Server: server, Tag: "bp",
		DN: func(i int) string { return deskID(i + 1) },
		Notify: func(nt udpphones.Notify) {
			if nt.FullState {
				return
			}
			if k := bytes.Index(nt.Body, []byte("<Agent")); k >= 0 {
				rest := nt.Body[k+1:]
				if end := bytes.IndexAny(rest, " >/\r\n"); end > 0 {
					track.seen(seenNotify, nt.Phone+1, string(rest[:end]), nt.At)
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: Go phones: %w", err)
	}
	return p, nil
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
