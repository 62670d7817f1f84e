package phonesync

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// hotelingNamespace is the x-broadworks-hoteling body namespace (sip.md §1.4).
const hotelingNamespace = "http://schema.broadsoft.com/hoteling"

// HotelingAuth is the authenticationData a phone returns to the nonce of a
// HotelingEvent: Response is hex MD5("nonce:password") (sip.md §1.4).
type HotelingAuth struct {
	Nonce, Algorithm, Response string
}

// HotelingRequest is a SetHoteling body. An empty GuestAddress logs the
// current guest out; Auth is nil when the phone sent no authenticationData.
type HotelingRequest struct {
	GuestAddress string
	Auth         *HotelingAuth
}

// ParseSetHoteling decodes a SetHoteling body. Elements are matched by local
// name, so the hoteling namespace, another one or none are all accepted, like
// ParseFeatureRequest. A SetHoteling without <guestAddress> is malformed:
// logout is an empty <guestAddress/>, not a missing one.
func ParseSetHoteling(body []byte) (HotelingRequest, error) {
	root, err := parseXML(body)
	if err != nil {
		return HotelingRequest{}, err
	}
	if root.local != "SetHoteling" {
		return HotelingRequest{}, badBody("root element %q is not SetHoteling", clipForError(root.local))
	}
	guest := root.child("guestAddress")
	if guest == nil {
		return HotelingRequest{}, badBody("SetHoteling without guestAddress")
	}
	req := HotelingRequest{GuestAddress: guest.trimmedText()}
	if strings.ContainsFunc(req.GuestAddress, unicode.IsControl) {
		// No agent ID or SIP address has one; XML allows DEL and C1.
		return HotelingRequest{}, badBody("guestAddress with a control character")
	}
	if ad := root.child("authenticationData"); ad != nil {
		req.Auth = &HotelingAuth{
			Nonce:     ad.childText("nonce"),
			Algorithm: ad.childText("algorithm"),
			Response:  ad.childText("response"),
		}
	}
	return req, nil
}

// HotelingEventDoc is the HotelingEvent NOTIFY body: the guest address (an
// empty element when no guest is associated, as BroadWorks sends after a
// failed sign-in), the association time left in seconds when known, and with
// a nonce the authenticationData challenge the phone must answer.
func HotelingEventDoc(h Hoteling, nonce string) []byte {
	b := make([]byte, 0, 256+len(h.GuestAddress)+len(nonce))
	// BroadWorks declares UTF-8 here (sip.md §1.4); the text is ASCII anyway.
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<HotelingEvent xmlns="`+hotelingNamespace+`">`+"\n"...)
	if h.GuestAddress == "" {
		b = append(b, "<guestAddress/>\n"...)
	} else {
		b = appendElement(b, "guestAddress", h.GuestAddress)
	}
	if h.Expires > 0 {
		secs := int64((h.Expires + time.Second - 1) / time.Second) // never round a live association to 0
		b = append(b, "<expires>"...)
		b = strconv.AppendInt(b, secs, 10)
		b = append(b, "</expires>\n"...)
	}
	if nonce != "" {
		b = append(b, "<authenticationData>\n"...)
		b = appendElement(b, "nonce", nonce)
		b = append(b, "</authenticationData>\n"...)
	}
	return append(b, "</HotelingEvent>\n"...)
}

// CheckHotelingResponse reports whether response is hex MD5("nonce:password")
// (sip.md §1.4), hex digits in either case, compared in constant time. An
// empty nonce or response never matches.
func CheckHotelingResponse(nonce, password, response string) bool {
	if nonce == "" || response == "" {
		return false
	}
	sum := md5.Sum([]byte(nonce + ":" + password))
	want := hex.EncodeToString(sum[:])
	got := strings.ToLower(strings.TrimSpace(response))
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
