package csta

import (
	"encoding/base64"
	"fmt"
)

// The Zultys MX dialect of CSTA over WebSocket (research/csta.md §2.1: the
// "Zultys WebSocket API Guide 1.0" §4.3–4.4 as callserv-nathan/csta-to-tapi's
// ZultysPacketCodec and sagostin/zultys-csta-go implement it). One text
// message carries one framed message:
//
//	1 character   the length of the base64 header as a character code: 12, "\x0c"
//	12 characters the 8-byte header of frame.go in standard base64 with padding
//	the rest      the XML document
//
// The header's length field counts its own 8 bytes plus the XML's bytes, as
// over TCP; events carry invoke ID 9999 there too.
const (
	// textHeaderLen is base64.StdEncoding.EncodedLen(HeaderSize).
	textHeaderLen = 12
	// textFrameOverhead is how much longer a text message is than the
	// binary frame it carries.
	textFrameOverhead = 1 + textHeaderLen - HeaderSize
)

// Strict: a header is exactly one encoding of 8 bytes, so nothing can hide
// in the padding bits. Made once: Strict copies the Encoding.
var (
	textHeaderEncoding         = base64.StdEncoding.Strict()
	textHeaderEncodingUnpadded = base64.RawStdEncoding.Strict()
)

// ParseTextFrame parses exactly one Zultys-dialect text message. It is as
// lenient as the TCP framing (ASCII "00" format bytes) and, in the same
// spirit, takes the base64 header without its padding (11 characters).
// Errors wrap ErrBadHeader, or are a *FrameTooLargeError.
func ParseTextFrame(b []byte, maxSize int) (Frame, error) {
	if len(b) == 0 {
		return Frame{}, fmt.Errorf("%w: empty text message, no header length character", ErrBadHeader)
	}
	n := int(b[0])
	enc := textHeaderEncoding
	switch n {
	case textHeaderLen:
	case textHeaderLen - 1:
		enc = textHeaderEncodingUnpadded
	default:
		return Frame{}, fmt.Errorf("%w: header length character %#02x, want 0x0c (12 base64 characters)", ErrBadHeader, b[0])
	}
	if len(b) < 1+n {
		return Frame{}, fmt.Errorf("%w: text message of %d bytes ends inside its %d-character header", ErrBadHeader, len(b), n)
	}
	var h [HeaderSize + 1]byte // DecodedLen(12) is 9
	// Decode's skipping of CR and LF leaves too few characters: fails below.
	got, err := enc.Decode(h[:], b[1:1+n]) // h escapes there: 16 bytes a message
	if err != nil || got != HeaderSize {
		return Frame{}, fmt.Errorf("%w: header %q is not base64 of 8 bytes", ErrBadHeader, b[1:1+n])
	}
	length, invokeID, err := parseHeader(h[:HeaderSize])
	if err != nil {
		return Frame{}, err
	}
	xml := b[1+n:]
	if length != HeaderSize+len(xml) {
		return Frame{}, fmt.Errorf("%w: header says %d bytes, message carries %d", ErrBadHeader, length, HeaderSize+len(xml))
	}
	if maxSize > HeaderSize && length > maxSize {
		return Frame{}, &FrameTooLargeError{InvokeID: invokeID, Length: length, Limit: maxSize}
	}
	return Frame{InvokeID: invokeID, XML: xml}, nil
}

// AppendTextFrame appends the Zultys-dialect text message carrying frame, a
// framed message as AppendFrame makes it, to dst.
func AppendTextFrame(dst, frame []byte) ([]byte, error) {
	if len(frame) < HeaderSize {
		return dst, fmt.Errorf("csta: frame of %d bytes has no header", len(frame))
	}
	dst = append(dst, textHeaderLen)
	dst = base64.StdEncoding.AppendEncode(dst, frame[:HeaderSize])
	return append(dst, frame[HeaderSize:]...), nil
}
