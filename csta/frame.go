package csta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Framing of CSTA XML over TCP (research/csta.md §0.1, §2.1):
//
//	offset 0  2 bytes  0x00 0x00 (some clients send ASCII "00")
//	offset 2  2 bytes  big-endian total length, header included, in bytes
//	offset 4  4 bytes  invoke ID, ASCII digits
//	offset 8  n bytes  one XML document
const (
	HeaderSize = 8
	// MaxFrameSize is the largest length the 16-bit field can carry.
	MaxFrameSize = 65535
	// EventInvokeID marks unsolicited messages (events, our SystemStatus).
	EventInvokeID = 9999
)

// Frame is one framed CSTA message.
type Frame struct {
	InvokeID int
	XML      []byte
}

// ErrBadHeader means the header cannot be trusted, so the byte stream can no
// longer be split into messages: the connection must be closed.
var ErrBadHeader = errors.New("csta: untrustworthy frame header")

// FrameTooLargeError reports a well-framed message above the configured
// limit. Its bytes were skipped, so the stream stays usable and the request
// can be answered.
type FrameTooLargeError struct {
	InvokeID int
	Length   int
	Limit    int
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("csta: frame of %d bytes exceeds the limit of %d", e.Length, e.Limit)
}

// parseHeader validates the 8 header bytes and returns the total frame
// length and the invoke ID.
func parseHeader(h []byte) (length, invokeID int, err error) {
	switch {
	case h[0] == 0 && h[1] == 0:
	case h[0] == '0' && h[1] == '0': // ASCII variant (Tow-com-au PHP wrapper, research/csta.md §0.3)
	default:
		return 0, 0, fmt.Errorf("%w: format bytes %#02x %#02x, want 00 00", ErrBadHeader, h[0], h[1])
	}
	length = int(binary.BigEndian.Uint16(h[2:4]))
	if length < HeaderSize {
		return 0, 0, fmt.Errorf("%w: length %d is shorter than the header", ErrBadHeader, length)
	}
	for _, c := range h[4:8] {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("%w: invoke ID %q is not 4 digits", ErrBadHeader, h[4:8])
		}
		invokeID = invokeID*10 + int(c-'0')
	}
	return length, invokeID, nil
}

// FrameReader reads frames from a byte stream, reassembling messages split
// across reads and splitting messages merged into one read.
//
// It holds no buffer between frames when nothing more has arrived: an idle
// connection waits for the next header in the reader's own 8 bytes, and the
// read-ahead buffer that gathers pipelined frames is taken from a pool once
// a header has come in and given back as soon as it is drained.
type FrameReader struct {
	r       io.Reader
	maxSize int
	buf     *[]byte // pooled read-ahead, nil when nothing is buffered
	start   int     // unread bytes are (*buf)[start:end]
	end     int
	header  [HeaderSize]byte
}

// readAheadSize is the pooled read-ahead buffer: dozens of pipelined
// requests in one read.
const readAheadSize = 16 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// NewFrameReader reads frames of at most maxSize bytes (header included).
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	fr := &FrameReader{r: r}
	fr.SetMaxSize(maxSize)
	return fr
}

// SetMaxSize changes the limit; out-of-range values mean MaxFrameSize.
func (fr *FrameReader) SetMaxSize(maxSize int) {
	if maxSize <= HeaderSize || maxSize > MaxFrameSize {
		maxSize = MaxFrameSize
	}
	fr.maxSize = maxSize
}

func (fr *FrameReader) buffered() int { return fr.end - fr.start }

// release gives the read-ahead buffer back to the pool once it is drained.
func (fr *FrameReader) release() {
	if fr.buf != nil && fr.buffered() == 0 {
		readAheadPool.Put(fr.buf)
		fr.buf, fr.start, fr.end = nil, 0, 0
	}
}

// fill reads until at least n (at most readAheadSize) bytes are buffered,
// and more if they have arrived.
func (fr *FrameReader) fill(n int) error {
	if fr.buf == nil {
		fr.buf = readAheadPool.Get().(*[]byte)
		fr.start, fr.end = 0, 0
	}
	b := *fr.buf
	if fr.buffered() >= n {
		return nil
	}
	if fr.start+n > len(b) { // no room behind the unread bytes: move them to the front
		fr.end = copy(b, b[fr.start:fr.end])
		fr.start = 0
	}
	got, err := io.ReadAtLeast(fr.r, b[fr.end:], n-fr.buffered())
	fr.end += got
	return err
}

// take copies up to len(dst) buffered bytes into dst.
func (fr *FrameReader) take(dst []byte) int {
	if fr.buf == nil {
		return 0
	}
	n := copy(dst, (*fr.buf)[fr.start:fr.end])
	fr.start += n
	return n
}

// ReadFrame returns the next frame. The XML slice is freshly allocated and
// owned by the caller. Errors: io.EOF at a clean end of stream,
// io.ErrUnexpectedEOF inside a frame, ErrBadHeader (close the connection),
// *FrameTooLargeError (frame skipped, answer it), or the reader's error.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if fr.buffered() == 0 {
		fr.release()
		// Idle: wait for the next header holding no buffer, in a small
		// frame (the rest is in frame): an idle connection's reader then
		// needs little stack.
		if _, err := io.ReadFull(fr.r, fr.header[:]); err != nil {
			return Frame{}, err
		}
		return fr.frame()
	}
	if err := fr.fill(HeaderSize); err != nil {
		fr.release()
		return Frame{}, noEOF(err)
	}
	fr.take(fr.header[:])
	return fr.frame()
}

// frame reads the rest of the frame whose header is in fr.header.
func (fr *FrameReader) frame() (Frame, error) {
	defer fr.release()
	length, invokeID, err := parseHeader(fr.header[:])
	if err != nil {
		return Frame{}, err
	}
	body := length - HeaderSize
	if length > fr.maxSize {
		skipped := fr.buffered()
		if skipped >= body {
			fr.start += body
		} else {
			fr.start = fr.end
			if _, err := io.CopyN(io.Discard, fr.r, int64(body-skipped)); err != nil {
				return Frame{}, noEOF(err)
			}
		}
		return Frame{}, &FrameTooLargeError{InvokeID: invokeID, Length: length, Limit: fr.maxSize}
	}
	xml := make([]byte, body)
	n := fr.take(xml)
	if rest := body - n; rest > 0 {
		if rest <= readAheadSize/2 {
			// Read ahead: the frames pipelined behind this one come along.
			if err := fr.fill(rest); err != nil {
				return Frame{}, noEOF(err)
			}
			fr.take(xml[n:])
		} else if _, err := io.ReadFull(fr.r, xml[n:]); err != nil {
			return Frame{}, noEOF(err)
		}
	}
	return Frame{InvokeID: invokeID, XML: xml}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseFrame parses exactly one frame from b (a WebSocket binary message).
func ParseFrame(b []byte, maxSize int) (Frame, error) {
	if len(b) < HeaderSize {
		return Frame{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrBadHeader, len(b))
	}
	length, invokeID, err := parseHeader(b[:HeaderSize])
	if err != nil {
		return Frame{}, err
	}
	if length != len(b) {
		return Frame{}, fmt.Errorf("%w: header says %d bytes, message has %d", ErrBadHeader, length, len(b))
	}
	if maxSize > HeaderSize && length > maxSize {
		return Frame{}, &FrameTooLargeError{InvokeID: invokeID, Length: length, Limit: maxSize}
	}
	return Frame{InvokeID: invokeID, XML: b[HeaderSize:]}, nil
}

// AppendFrame appends the framed message to dst. The invoke ID is written
// modulo 10000 and xml must be at most MaxFrameSize-HeaderSize bytes.
func AppendFrame(dst []byte, invokeID int, xml []byte) ([]byte, error) {
	total := len(xml) + HeaderSize
	if total > MaxFrameSize {
		return dst, fmt.Errorf("csta: message of %d bytes does not fit a frame", total)
	}
	invokeID %= 10000
	if invokeID < 0 { // after the modulo: -math.MinInt is still negative
		invokeID = -invokeID
	}
	dst = append(dst, 0, 0, byte(total>>8), byte(total),
		byte('0'+invokeID/1000), byte('0'+invokeID/100%10), byte('0'+invokeID/10%10), byte('0'+invokeID%10))
	return append(dst, xml...), nil
}
