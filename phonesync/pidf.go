package phonesync

import "strings"

// pidfContentType is the presence document type (RFC 3863).
const pidfContentType = "application/pidf+xml"

// Presence is what one PIDF document says about a presentity.
type Presence struct {
	Entity     string   // the presence element's entity, e.g. "sip:8001@pbx"
	Open       bool     // <basic> of the first tuple that has one
	Activities []string // RPID activity local names in document order, e.g. "on-the-phone", "busy", "away"
	Note       string   // the first <note>, if any
}

// ParsePIDF decodes an application/pidf+xml body (RFC 3863) with RPID
// activities (RFC 4480). Like the other decoders it matches local names only:
// CUCM 7 writes activities in the pre-RFC namespace
// urn:ietf:params:xml:ns:pidf:status:rpid and puts them both in dm:person and
// inside the tuple's status (sip.md §3.2), others use
// urn:ietf:params:xml:ns:pidf:rpid. Activities are collected from every
// <activities> element, without duplicates; "unknown" is not an activity.
// The first tuple carrying a <basic> decides Open; a document with no basic
// status at all, or a basic other than open/closed, is malformed.
func ParsePIDF(body []byte) (Presence, error) {
	root, err := parseXML(body)
	if err != nil {
		return Presence{}, err
	}
	if root.local != "presence" {
		return Presence{}, badBody("root element %q is not presence", clipForError(root.local))
	}
	p := Presence{Entity: strings.TrimSpace(root.attr("entity"))}
	var basic *xmlNode
	for _, t := range root.children {
		if t.local != "tuple" {
			continue
		}
		if st := t.child("status"); st != nil {
			if basic = st.child("basic"); basic != nil {
				break
			}
		}
	}
	if basic == nil {
		// No tuple has one: RFC 4479's person status is the next best source.
		for _, c := range root.children {
			if st := c.child("status"); c.local == "person" && st != nil {
				if basic = st.child("basic"); basic != nil {
					break
				}
			}
		}
	}
	if basic == nil {
		return Presence{}, badBody("presence without a basic status")
	}
	switch v := basic.trimmedText(); strings.ToLower(v) {
	case "open":
		p.Open = true
	case "closed":
	default:
		return Presence{}, badBody("basic status %q is not open or closed", clipForError(v))
	}
	collectPresence(root, &p)
	return p, nil
}

func collectPresence(n *xmlNode, p *Presence) {
	for _, c := range n.children {
		switch c.local {
		case "activities":
			for _, a := range c.children {
				if a.local == "unknown" || a.local == "" || activityListed(p.Activities, a.local) {
					continue
				}
				p.Activities = append(p.Activities, a.local)
			}
			continue
		case "note":
			if p.Note == "" {
				p.Note = c.trimmedText()
			}
		}
		collectPresence(c, p)
	}
}

func activityListed(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
