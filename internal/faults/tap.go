package faults

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/broadworks-connector/connector/csta"
)

// Tap is a CTI connection that counts, by invoke ID, the requests written
// and the answers read, at the framing level: below cticlient's own
// pairing, which forgets an ID once answered and so would hide a second
// answer. Events and the client's SystemStatus acknowledgements (invoke
// ID 9999) are not requests or answers.
type Tap struct {
	net.Conn

	mu          sync.Mutex
	wbuf, rbuf  []byte
	outstanding map[int]int // invoke ID → requests sent and not yet answered
	sent        int
	answered    int
	unexpected  []int // answers to an ID with nothing outstanding: a second answer, or one never asked for
	broken      string
	readErr     error // why reading stopped (the connection dropped, or Close)
}

// NewTap wraps nc.
func NewTap(nc net.Conn) *Tap { return &Tap{Conn: nc, outstanding: map[int]int{}} }

// Write counts every complete frame of p before it leaves: counted after,
// an answer could be read (on the reader's goroutine) before its request
// was counted.
func (t *Tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.wbuf = t.scan(t.wbuf, p, true)
	t.mu.Unlock()
	return t.Conn.Write(p)
}

func (t *Tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.mu.Lock()
	t.rbuf = t.scan(t.rbuf, p[:n], false)
	if err != nil && t.readErr == nil {
		t.readErr = err
	}
	t.mu.Unlock()
	return n, err
}

// scan appends b to buf and accounts every complete frame in it.
func (t *Tap) scan(buf, b []byte, out bool) []byte {
	buf = append(buf, b...)
	for len(buf) >= csta.HeaderSize {
		length := int(binary.BigEndian.Uint16(buf[2:4]))
		if length < csta.HeaderSize {
			t.broken = fmt.Sprintf("bad frame length %d", length)
			return nil
		}
		if len(buf) < length {
			break
		}
		f, err := csta.ParseFrame(buf[:length], csta.MaxFrameSize)
		if err != nil {
			t.broken = err.Error()
			return nil
		}
		buf = buf[length:]
		if f.InvokeID == csta.EventInvokeID {
			continue
		}
		if out {
			t.outstanding[f.InvokeID]++
			t.sent++
			continue
		}
		if t.outstanding[f.InvokeID] == 0 {
			t.unexpected = append(t.unexpected, f.InvokeID)
			continue
		}
		t.outstanding[f.InvokeID]--
		t.answered++
	}
	if len(buf) == 0 {
		return buf[:0]
	}
	return buf
}

// TapCount is what a Tap saw.
type TapCount struct {
	Sent, Answered int
	Outstanding    []int  // invoke IDs sent and never answered
	Unexpected     []int  // answers to IDs with nothing outstanding
	Broken         string // the byte stream could not be framed
	ReadErr        error  // why reading stopped; nil while the connection is up
}

// Count reports what the tap saw so far.
func (t *Tap) Count() TapCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := TapCount{Sent: t.sent, Answered: t.answered, Unexpected: append([]int(nil), t.unexpected...),
		Broken: t.broken, ReadErr: t.readErr}
	for id, n := range t.outstanding {
		for range n {
			c.Outstanding = append(c.Outstanding, id)
		}
	}
	sort.Ints(c.Outstanding)
	return c
}
