package phonesync

import (
	"bytes"
	"crypto/rand"
	"strconv"
)

// Multipart puts documents in one multipart/mixed body (RFC 2046 §5.1), one
// part per document with Content-Type partType and Content-Length, the way
// FreeSWITCH sends its initial as-feature-event NOTIFY (sip.md §1.3): phones
// read only the first document of a plain body. The boundary is random and
// never occurs in a document. contentType is the NOTIFY's Content-Type.
func Multipart(docs [][]byte, partType string) (contentType string, body []byte) {
	boundary := newBoundary(docs)
	size := len(boundary) + 8
	for _, d := range docs {
		size += len(d) + len(boundary) + len(partType) + 64
	}
	b := make([]byte, 0, size)
	for _, d := range docs {
		b = append(b, "--"...)
		b = append(b, boundary...)
		b = append(b, "\r\nContent-Type: "...)
		b = append(b, partType...)
		b = append(b, "\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(d)), 10)
		b = append(b, "\r\n\r\n"...)
		b = append(b, d...)
		// The CRLF before the next delimiter belongs to the delimiter.
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"...)
	b = append(b, boundary...)
	b = append(b, "--\r\n"...)
	return "multipart/mixed;boundary=" + boundary, b
}

const boundaryAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func newBoundary(docs [][]byte) string {
	for {
		var raw [24]byte
		_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
		b := make([]byte, 0, 32)
		b = append(b, "bwc-"...)
		for _, c := range raw {
			b = append(b, boundaryAlphabet[int(c)%len(boundaryAlphabet)])
		}
		clash := false
		for _, d := range docs {
			if bytes.Contains(d, b) {
				clash = true
				break
			}
		}
		if !clash {
			return string(b)
		}
	}
}
